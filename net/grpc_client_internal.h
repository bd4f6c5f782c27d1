/* grpc_client_internal — the gRPC client's private types, shared by grpc_client.c (the
 * client), grpc_client_conn.c (connections, HTTP/2 session) and grpc_client_call.c (calls,
 * streams, sync helpers). */
#ifndef PLINTH_NET_GRPC_CLIENT_INTERNAL_H
#define PLINTH_NET_GRPC_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "net/grpc_client.h"

/* gRPC message header: compressed flag + 4-byte big-endian length. */
#define GRPC_HDR 5
/* Bytes a stream without on_msg may hold queued before the client stops granting it
 * HTTP/2 window: the bound on a slow sync reader. */
#define GRPC_RECVQ_MAX (4u << 20)

struct gc_endpoint {
    char *url;        /* as given, for error text */
    char *host;       /* without brackets */
    char *port;
    char *authority;  /* host:port for :authority */
    bool tls;
};

enum gc_conn_state { CONN_DIALING, CONN_READY, CONN_DEAD };

struct gc_conn {
    struct net_grpc_client *c;
    struct gc_conn *next;       /* client's list of connections */
    int ep;                     /* endpoint index */
    enum gc_conn_state state;
    bool goaway;                /* no new streams; new calls dial a fresh connection */
    struct bufferevent *bev;
    nghttp2_session *ng;
    struct event *dial_timer;
    struct event *ka_timer;
    uint64_t last_read_ms;
    uint64_t ping_sent_ms;      /* 0 when no keepalive ping is outstanding */
    int nstreams;               /* calls attached */
    char err[256];              /* why it died */
    char goaway_err[160];       /* the server's GOAWAY error, if it sent one with an error */
};

enum gc_kind { CALL_UNARY_RAW, CALL_UNARY_MSG, CALL_STREAM };

struct gc_msg {                 /* a queued received message (sync stream reader) */
    struct gc_msg *next;
    size_t len;
    uint8_t data[];
};

/* One call: a unary call or a stream (struct net_grpc_stream is this). */
struct gc_call {
    struct net_grpc_client *c;  /* NULL once the client is gone */
    struct gc_call *prev, *next;/* client's list of all live calls */
    enum gc_kind kind;
    char *path;
    char **md;                  /* name, value, ..., NULL (copied) */
    int timeout_ms;             /* < 0 none */
    uint64_t deadline_ms;       /* 0 none */
    struct event *deadline_ev;

    /* where it is */
    struct gc_conn *conn;       /* NULL while pending (waiting for a connection) */
    int32_t stream_id;          /* -1 until submitted */
    bool pending;               /* waiting for a connection */
    int dial_failures;          /* endpoints that failed for this call */
    bool hdrs_sent;             /* request HEADERS left: no retry past this point */
    bool resp_hdrs;             /* response HEADERS arrived */

    /* send side */
    struct evbuffer *out;       /* framed messages waiting for the data provider */
    bool out_taken;             /* the provider has read from out (no transparent retry) */
    bool half_close;            /* END_STREAM after out drains */
    bool deferred;              /* provider returned DEFERRED */
    uint8_t *req_copy;          /* unary: framed request, to rebuild out on retry */
    size_t req_copy_len;

    /* receive side */
    struct evbuffer *in;        /* partial gRPC message bytes */
    int http_status;
    bool has_grpc_status;
    struct net_grpc_status st;  /* from trailers, or set locally */
    bool local_status;          /* st was set locally (cancel, deadline, ...) */
    uint8_t *resp;              /* unary: the one response message */
    size_t resp_len;
    bool got_resp;
    struct gc_msg *q_head, *q_tail; /* stream without on_msg: received messages */
    size_t q_bytes;
    size_t unconsumed;          /* stream-level window withheld while q_bytes is high */

    /* completion: a call that ends is queued (finishing) and its callbacks run from the
     * client's deferred work, never from inside nghttp2 or the caller's own call */
    bool finishing;             /* final status known, queued for completion */
    struct gc_call *dq_next;
    bool done;                  /* completion callbacks given */
    bool user_freed;            /* stream handle released by the caller */
    int in_cb;                  /* depth of user callbacks running for this call */
    net_grpc_unary_cb ucb;
    net_grpc_unary_msg_cb umcb;
    const ProtobufCMessageDescriptor *resp_desc;
    net_grpc_stream_msg_cb on_msg;
    net_grpc_stream_close_cb on_close;
    void *ud;
};

struct net_grpc_client {
    struct event_base *base;
    bool own_base;
    SSL_CTX *ssl;
    bool own_ssl;
    struct gc_endpoint *eps;
    int neps;
    int cur_ep;                 /* endpoint to dial next / connected */
    char **md;                  /* client metadata, NULL-terminated pairs */
    int dial_timeout_ms;
    int call_timeout_ms;
    size_t max_recv;
    int ka_ms, ka_timeout_ms;
    struct gc_conn *conn;       /* the connection new calls use (dialing or ready) */
    struct gc_conn *conns;      /* every connection, including draining and dead ones */
    struct gc_call *calls, *calls_tail; /* every live call, oldest first */
    struct gc_call *dq_head, *dq_tail;  /* calls waiting for their completion */
    struct event *kick;         /* deferred work: dial, submit, reap */
    struct event *wake;         /* sync helpers' timer */
    bool waiting;               /* a sync helper runs the loop: break it on progress */
    char last_err[NET_GRPC_MSGLEN];
};

/* grpc_client.c */
uint64_t gc_now_ms(struct net_grpc_client *c);
void gc_kick(struct net_grpc_client *c);

/* grpc_client_conn.c */
void gc_conn_send(struct gc_conn *k);
void gc_conn_free(struct gc_conn *k);
void gc_kick_cb(evutil_socket_t fd, short what, void *arg);
int gc_copy_md(const char *const *md, char ***out);
void gc_free_md(char **md);

/* grpc_client_call.c */
void gc_status_set(struct net_grpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gc_call_finish(struct gc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gc_call_end(struct gc_call *call);
void gc_call_complete(struct gc_call *call);
void gc_call_deliver(struct gc_call *call, const uint8_t *msg, size_t len);
int gc_call_on_data(struct gc_call *call, const uint8_t *data, size_t len);
void gc_call_maybe_free(struct gc_call *call);
int gc_submit(struct gc_conn *k, struct gc_call *call);
int gc_run_once(struct net_grpc_client *c, uint64_t until_ms);
void gc_run_completions(struct net_grpc_client *c);
void gc_call_free(struct gc_call *call);
void gc_progress(struct net_grpc_client *c);

#endif

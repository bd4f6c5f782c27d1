/* grpc_server_int — private structures shared by the gRPC server's files: the server
 * (grpc_server.c), its HTTP/2 session glue (grpc_server_h2.c) and calls (grpc_server_call.c). */
#ifndef PLINTH_NET_GRPC_SERVER_INT_H
#define PLINTH_NET_GRPC_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>

#include "net/grpc_server.h"

/* Output held in a connection's bufferevent before nghttp2 is told "would block": enough
 * to keep a loopback socket busy, small enough that a stalled client costs little. */
#define GS_OUT_HIGH (256u * 1024u)
#define GS_OUT_LOW (64u * 1024u)
/* HTTP/2 windows we grant: per stream (SETTINGS_INITIAL_WINDOW_SIZE) and per connection. */
#define GS_STREAM_WINDOW (1u << 20)
#define GS_CONN_WINDOW (8u << 20)
/* Request headers larger than this reset the stream. */
#define GS_MAX_HEADER_BYTES (16u * 1024u)
#define GS_MAX_STATUS_MSG 256
/* First allocation for an incoming message; it doubles as bytes arrive. */
#define GS_MSG_INITIAL (16u * 1024u)
/* Request bytes read and dropped after our answer went out before the stream is reset. */
#define GS_DISCARD_LIMIT (256u * 1024u)
/* How long a client may go on sending (or keep its side open) after our answer. */
#define GS_LINGER_MS 100

struct gs_method {
    char *path;
    enum net_grpc_kind kind;
    net_grpc_handler_fn handler;
    void *ud;
};

struct gs_listener {
    struct net_grpc_server *srv;
    struct evconnlistener *lev;
    bool tls;
    struct gs_listener *next;
};

struct gs_conn {
    struct net_grpc_server *srv;
    struct bufferevent *bev;
    nghttp2_session *session; /* NULL until TLS is up (or at once for h2c) */
    SSL *ssl;                 /* owned by bev; NULL for h2c */
    bool tls;
    char peer[64];
    struct event *flush_ev; /* runs queued answers and notifications from the loop */
    struct event *timer_ev; /* handshake / idle / keepalive checks */
    bool flush_scheduled;
    bool notify_pending; /* some call has a half-close or writable notification due */
    bool established;    /* the client's first HTTP/2 frame arrived */
    bool dead;           /* tear down at the end of the current loop callback */
    bool closing;        /* GOAWAY sent: free once the output drained */
    int64_t born_ms, last_read_ms, idle_since_ms, ping_sent_ms, closing_since_ms;
    struct net_grpc_call *calls; /* doubly linked */
    size_t ncalls;
    struct gs_conn *prev, *next;
};

struct net_grpc_call {
    struct gs_conn *conn;
    int32_t stream_id;
    /* method, copied at dispatch so re-registering does not disturb running calls */
    char *path;
    enum net_grpc_kind kind;
    net_grpc_handler_fn handler;
    void *method_ud;
    bool dispatchable; /* request headers valid and the method known */
    /* request headers: "name\0value\0" pairs */
    char *hdrs;
    size_t hdrs_len, hdrs_cap;
    int64_t deadline_ms;
    struct event *deadline_ev;
    bool deadline_hit;
    /* inbound gRPC framing */
    uint8_t prefix[5];
    size_t prefix_have;
    uint8_t *msg;
    size_t msg_len, msg_have, msg_cap;
    unsigned messages_in;
    bool discard_input;
    bool reset_early;     /* refused for its size: reset the stream once our answer is out */
    size_t discarded;     /* request bytes received after our END_STREAM went out */
    struct event *linger_ev; /* resets a stream the client leaves open after our answer */
    bool remote_closed;
    bool half_close_due; /* notify the half-close callback from the loop */
    bool half_close_fired;
    /* outbound */
    struct evbuffer *out; /* framed messages not yet given to nghttp2 */
    bool response_submitted;
    bool finished;
    int status;
    char status_msg[GS_MAX_STATUS_MSG * 3 + 1]; /* percent-encoded */
    bool deferred;
    bool end_sent;
    bool want_writable;
    bool writable_due;
    /* user side */
    void *user;
    net_grpc_close_fn close_cb;
    net_grpc_call_event_fn half_close_cb;
    net_grpc_call_event_fn writable_cb;
    int in_handler;
    struct net_grpc_call *prev, *next;
};

struct net_grpc_server {
    struct event_base *base;
    struct net_grpc_server_opts opts; /* defaults filled in */
    struct gs_method *methods;
    size_t nmethods, methods_cap;
    struct gs_listener *listeners;
    struct gs_conn *conns;
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *h2opt;
    struct net_grpc_server_stats stats;
};

/* grpc_server.c */
/* Takes over a connected socket (fd, non-blocking; sa may be NULL) as a new connection.
 * Used by the listener, and by the fuzz target with one end of a socketpair. */
void gs_conn_adopt(struct net_grpc_server *srv, int fd, const struct sockaddr *sa, bool tls);
void gs_conn_schedule_flush(struct gs_conn *conn);
void gs_conn_log(struct gs_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const struct gs_method *gs_find_method(const struct net_grpc_server *srv, const char *path);

/* grpc_server_h2.c */
int gs_callbacks_new(nghttp2_session_callbacks **out);
/* Makes conn's server session, queues SETTINGS and the connection window. 0 or -1. */
int gs_session_start(struct gs_conn *conn);

/* grpc_server_call.c */
struct net_grpc_call *gs_call_new(struct gs_conn *conn, int32_t stream_id);
/* Runs the close callback (err as in net_grpc_close_fn), unlinks and frees the call. */
void gs_call_close(struct net_grpc_call *call, int err);
/* Request headers complete: validate, look up the method, arm the deadline. */
void gs_call_headers_done(struct net_grpc_call *call);
/* A chunk of the request body: gRPC framing, dispatch to the handler. */
void gs_call_data(struct net_grpc_call *call, const uint8_t *data, size_t len);
/* The client sent END_STREAM. */
void gs_call_remote_closed(struct net_grpc_call *call);
/* Adds one request header; -1 when the headers grow past the limit. */
int gs_call_add_header(struct net_grpc_call *call, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen);
/* Runs due half-close / writable notifications. */
void gs_call_notify(struct net_grpc_call *call);
/* Finishes without touching the user side (server-made answers). */
int gs_call_finish(struct net_grpc_call *call, int status, const char *message,
                   int http_status);

#endif

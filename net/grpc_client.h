/* grpc_client — plinth's gRPC client over HTTP/2 (nghttp2 + libevent + OpenSSL): unary and
 * streaming calls to etcd's v3 API with a list of endpoints, fail-over and deadlines. */
#ifndef PLINTH_NET_GRPC_CLIENT_H
#define PLINTH_NET_GRPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

#include "net/net.h"

/*
 * Model
 * -----
 * A client is one HTTP/2 connection at a time to one of its endpoints; every call is an
 * HTTP/2 stream on it. The connection is dialed lazily by the first call and redialed by
 * the next call after it is lost. Dialing tries the endpoints in order, starting with the
 * one that worked last; a call that fails before its request left (connection refused,
 * TLS failure, dial timeout, connection lost or GOAWAY before the stream was sent, or
 * REFUSED_STREAM) moves on to the next endpoint. A call whose request may have reached a
 * server is never resent: it fails with UNAVAILABLE and the caller decides.
 *
 * For many connections (benchmarks), make one client per connection on a shared
 * event_base: clients are cheap, and pass one SSL_CTX to all of them (opts.ssl_ctx).
 *
 * Threads: a client and everything made from it belong to the thread that runs its
 * event_base. Nothing here is thread-safe.
 *
 * Signals: net_grpc_client_new sets SIGPIPE to SIG_IGN if it is still at SIG_DFL, so a
 * write to a connection the server has just closed is an error and not the end of the
 * process.
 *
 * Callbacks (async unary, stream messages, stream close) always run from the event loop,
 * never from inside the function that started the call. The client must not be freed
 * from inside one of its callbacks; a stream may be freed from inside its own callbacks
 * (the free is deferred to the end of the callback).
 *
 * Sync functions (net_grpc_unary, net_grpc_stream_recv, net_grpc_client_poll) run the
 * client's event_base until they are done. With an internal base that is always fine.
 * With an external base they may be used only while that base is not already running
 * (never from inside a callback of that base); async users should use the _async calls.
 *
 * Example (sync):
 *
 *   struct net_grpc_client_opts o = { .endpoints = "https://127.0.0.1:2379",
 *       .ca_file = "ca.pem", .cert_file = "client.pem", .key_file = "client-key.pem" };
 *   struct net_grpc_status st;
 *   struct net_grpc_client *c = net_grpc_client_new(&o, &st);
 *   if (!c) { fprintf(stderr, "%s\n", st.message); return 1; }
 *   Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
 *   req.key = (ProtobufCBinaryData){ 3, (uint8_t *)"foo" };
 *   req.value = (ProtobufCBinaryData){ 3, (uint8_t *)"bar" };
 *   ProtobufCMessage *resp = NULL;
 *   if (net_grpc_unary(c, "/etcdserverpb.KV/Put", &req.base,
 *                      &etcdserverpb__put_response__descriptor, &resp, &st, 0) != NET_GRPC_OK)
 *       fprintf(stderr, "put: %s\n", st.message);   // e.g. "etcdserver: no leader"
 *   else
 *       protobuf_c_message_free_unpacked(resp, NULL);
 *   net_grpc_client_free(c);
 *
 * Example (a watch loop, sync style):
 *
 *   const char *md[] = {"hasleader", "true", NULL};
 *   struct net_grpc_stream_opts so = { .metadata = md };
 *   struct net_grpc_stream *w;
 *   net_grpc_stream_open(c, "/etcdserverpb.Watch/Watch", &so, &w);
 *   net_grpc_stream_send_msg(w, &create_req.base);          // a WatchRequest
 *   ProtobufCMessage *m;
 *   while (net_grpc_stream_recv_msg(w, &etcdserverpb__watch_response__descriptor, &m,
 *                                   1000) != NET_GRPC_RECV_CLOSED) {
 *       if (m) { ... protobuf_c_message_free_unpacked(m, NULL); }  // NULL on timeout
 *   }
 *   printf("watch ended: %s\n", net_grpc_stream_status(w)->message);
 *   net_grpc_stream_free(w);
 *
 * Example (async, on the caller's event_base):
 *
 *   static void done(void *ud, const struct net_grpc_status *st, ProtobufCMessage *resp)
 *   {
 *       if (st->code != NET_GRPC_OK) { log("%s", st->message); return; }
 *       ... protobuf_c_message_free_unpacked(resp, NULL);
 *   }
 *   struct net_grpc_client_opts o = { .endpoints = eps, .base = base };
 *   struct net_grpc_client *c = net_grpc_client_new(&o, &st);
 *   net_grpc_unary_msg_async(c, "/etcdserverpb.KV/Range", &req.base,
 *                            &etcdserverpb__range_response__descriptor, 0, done, ctx);
 *   event_base_dispatch(base);
 */

/* gRPC status codes (grpc/status.h numbering, which etcd's errors use). */
enum net_grpc_code {
    NET_GRPC_OK = 0,
    NET_GRPC_CANCELLED = 1,
    NET_GRPC_UNKNOWN = 2,
    NET_GRPC_INVALID_ARGUMENT = 3,
    NET_GRPC_DEADLINE_EXCEEDED = 4,
    NET_GRPC_NOT_FOUND = 5,
    NET_GRPC_ALREADY_EXISTS = 6,
    NET_GRPC_PERMISSION_DENIED = 7,
    NET_GRPC_RESOURCE_EXHAUSTED = 8,
    NET_GRPC_FAILED_PRECONDITION = 9,
    NET_GRPC_ABORTED = 10,
    NET_GRPC_OUT_OF_RANGE = 11,
    NET_GRPC_UNIMPLEMENTED = 12,
    NET_GRPC_INTERNAL = 13,
    NET_GRPC_UNAVAILABLE = 14,
    NET_GRPC_DATA_LOSS = 15,
    NET_GRPC_UNAUTHENTICATED = 16,
};

/* Upper-case name of a code ("UNAVAILABLE"); "UNKNOWN_CODE" for values outside 0..16.
 * Never NULL, static. */
const char *net_grpc_code_name(int code);

#define NET_GRPC_MSGLEN 512

/* The outcome of a call. code is the server's grpc-status, or a code chosen locally:
 *   UNAVAILABLE        no endpoint could be reached / the connection was lost
 *                      ("dial https://127.0.0.1:2379: connection refused")
 *   DEADLINE_EXCEEDED  the call's deadline passed ("deadline exceeded after 5000 ms")
 *   CANCELLED          the call or stream was cancelled locally
 *   INTERNAL           the server broke the protocol, or a response did not unpack
 *   RESOURCE_EXHAUSTED a response was larger than opts.max_recv_bytes
 *   INVALID_ARGUMENT   bad arguments to the call itself (NULL method, ...)
 * message is the server's grpc-message, percent-decoded (etcd's text, e.g.
 * "etcdserver: mvcc: required revision has been compacted"), or local text as above;
 * always NUL-terminated, cut to fit. */
struct net_grpc_status {
    int code;
    char message[NET_GRPC_MSGLEN];
};

struct net_grpc_client_opts {
    /* Comma-separated URLs, "https://127.0.0.1:2379,https://127.0.0.1:22379" (TLS, ALPN h2)
     * or "http://..." (prior-knowledge h2c); a bare "host:port" means http://. Required.
     * Hosts are IPv4/IPv6 literals or names resolved at dial time. */
    const char *endpoints;
    /* TLS for https:// endpoints, all optional and borrowed for net_grpc_client_new only:
     * ca_file verifies the server (NULL: system trust store); cert_file+key_file is the
     * client certificate for servers with --client-cert-auth. The server certificate's
     * subjectAltName must match the endpoint's host (IP SAN for 127.0.0.1). */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /* A ready client SSL_CTX (ALPN h2) to use instead of the files above. Borrowed: it
     * must outlive the client (OpenSSL refcounts it, so net_tls_ctx_free after
     * net_grpc_client_free is fine). Lets N clients share one context. */
    SSL_CTX *ssl_ctx;
    /* Extra gRPC headers sent with every call, as "name", "value" pairs terminated by
     * NULL (e.g. {"token", tok, NULL}). Copied. Names must be lower case. */
    const char *const *metadata;
    /* Per-endpoint dial budget (TCP connect + TLS + HTTP/2 SETTINGS); 0 means 5000 ms. */
    int dial_timeout_ms;
    /* Deadline for unary calls that pass timeout_ms = 0; 0 means 5000 ms, < 0 none. */
    int call_timeout_ms;
    /* Largest response message accepted; 0 means 64 MiB. */
    size_t max_recv_bytes;
    /* > 0: send an HTTP/2 PING after this many ms without reading anything while calls
     * are open, and drop the connection (calls fail UNAVAILABLE) when no PING ACK comes
     * back within keepalive_timeout_ms (0 means 5000). 0 disables keepalive. etcd (grpc-go)
     * answers pings more often than --grpc-keepalive-min-time (5 s) with GOAWAY
     * "too_many_pings" and closes the connection (its calls fail UNAVAILABLE); the client
     * then doubles its interval, as grpc-go does. Use 10000 or more against etcd. */
    int keepalive_ms;
    int keepalive_timeout_ms;
    /* Event loop to run on (borrowed, must outlive the client), or NULL for an internal
     * one owned by the client (sync users). */
    struct event_base *base;
};

struct net_grpc_client;
struct net_grpc_stream;

/* Makes a client. Nothing is dialed yet. Returns the client, or NULL with st->code
 * INVALID_ARGUMENT (malformed endpoint list: "grpc client: endpoint \"x\": ..."),
 * UNAVAILABLE (a TLS file missing or unusable, text from tls: naming the file) or
 * RESOURCE_EXHAUSTED (out of memory). st may be NULL. opts and its strings are copied. */
struct net_grpc_client *net_grpc_client_new(const struct net_grpc_client_opts *opts,
                                            struct net_grpc_status *st);

/* Closes the connection (open calls and streams end with it; the server sees the
 * connection go) and frees the client. Pending async callbacks and stream close callbacks
 * are NOT invoked (their user data stays the caller's to release). Stream handles the caller still holds must
 * still be released with net_grpc_stream_free (safe after the client is gone). NULL is
 * ignored. Never call from inside a callback of this client. */
void net_grpc_client_free(struct net_grpc_client *c);

/* The event_base the client runs on (the external one, or its internal one). */
struct event_base *net_grpc_client_base(struct net_grpc_client *c);

/* Replaces the extra headers sent with every call from now on (opts.metadata), e.g. to
 * add etcd's {"token", tok, NULL} after Auth/Authenticate. Copied; NULL clears them.
 * Returns 0 or NET_ENOMEM (the old headers stay). */
int net_grpc_client_set_metadata(struct net_grpc_client *c, const char *const *metadata);

/* The endpoint URL currently (or last) connected, or the first one; borrowed, valid until
 * the next call into the client. */
const char *net_grpc_client_endpoint(struct net_grpc_client *c);

/* Runs the client's event_base for timeout_ms, dispatching callbacks (0: only what is
 * ready now, no wait). Returns 0, or NET_EINVAL when called while the base is already
 * running. For sync users of streams with callbacks. */
int net_grpc_client_poll(struct net_grpc_client *c, int timeout_ms);

/* --- unary calls ------------------------------------------------------------------- */

/* Synchronous unary call: packs req, sends it to `method` ("/etcdserverpb.KV/Put",
 * borrowed), waits for the reply and unpacks it with resp_desc into *resp_out (ownership
 * passes to the caller: free with protobuf_c_message_free_unpacked(*resp_out, NULL)).
 * timeout_ms: deadline for the whole call including dialing, sent as grpc-timeout;
 * 0 means opts.call_timeout_ms, < 0 none. Returns the final status code (NET_GRPC_OK
 * on success) and fills st (may be NULL). On failure *resp_out is NULL. */
int net_grpc_unary(struct net_grpc_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp_out,
                   struct net_grpc_status *st, int timeout_ms);

/* Same with raw protobuf bytes: req (borrowed, req_len bytes) is sent as one message;
 * on success *resp (malloc'd, caller frees with free(); may be NULL when *resp_len is 0)
 * holds the reply message. */
int net_grpc_unary_raw(struct net_grpc_client *c, const char *method, const uint8_t *req,
                       size_t req_len, uint8_t **resp, size_t *resp_len,
                       struct net_grpc_status *st, int timeout_ms);

/* Completion of an async unary call. st and resp (resp_len bytes) are borrowed for the
 * callback only; resp is NULL unless st->code is NET_GRPC_OK. */
typedef void (*net_grpc_unary_cb)(void *ud, const struct net_grpc_status *st,
                                  const uint8_t *resp, size_t resp_len);

/* Completion of an async unary call with an unpacked message. resp is NULL unless
 * st->code is NET_GRPC_OK; ownership of resp passes to the callback (free it with
 * protobuf_c_message_free_unpacked(resp, NULL)). */
typedef void (*net_grpc_unary_msg_cb)(void *ud, const struct net_grpc_status *st,
                                      ProtobufCMessage *resp);

/* Starts a unary call; cb runs exactly once, later, from the event loop (also for
 * failures such as an unreachable endpoint). req is copied. Any number of calls may be
 * in flight on one client (HTTP/2 multiplexing; beyond the server's
 * MAX_CONCURRENT_STREAMS they wait in the client). Returns 0, NET_EINVAL (NULL method or
 * cb) or NET_ENOMEM; on error cb is not called. */
int net_grpc_unary_async(struct net_grpc_client *c, const char *method, const uint8_t *req,
                         size_t req_len, int timeout_ms, net_grpc_unary_cb cb, void *ud);

/* The same, packing req now and unpacking the reply with resp_desc for cb. */
int net_grpc_unary_msg_async(struct net_grpc_client *c, const char *method,
                             const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                             net_grpc_unary_msg_cb cb, void *ud);

/* --- streams (Watch, LeaseKeepAlive, Snapshot) -------------------------------------- */

/* A message received on a stream: bytes borrowed for the callback only. */
typedef void (*net_grpc_stream_msg_cb)(void *ud, struct net_grpc_stream *s, const uint8_t *msg,
                                       size_t len);
/* The stream ended (server trailers, reset, lost connection, deadline, cancel). Runs
 * exactly once per stream unless the client is freed first. st is borrowed. The handle
 * stays valid until net_grpc_stream_free (which may be called from here). */
typedef void (*net_grpc_stream_close_cb)(void *ud, struct net_grpc_stream *s,
                                         const struct net_grpc_status *st);

struct net_grpc_stream_opts {
    /* Called per received message. NULL: messages are queued inside the stream for
     * net_grpc_stream_recv (sync style; the queue is bounded by HTTP/2 flow control:
     * the client stops granting window while 4 MiB are queued). */
    net_grpc_stream_msg_cb on_msg;
    net_grpc_stream_close_cb on_close; /* optional */
    void *ud;
    /* Extra headers for this stream only, "name", "value", ..., NULL (copied), e.g.
     * {"hasleader", "true", NULL} for etcd's Watch. Sent after the client's own. */
    const char *const *metadata;
    /* Deadline for the whole stream, sent as grpc-timeout; 0 or < 0 means none (streams
     * are usually long-lived). */
    int timeout_ms;
};

/* Opens a stream on `method` ("/etcdserverpb.Watch/Watch"). The stream is usable at
 * once: sends are queued until the connection and the HTTP/2 stream exist. The request
 * headers go out when the connection is ready; a dial failure ends the stream with
 * UNAVAILABLE through on_close / net_grpc_stream_recv (after trying every endpoint).
 * Returns 0 and a handle in *out (caller releases it with net_grpc_stream_free), or
 * NET_EINVAL / NET_ENOMEM. opts is copied. */
int net_grpc_stream_open(struct net_grpc_client *c, const char *method,
                         const struct net_grpc_stream_opts *opts, struct net_grpc_stream **out);

/* Queues one message (buf copied) for sending. Returns 0, NET_ECLOSED when the stream has
 * ended or was half-closed, or NET_ENOMEM. Delivery is not confirmed: an ended stream
 * reports its status through on_close / net_grpc_stream_recv. */
int net_grpc_stream_send(struct net_grpc_stream *s, const uint8_t *buf, size_t len);
/* Packs and queues msg. Same returns. */
int net_grpc_stream_send_msg(struct net_grpc_stream *s, const ProtobufCMessage *msg);

/* Half-closes the sending side (END_STREAM after the queued messages): server-streaming
 * calls such as Snapshot send their one request then half-close. Returns 0 or
 * NET_ECLOSED. */
int net_grpc_stream_close_send(struct net_grpc_stream *s);

/* Cancels the stream (RST_STREAM CANCEL). on_close runs later with CANCELLED unless the
 * stream had already ended. Idempotent. */
void net_grpc_stream_cancel(struct net_grpc_stream *s);

/* Values of net_grpc_stream_recv. */
enum net_grpc_recv {
    NET_GRPC_RECV_MSG = 1,      /* a message was returned */
    NET_GRPC_RECV_TIMEOUT = 0,  /* timeout_ms passed; the stream is still open */
    NET_GRPC_RECV_CLOSED = -1,  /* the stream ended; see net_grpc_stream_status */
};

/* Blocking receive for streams opened without on_msg: runs the event loop until a message
 * is queued, the stream ends, or timeout_ms passes (< 0: no limit; 0: only what is
 * already there). On NET_GRPC_RECV_MSG, *msg (malloc'd, caller frees with free(); NULL
 * when *len is 0) and *len hold the message. Messages queued before the end are all
 * returned before NET_GRPC_RECV_CLOSED. Same base rule as the other sync calls. */
int net_grpc_stream_recv(struct net_grpc_stream *s, uint8_t **msg, size_t *len, int timeout_ms);

/* The same, unpacking with desc into *out (caller frees with
 * protobuf_c_message_free_unpacked). A message that does not unpack cancels the stream
 * and returns NET_GRPC_RECV_CLOSED with status INTERNAL. */
int net_grpc_stream_recv_msg(struct net_grpc_stream *s, const ProtobufCMessageDescriptor *desc,
                             ProtobufCMessage **out, int timeout_ms);

/* True once the stream has ended (its status is final). */
int net_grpc_stream_closed(const struct net_grpc_stream *s);

/* The final status once the stream has ended; while it is open, code NET_GRPC_OK and an
 * empty message. Borrowed, valid until net_grpc_stream_free. */
const struct net_grpc_status *net_grpc_stream_status(const struct net_grpc_stream *s);

/* Cancels the stream if still open and releases the handle; its callbacks do not run
 * afterwards. May be called from inside the stream's own callbacks, and after the client
 * was freed. NULL is ignored. */
void net_grpc_stream_free(struct net_grpc_stream *s);

/* --- helpers --------------------------------------------------------------------- */

/* Formats a deadline as a grpc-timeout header value ("250m", "30S"), at most 8 digits as
 * the spec requires. buf must hold at least 16 bytes. Exposed for tests. */
void net_grpc_format_timeout(int timeout_ms, char *buf, size_t len);

/* Percent-decodes a grpc-message value (in, len bytes) into out (outlen bytes, always
 * NUL-terminated, cut to fit). Malformed escapes are copied as they are. */
void net_grpc_percent_decode(const char *in, size_t len, char *out, size_t outlen);

#endif

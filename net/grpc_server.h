/* grpc_server — plinth's gRPC server over HTTP/2 (nghttp2 + libevent + OpenSSL): listens
 * on https:// (TLS, ALPN h2) and http:// (prior-knowledge h2c) URLs, dispatches etcd's
 * method paths to handlers, and carries unary, server-streaming and bidi calls. */
#ifndef PLINTH_NET_GRPC_SERVER_H
#define PLINTH_NET_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

#include "net/grpc_client.h" /* enum net_grpc_code: the gRPC status codes (NET_GRPC_OK...) */
#include "net/net.h"

/*
 * Model
 * -----
 * A server owns listeners and connections on one event_base (borrowed; the caller runs
 * it). Every HTTP/2 stream that names a registered method becomes a call
 * (struct net_grpc_call). The server knows framing, not meaning: handlers receive raw
 * protobuf bytes and answer with raw bytes (or a ProtobufCMessage to pack).
 *
 * Life of a call
 *   1. The request headers arrive; the method is looked up. Unknown method: the server
 *      answers UNIMPLEMENTED itself, no handler runs.
 *   2. For each complete request message the method's handler runs with the bytes
 *      (borrowed for the callback only). UNARY and SERVER_STREAM methods get exactly one
 *      handler call (further messages are ignored); BIDI methods get one per message.
 *      A request with no message at all (END_STREAM first) on a UNARY/SERVER_STREAM
 *      method is answered INTERNAL by the server.
 *   3. The handler answers at once or later, from any callback on the same event_base
 *      (e.g. after Raft commits): net_grpc_call_reply for unary calls, or
 *      net_grpc_call_send ... net_grpc_call_finish for streams. Answers are queued and
 *      written by the loop (never inline), HTTP/2 flow control permitting.
 *   4. When the stream ends for any reason - our status went out, the client cancelled,
 *      the deadline passed, the connection dropped, or the server was freed - the call's
 *      close callback runs exactly once, and then the call is freed: the pointer is
 *      invalid after the close callback returns. Keep a call pointer only while you can
 *      be told it closed (set a close callback before storing it anywhere).
 *
 * Threads: everything belongs to the thread running the event_base; nothing here is
 * thread-safe.
 *
 * Reentrancy: handlers and callbacks may call any net_grpc_call_* function, including on
 * other calls; they must not call net_grpc_server_free. The server never frees a call
 * while one of that call's callbacks is running.
 *
 * Limits and timers
 *   - A request message whose 5-byte gRPC prefix announces more than max_request_bytes
 *     is answered RESOURCE_EXHAUSTED before its body is buffered.
 *   - A compressed message (flag 1) answers UNIMPLEMENTED (plinth negotiates no
 *     compression); responses are never compressed.
 *   - A request that is not POST or has a content-type other than application/grpc[+...]
 *     is refused (HTTP 405/415 with grpc-status INTERNAL); a missing or relative :path
 *     answers UNIMPLEMENTED. Request headers over 16 KiB or holding NUL reset the stream.
 *   - grpc-timeout (units H M S m u n) sets the call's deadline; when it passes and the
 *     call has not finished, the server finishes it with DEADLINE_EXCEEDED.
 *   - Connections without open calls are closed after idle_timeout_ms; connections that
 *     read nothing for keepalive_ms get a PING and are closed if nothing arrives within
 *     keepalive_timeout_ms (half-open peers). Client PINGs are always answered; frequent
 *     pings (etcdctl asks for one every 2 s) are fine.
 *
 * Example
 *
 *   static void put(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
 *   {
 *       Etcdserverpb__PutRequest *req =
 *           etcdserverpb__put_request__unpack(NULL, len, msg);
 *       if (!req) { net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "bad request");
 *                   return; }
 *       Etcdserverpb__PutResponse resp = ETCDSERVERPB__PUT_RESPONSE__INIT;
 *       net_grpc_call_reply_msg(call, &resp.base);   // message, then grpc-status 0
 *       etcdserverpb__put_request__free_unpacked(req, NULL);
 *   }
 *   ...
 *   struct net_grpc_server_opts o = { .ssl_ctx = ctx };   // from net_tls_server_ctx_new
 *   struct net_grpc_server *srv = NULL;
 *   net_grpc_server_new(base, &o, &srv);
 *   net_grpc_server_register(srv, "/etcdserverpb.KV/Put", NET_GRPC_UNARY, put, NULL);
 *   char err[256]; uint16_t port;
 *   if (net_grpc_server_listen(srv, "https://127.0.0.1:2379", &port, err, sizeof err))
 *       fprintf(stderr, "%s\n", err);   // "grpc server: listen 127.0.0.1:2379: address in use"
 *   event_base_dispatch(base);
 */

struct net_grpc_server;
struct net_grpc_call;

/* Default limits (etcd's --max-request-bytes default is 1.5 MiB). */
#define NET_GRPC_DEFAULT_MAX_REQUEST (1536u * 1024u)
#define NET_GRPC_DEFAULT_MAX_PENDING (4u * 1024u * 1024u)

/* Called with one line of text about a connection-level event worth a log line: a failed
 * TLS handshake ("grpc server: 127.0.0.1:40312: TLS handshake: certificate verify failed:
 * unable to get local issuer certificate"), an HTTP/2 protocol error, a timeout close.
 * text is borrowed for the call. */
typedef void (*net_grpc_log_fn)(void *arg, const char *text);

struct net_grpc_server_opts {
    /* Server context for https:// listeners (from net_tls_server_ctx_new: ALPN h2 and, with
     * client_cert_auth, client verification). Borrowed: must outlive the server. NULL is
     * fine when only http:// (h2c) URLs are used. */
    SSL_CTX *ssl_ctx;
    /* Largest request message accepted; 0 means NET_GRPC_DEFAULT_MAX_REQUEST. */
    size_t max_request_bytes;
    /* Bound on a call's queued, unsent response bytes (net_grpc_call_send answers
     * NET_EFULL beyond it; one message is always accepted into an empty queue); 0 means
     * NET_GRPC_DEFAULT_MAX_PENDING. */
    size_t max_pending_bytes;
    /* SETTINGS_MAX_CONCURRENT_STREAMS per connection; 0 means 1000. */
    uint32_t max_concurrent_streams;
    /* Close a connection with no open call after this long; 0 means 300000 (5 min),
     * < 0 never. */
    int idle_timeout_ms;
    /* Ping a connection that read nothing for this long; 0 means 60000, < 0 never. */
    int keepalive_ms;
    /* Close it if nothing arrives within this long after the ping; 0 means 20000. */
    int keepalive_timeout_ms;
    /* Close a connection whose TLS handshake / HTTP/2 preface has not completed in this
     * long; 0 means 10000. */
    int handshake_timeout_ms;
    /* Optional log sink for connection-level events; NULL is silent. */
    net_grpc_log_fn log;
    void *log_arg;
};

/* Call shapes, fixed per method. */
enum net_grpc_kind {
    NET_GRPC_UNARY = 0,         /* one request, one reply (KV/Put, KV/Range, ...) */
    NET_GRPC_SERVER_STREAM = 1, /* one request, many replies (Maintenance/Snapshot) */
    NET_GRPC_BIDI = 2,          /* many both ways (Watch/Watch, Lease/LeaseKeepAlive) */
};

/* A method handler: runs once per request message (see "Life of a call"). msg is
 * borrowed for the duration of the callback (copy or unpack it); len may be 0 (an empty
 * protobuf message is valid). method_ud is the pointer given to net_grpc_server_register. */
typedef void (*net_grpc_handler_fn)(struct net_grpc_call *call, const uint8_t *msg,
                                    size_t len, void *method_ud);

/* Per-call event: user is the call's user pointer (net_grpc_call_set_user). */
typedef void (*net_grpc_call_event_fn)(struct net_grpc_call *call, void *user);

/* Close callback. err is 0 when the call ended because our status went out, NET_ECLOSED
 * when the client cancelled or the connection dropped (or the server was freed) first,
 * NET_ETIMEDOUT when the deadline passed. The call is freed when this returns. */
typedef void (*net_grpc_close_fn)(struct net_grpc_call *call, void *user, int err);

/* --- server --------------------------------------------------------------------------- */

/* Makes a server on base (borrowed; must outlive the server). opts is copied (NULL means
 * all defaults). Returns 0 and *out, NET_EINVAL (NULL base or out) or NET_ENOMEM.
 * If SIGPIPE is at its default disposition it is set to SIG_IGN: a write to a connection
 * the client reset must fail that connection, not end the process. */
int net_grpc_server_new(struct event_base *base, const struct net_grpc_server_opts *opts,
                        struct net_grpc_server **out);

/* Closes every listener and connection and frees the server. Open calls are closed first:
 * their close callbacks run (err NET_ECLOSED) from inside this function. NULL is ignored.
 * Never call from inside a server callback. */
void net_grpc_server_free(struct net_grpc_server *srv);

/* Graceful stop: closes the listeners and sends every connection a GOAWAY naming the last
 * stream it accepted. Calls already running continue (answer them as usual); new calls are
 * refused; each connection closes once its calls are done. Run the loop until
 * net_grpc_server_stats shows no open connection (or a time limit), then free the server.
 * Idempotent. */
void net_grpc_server_shutdown(struct net_grpc_server *srv);

/* Adds a method. path is copied ("/etcdserverpb.KV/Put"); method_ud is borrowed and passed
 * to every handler call. Registering a path again replaces its entry. Returns 0,
 * NET_EINVAL (path not starting with '/', NULL handler, bad kind) or NET_ENOMEM. Safe at
 * any time; calls already running keep their old handler. */
int net_grpc_server_register(struct net_grpc_server *srv, const char *path,
                             enum net_grpc_kind kind, net_grpc_handler_fn handler,
                             void *method_ud);

/* Starts listening on url: "https://HOST:PORT" (TLS with ALPN h2; needs opts.ssl_ctx),
 * "http://HOST:PORT" (h2c with prior knowledge) or bare "HOST:PORT" (h2c). HOST is an IPv4
 * literal, a bracketed IPv6 literal ("[::1]") or a name such as "localhost" (the first
 * address it resolves to). PORT 0 picks a free port. May be called several times for
 * several URLs. On success returns 0 and, if bound_port is not NULL, the port actually
 * bound. On failure returns NET_EINVAL (malformed URL, https without ssl_ctx),
 * NET_EADDRINUSE or NET_ESYS, and writes text into err (may be NULL; errlen bytes), e.g.
 * "grpc server: listen 127.0.0.1:2379: Address already in use". */
int net_grpc_server_listen(struct net_grpc_server *srv, const char *url, uint16_t *bound_port,
                           char *err, size_t errlen);

/* Counters for tests and metrics. */
struct net_grpc_server_stats {
    uint64_t connections_open;     /* live connections */
    uint64_t connections_accepted; /* total accepted */
    uint64_t calls_open;           /* live calls */
    uint64_t calls_started;        /* total calls dispatched to a handler */
    uint64_t calls_unimplemented;  /* unknown methods answered 12 */
    uint64_t tls_handshake_failures;
    uint64_t timeouts_closed;      /* connections closed for idle / keepalive / handshake */
};
void net_grpc_server_stats(const struct net_grpc_server *srv, struct net_grpc_server_stats *out);

/* --- calls: request side ------------------------------------------------------------- */

/* The method path ("/etcdserverpb.KV/Range"); borrowed, valid until close. */
const char *net_grpc_call_method(const struct net_grpc_call *call);

/* The value of request header `name` (lower case, e.g. "hasleader", "token",
 * "client-api-version", ":authority"), or NULL when absent. When a header repeats, the
 * first value. Borrowed, NUL-terminated, valid until close. */
const char *net_grpc_call_header(const struct net_grpc_call *call, const char *name);

/* The call's deadline from grpc-timeout as CLOCK_MONOTONIC milliseconds (compare with
 * net_grpc_now_ms()), or 0 when the client sent none. */
int64_t net_grpc_call_deadline_ms(const struct net_grpc_call *call);

/* CLOCK_MONOTONIC in milliseconds, the clock of net_grpc_call_deadline_ms. */
int64_t net_grpc_now_ms(void);

/* The client's address "127.0.0.1:54321" or "[::1]:54321"; borrowed, valid until close. */
const char *net_grpc_call_peer(const struct net_grpc_call *call);

/* True when the call came over TLS with a client certificate that verified against the
 * server's CA (always false on h2c). */
bool net_grpc_call_peer_verified(const struct net_grpc_call *call);

/* The verified client certificate's common name into buf (NUL-terminated). Returns 0, or
 * NET_ENOTFOUND when there is none (h2c, no certificate, not verified). */
int net_grpc_call_peer_common_name(const struct net_grpc_call *call, char *buf, size_t len);

/* The kind the method was registered with. */
enum net_grpc_kind net_grpc_call_kind(const struct net_grpc_call *call);

/* True once the client half-closed (sent END_STREAM): no more messages will arrive. */
bool net_grpc_call_half_closed(const struct net_grpc_call *call);

/* --- calls: per-call state and callbacks ---------------------------------------------- */

/* The user pointer passed to the call's callbacks (NULL at first). Borrowed: the server
 * never frees it; release it in the close callback. */
void net_grpc_call_set_user(struct net_grpc_call *call, void *user);
void *net_grpc_call_user(const struct net_grpc_call *call);

/* Sets the close callback (see net_grpc_close_fn); replaces an earlier one; NULL removes. */
void net_grpc_call_set_close_cb(struct net_grpc_call *call, net_grpc_close_fn fn);

/* Sets a callback run once when the client half-closes (after the handler has seen every
 * message). If the client had already half-closed, it runs from the loop soon after. */
void net_grpc_call_set_half_close_cb(struct net_grpc_call *call, net_grpc_call_event_fn fn);

/* Sets a callback run when the call's queued response bytes fall to half of
 * max_pending_bytes or below after a net_grpc_call_send returned NET_EFULL: the producer
 * (a watch) may send again. Runs from the loop, once per NET_EFULL. */
void net_grpc_call_set_writable_cb(struct net_grpc_call *call, net_grpc_call_event_fn fn);

/* --- calls: response side -------------------------------------------------------------- */

/* Unary answer: queues buf (len bytes, copied) as the one response message followed by
 * grpc-status 0. Returns 0, NET_ECLOSED when the call already finished (status queued,
 * deadline passed or client gone - the close callback is then on its way), NET_EINVAL for
 * a message over 4 GiB, or NET_ENOMEM. */
int net_grpc_call_reply(struct net_grpc_call *call, const uint8_t *buf, size_t len);

/* Packs msg (borrowed) and replies with it, as net_grpc_call_reply. */
int net_grpc_call_reply_msg(struct net_grpc_call *call, const ProtobufCMessage *msg);

/* Stream answer: queues one message (copied). Returns 0; NET_EFULL when the queue already
 * holds max_pending_bytes (the message is NOT queued; wait for the writable callback);
 * NET_ECLOSED when the call finished; NET_ENOMEM. A message is always accepted into an
 * empty queue, so net_grpc_call_pending_bytes never exceeds max_pending_bytes plus one
 * message (plus its 5-byte prefix). */
int net_grpc_call_send(struct net_grpc_call *call, const uint8_t *buf, size_t len);

/* Packs msg (borrowed) and sends it, as net_grpc_call_send. */
int net_grpc_call_send_msg(struct net_grpc_call *call, const ProtobufCMessage *msg);

/* Ends the call with a gRPC status (NET_GRPC_OK, NET_GRPC_UNAVAILABLE, ...) and optional
 * text (copied, percent-encoded on the wire, cut to 256 bytes; NULL for none), after the
 * messages already queued. With nothing sent yet, the answer is a single trailers-only
 * HEADERS frame. Returns 0, or NET_ECLOSED when the call had already finished. */
int net_grpc_call_finish(struct net_grpc_call *call, int grpc_status, const char *message);

/* Response bytes queued for this call and not yet handed to the connection (the framed
 * size, 5 bytes per message more than the payloads). Grows when the client stops reading
 * (HTTP/2 flow control holds the data here). */
size_t net_grpc_call_pending_bytes(const struct net_grpc_call *call);

/* True once net_grpc_call_finish / net_grpc_call_reply was called (or the server finished
 * the call itself: deadline, limits). */
bool net_grpc_call_finished(const struct net_grpc_call *call);

/* --- helpers --------------------------------------------------------------------------- */

/* Parses a grpc-timeout value ("4994281u", "5S", "100m", "1H"): 1-8 digits and a unit H M
 * S m u n. Returns 0 and the duration in nanoseconds (saturating), or NET_EINVAL. */
int net_grpc_parse_timeout(const char *value, int64_t *ns_out);

#endif

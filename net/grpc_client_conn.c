/* grpc_client_conn — the gRPC client's connections: dialing with fail-over, TLS with ALPN
 * h2 or prior-knowledge h2c, the nghttp2 client session and its callbacks, keepalive pings,
 * teardown, and the deferred work that ties calls to connections. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "net/grpc_client_internal.h"
#include "net/tls.h"

/* Stop asking nghttp2 for frames while this much waits in the socket buffer. */
#define OUT_HIGH (1u << 20)
/* Our receive windows: 1 MiB per stream, 16 MiB for the connection. */
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)

/* --- connections ----------------------------------------------------------------- */

static void conn_fail(struct gc_conn *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Puts a call that never reached the server back in line for the next connection. */
static void requeue(struct gc_call *call)
{
    call->conn = NULL;
    call->stream_id = -1;
    call->pending = true;
    call->hdrs_sent = call->resp_hdrs = call->deferred = false;
    call->http_status = 0;
    call->has_grpc_status = false;
    evbuffer_drain(call->in, evbuffer_get_length(call->in));
    if (call->out_taken && call->req_copy) {
        evbuffer_drain(call->out, evbuffer_get_length(call->out));
        evbuffer_add(call->out, call->req_copy, call->req_copy_len);
        call->out_taken = false;
    }
}

static bool retryable(const struct gc_call *call)
{
    return !call->finishing && !call->done && !call->resp_hdrs && (!call->out_taken || call->req_copy);
}

/* After a failed dial or a connection lost before its calls went out: the pending calls
 * have now failed on one more endpoint; those that tried them all give up. */
static void count_failure(struct net_grpc_client *c, const char *why)
{
    for (struct gc_call *call = c->calls; call; call = call->next)
        if (call->pending && !call->finishing && !call->done &&
            ++call->dial_failures >= c->neps)
            gc_call_finish(call, NET_GRPC_UNAVAILABLE, "%s", why);
}

static void conn_fail(struct gc_conn *k, const char *fmt, ...)
{
    struct net_grpc_client *c = k->c;
    if (k->state == CONN_DEAD)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->err, sizeof(k->err), fmt, ap);
    va_end(ap);
    bool was_ready = k->state == CONN_READY;
    k->state = CONN_DEAD;
    if (c->conn == k)
        c->conn = NULL;
    snprintf(c->last_err, sizeof(c->last_err), "%s", k->err);
    if (k->bev)
        bufferevent_disable(k->bev, EV_READ | EV_WRITE);
    if (k->dial_timer)
        evtimer_del(k->dial_timer);
    if (k->ka_timer)
        evtimer_del(k->ka_timer);
    /* The session goes away without calling on_stream_close: settle each call here. */
    for (struct gc_call *call = c->calls, *nx; call; call = nx) {
        nx = call->next;   /* gc_call_maybe_free may unlink call, nothing else */
        if (call->conn != k)
            continue;
        k->nstreams--;
        if (!call->hdrs_sent && retryable(call)) {
            requeue(call);
        } else {
            call->conn = NULL;
            call->stream_id = -1;
            gc_call_finish(call, NET_GRPC_UNAVAILABLE, "%s", k->err);
            gc_call_maybe_free(call);
        }
    }
    /* Try the next endpoint; a lost ready connection also moves on, since the
     * server behind it may be gone for a while. */
    c->cur_ep = (k->ep + 1) % c->neps;
    (void)was_ready;
    count_failure(c, k->err);
    gc_kick(c);
}

void gc_conn_free(struct gc_conn *k)
{
    if (k->ng)
        nghttp2_session_del(k->ng);
    if (k->bev)
        bufferevent_free(k->bev);
    if (k->dial_timer)
        event_free(k->dial_timer);
    if (k->ka_timer)
        event_free(k->ka_timer);
    free(k);
}

void gc_conn_send(struct gc_conn *k)
{
    if (k->state == CONN_DEAD || !k->ng)
        return;
    int rv = nghttp2_session_send(k->ng);
    if (rv != 0) {
        conn_fail(k, "connection to %s: http2: %s", k->c->eps[k->ep].url, nghttp2_strerror(rv));
        return;
    }
    if (!nghttp2_session_want_read(k->ng) && !nghttp2_session_want_write(k->ng) &&
        evbuffer_get_length(bufferevent_get_output(k->bev)) == 0)
        conn_fail(k, "connection to %s: closed by server (%s)", k->c->eps[k->ep].url,
                  k->goaway_err[0] ? k->goaway_err : "GOAWAY");
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)ng, (void)flags;
    struct gc_conn *k = ud;
    struct evbuffer *out = bufferevent_get_output(k->bev);
    if (evbuffer_get_length(out) >= OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (bufferevent_write(k->bev, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int frame_send_cb(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if (f->hd.type == NGHTTP2_HEADERS) {
        struct gc_call *call = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (call)
            call->hdrs_sent = true;
    }
    return 0;
}

/* The request HEADERS was never sent (the stream was reset before it left, or the
 * connection is going away): nghttp2 will not report a stream close for it. */
static int frame_not_send_cb(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    struct gc_conn *k = ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gc_call *call = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!call || call->conn != k)
        return 0;
    k->nstreams--;
    if (retryable(call)) {
        requeue(call);
        gc_kick(k->c);
    } else {
        call->conn = NULL;
        call->stream_id = -1;
        gc_call_finish(call, NET_GRPC_UNAVAILABLE, "connection to %s: request not sent: %s",
                       k->c->eps[k->ep].url, nghttp2_strerror(err));
        gc_call_maybe_free(call);
    }
    return 0;
}

static void conn_ready(struct gc_conn *k);

static int frame_recv_cb(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    struct gc_conn *k = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        if (k->state == CONN_DIALING)
            conn_ready(k);
    } else if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        k->ping_sent_ms = 0;
    } else if (f->hd.type == NGHTTP2_GOAWAY) {
        /* Streams above last_stream_id close with REFUSED_STREAM and are retried;
         * new calls go to a fresh connection. */
        k->goaway = true;
        if (f->goaway.error_code != NGHTTP2_NO_ERROR) {
            /* e.g. grpc-go's ENHANCE_YOUR_CALM "too_many_pings": say so when it closes */
            size_t n = f->goaway.opaque_data_len < 64 ? f->goaway.opaque_data_len : 64;
            char dbg[65];
            for (size_t i = 0; i < n; i++) {
                uint8_t ch = f->goaway.opaque_data[i];
                dbg[i] = ch >= 32 && ch < 127 ? (char)ch : '?';
            }
            dbg[n] = 0;
            snprintf(k->goaway_err, sizeof(k->goaway_err), "server sent GOAWAY %s%s%s%s",
                     nghttp2_http2_strerror(f->goaway.error_code), n ? " \"" : "", dbg,
                     n ? "\"" : "");
            /* as grpc-go does: ping half as often from now on */
            if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM && strstr(dbg, "too_many_pings") &&
                k->c->ka_ms > 0 && k->c->ka_ms < 300000)
                k->c->ka_ms *= 2;
        }
        if (k->c->conn == k)
            k->c->conn = NULL;
        gc_kick(k->c);
    }
    return 0;
}

static int header_cb(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    (void)flags, (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gc_call *call = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!call || call->finishing || call->done)
        return 0;
    if (namelen == 7 && !memcmp(name, ":status", 7)) {
        call->resp_hdrs = true;
        call->http_status = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++)
            call->http_status = call->http_status * 10 + (value[i] - '0');
    } else if (namelen == 11 && !memcmp(name, "grpc-status", 11)) {
        int code = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++) {
            if (value[i] < '0' || value[i] > '9') {
                code = NET_GRPC_UNKNOWN;
                break;
            }
            code = code * 10 + (value[i] - '0');
        }
        call->has_grpc_status = true;
        call->st.code = code;
    } else if (namelen == 12 && !memcmp(name, "grpc-message", 12)) {
        net_grpc_percent_decode((const char *)value, valuelen, call->st.message,
                                sizeof(call->st.message));
    }
    return 0;
}

static int data_chunk_cb(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags, (void)ud;
    /* The connection window is always given back at once, so a slow stream reader never
     * stalls the other calls; the stream's own window is what bounds it. */
    nghttp2_session_consume_connection(ng, len);
    struct gc_call *call = nghttp2_session_get_stream_user_data(ng, sid);
    if (!call || call->finishing || call->done) {
        nghttp2_session_consume_stream(ng, sid, len);
        return 0;
    }
    gc_call_on_data(call, data, len);
    return 0;
}

static int rst_to_code(uint32_t err)
{
    switch (err) {
    case NGHTTP2_CANCEL: return NET_GRPC_CANCELLED;
    case NGHTTP2_REFUSED_STREAM: return NET_GRPC_UNAVAILABLE;
    case NGHTTP2_ENHANCE_YOUR_CALM: return NET_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY: return NET_GRPC_PERMISSION_DENIED;
    default: return NET_GRPC_INTERNAL;
    }
}

/* gRPC's mapping for a response without grpc-status. */
static int http_to_code(int status)
{
    switch (status) {
    case 400: return NET_GRPC_INTERNAL;
    case 401: return NET_GRPC_UNAUTHENTICATED;
    case 403: return NET_GRPC_PERMISSION_DENIED;
    case 404: return NET_GRPC_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return NET_GRPC_UNAVAILABLE;
    default: return NET_GRPC_UNKNOWN;
    }
}

static int stream_close_cb(nghttp2_session *ng, int32_t sid, uint32_t err, void *ud)
{
    struct gc_conn *k = ud;
    struct gc_call *call = nghttp2_session_get_stream_user_data(ng, sid);
    if (!call || call->conn != k)
        return 0;
    k->nstreams--;
    if (!call->finishing && !call->done && err == NGHTTP2_REFUSED_STREAM && retryable(call)) {
        requeue(call);   /* the server promises it did not process it */
        gc_kick(k->c);
        return 0;
    }
    call->conn = NULL;
    call->stream_id = -1;
    if (!call->finishing && !call->done) {
        const char *url = k->c->eps[k->ep].url;
        if (call->has_grpc_status) {
            if (call->st.code == NET_GRPC_OK && call->kind != CALL_STREAM && !call->got_resp)
                gc_status_set(&call->st, NET_GRPC_INTERNAL, "%s: server sent no response message",
                              url);
            else if (call->st.code != NET_GRPC_OK && !call->st.message[0])
                gc_status_set(&call->st, call->st.code, "server returned %s",
                              net_grpc_code_name(call->st.code));
        } else if (err != NGHTTP2_NO_ERROR) {
            gc_status_set(&call->st, rst_to_code(err), "%s: stream reset by server: %s", url,
                          nghttp2_http2_strerror(err));
        } else if (call->http_status && call->http_status != 200) {
            gc_status_set(&call->st, http_to_code(call->http_status),
                          "%s: unexpected HTTP status %d", url, call->http_status);
        } else {
            gc_status_set(&call->st, NET_GRPC_INTERNAL, "%s: stream ended without grpc-status",
                          url);
        }
        gc_call_end(call);
    }
    gc_call_maybe_free(call);
    if (k->goaway && k->nstreams == 0)
        gc_kick(k->c);
    return 0;
}

static void readcb(struct bufferevent *bev, void *arg)
{
    struct gc_conn *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    k->last_read_ms = gc_now_ms(k->c);
    if (k->state == CONN_DEAD || !k->ng)
        return;
    size_t len;
    while ((len = evbuffer_get_length(in)) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t r = nghttp2_session_mem_recv(k->ng, v.iov_base, v.iov_len);
        if (r < 0) {
            conn_fail(k, "connection to %s: http2: %s", k->c->eps[k->ep].url,
                      nghttp2_strerror((int)r));
            return;
        }
        evbuffer_drain(in, (size_t)r);
    }
    gc_conn_send(k);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct gc_conn *k = arg;
    if (k->state != CONN_DEAD && k->ng && nghttp2_session_want_write(k->ng))
        gc_conn_send(k);
}

/* Text for a failed TLS connection: OpenSSL's queue for this bufferevent, then the
 * verify result. */
static void tls_error(struct bufferevent *bev, char *buf, size_t len)
{
    buf[0] = 0;
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK) {
        snprintf(buf, len, "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        while (bufferevent_get_openssl_error(bev))
            ;
        return;
    }
    unsigned long e;
    size_t off = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        const char *r = ERR_reason_error_string(e);
        if (!r)
            continue;
        if (off < len)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "; " : "tls: ", r);
    }
}

static void on_connected(struct gc_conn *k);

static void eventcb(struct bufferevent *bev, short events, void *arg)
{
    struct gc_conn *k = arg;
    struct net_grpc_client *c = k->c;
    const char *url = c->eps[k->ep].url;
    if (events & BEV_EVENT_CONNECTED) {
        on_connected(k);
        return;
    }
    int se = EVUTIL_SOCKET_ERROR();
    char why[200] = "";
    if (c->eps[k->ep].tls)
        tls_error(bev, why, sizeof(why));
    if (!why[0] && (events & BEV_EVENT_ERROR) && se)
        snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(se));
    if (!why[0] && k->goaway_err[0])
        snprintf(why, sizeof(why), "%s", k->goaway_err);
    if (!why[0])
        snprintf(why, sizeof(why), "%s", (events & BEV_EVENT_EOF) ? "connection closed" :
                                          "connection error");
    if (k->state == CONN_DIALING)
        conn_fail(k, "dial %s: %s", url, why);
    else
        conn_fail(k, "connection to %s lost: %s", url, why);
}

static void dial_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gc_conn *k = arg;
    conn_fail(k, "dial %s: timed out after %d ms", k->c->eps[k->ep].url, k->c->dial_timeout_ms);
}

static void ka_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gc_conn *k = arg;
    struct net_grpc_client *c = k->c;
    uint64_t now = gc_now_ms(c);
    if (k->ping_sent_ms && now - k->ping_sent_ms >= (uint64_t)c->ka_timeout_ms) {
        conn_fail(k, "connection to %s lost: no keepalive ping ack within %d ms",
                  c->eps[k->ep].url, c->ka_timeout_ms);
        return;
    }
    if (!k->ping_sent_ms && k->nstreams > 0 && now - k->last_read_ms >= (uint64_t)c->ka_ms) {
        if (nghttp2_submit_ping(k->ng, NGHTTP2_FLAG_NONE, NULL) == 0) {
            k->ping_sent_ms = now;
            gc_conn_send(k);
        }
    }
}

static int make_session(struct gc_conn *k)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -1;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, frame_send_cb);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, frame_not_send_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, frame_recv_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data_chunk_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, stream_close_cb);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_client_new2(&k->ng, cbs, k, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(k->ng, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(k->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
        return -1;
    return 0;
}

static void on_connected(struct gc_conn *k)
{
    struct net_grpc_client *c = k->c;
    const char *url = c->eps[k->ep].url;
    if (c->eps[k->ep].tls) {
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(k->bev), &alpn, &alen);
        if (alen && (alen != 2 || memcmp(alpn, "h2", 2) != 0)) {
            conn_fail(k, "dial %s: server chose ALPN \"%.*s\", not h2", url, (int)alen, alpn);
            return;
        }
    }
    evutil_socket_t fd = bufferevent_getfd(k->bev);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (make_session(k) != 0) {
        conn_fail(k, "dial %s: out of memory", url);
        return;
    }
    k->last_read_ms = gc_now_ms(c);
    gc_conn_send(k);   /* preface and SETTINGS; ready once the server's SETTINGS arrive */
}

/* The server's SETTINGS arrived: it speaks HTTP/2 and accepted us (with TLS 1.3 a refused
 * client certificate only shows after the handshake), so calls may go out now. Until
 * here a failure counts as a failed dial and the calls move to the next endpoint. */
static void conn_ready(struct gc_conn *k)
{
    struct net_grpc_client *c = k->c;
    evtimer_del(k->dial_timer);
    k->state = CONN_READY;
    c->cur_ep = k->ep;
    if (c->ka_ms > 0) {
        k->ka_timer = event_new(c->base, -1, EV_PERSIST, ka_cb, k);
        int iv = c->ka_ms < c->ka_timeout_ms ? c->ka_ms : c->ka_timeout_ms;
        iv = iv / 2 > 10 ? iv / 2 : 10;
        struct timeval tv = {iv / 1000, (iv % 1000) * 1000};
        if (k->ka_timer)
            evtimer_add(k->ka_timer, &tv);
    }
    gc_kick(c);
}

static void conn_dial(struct net_grpc_client *c)
{
    struct gc_conn *k = calloc(1, sizeof(*k));
    if (!k) {
        count_failure(c, "grpc client: out of memory");
        return;
    }
    k->c = c;
    k->ep = c->cur_ep;
    k->state = CONN_DIALING;
    k->next = c->conns;
    c->conns = k;
    c->conn = k;
    const struct gc_endpoint *ep = &c->eps[k->ep];
    k->dial_timer = evtimer_new(c->base, dial_timeout_cb, k);
    if (!k->dial_timer) {
        conn_fail(k, "dial %s: out of memory", ep->url);
        return;
    }
    struct timeval tv = {c->dial_timeout_ms / 1000, (c->dial_timeout_ms % 1000) * 1000};
    evtimer_add(k->dial_timer, &tv);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(ep->host, ep->port, &hints, &res);
    if (gai != 0) {
        conn_fail(k, "dial %s: %s", ep->url, gai_strerror(gai));
        return;
    }
    if (ep->tls) {
        SSL *ssl = NULL;
        if (!c->ssl || net_tls_client_ssl_new(c->ssl, ep->host, &ssl) != 0) {
            freeaddrinfo(res);
            conn_fail(k, "dial %s: tls: cannot make a connection", ep->url);
            return;
        }
        k->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (!k->bev)
            SSL_free(ssl);
        else
            bufferevent_openssl_set_allow_dirty_shutdown(k->bev, 1);
    } else {
        k->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!k->bev) {
        freeaddrinfo(res);
        conn_fail(k, "dial %s: out of memory", ep->url);
        return;
    }
    bufferevent_setcb(k->bev, readcb, writecb, eventcb, k);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    /* "localhost" may list ::1 first; servers usually listen on 127.0.0.1 */
    struct addrinfo *ai = res;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            ai = a;
            break;
        }
    int rv = bufferevent_socket_connect(k->bev, ai->ai_addr, (int)ai->ai_addrlen);
    int se = errno;
    freeaddrinfo(res);
    if (rv != 0)
        conn_fail(k, "dial %s: %s", ep->url, strerror(se ? se : ECONNREFUSED));
}

/* Deferred work, once per loop turn after something changed: free dead connections,
 * close drained ones, dial for waiting calls, submit them, flush output. */
void gc_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct net_grpc_client *c = arg;
    for (struct gc_conn **pk = &c->conns; *pk;) {
        struct gc_conn *k = *pk;
        if (k->state != CONN_DEAD && k->goaway && k->nstreams == 0 && c->conn != k)
            conn_fail(k, "connection to %s: drained after GOAWAY", c->eps[k->ep].url);
        if (k->state == CONN_DEAD && k->nstreams <= 0) {
            *pk = k->next;
            gc_conn_free(k);
            continue;
        }
        pk = &k->next;
    }
    bool any_pending = false;
    for (struct gc_call *call = c->calls; call && !any_pending; call = call->next)
        if (call->pending && !call->finishing && !call->done)
            any_pending = true;
    if (any_pending && !c->conn)
        conn_dial(c);
    struct gc_conn *k = c->conn;
    if (any_pending && k && k->state == CONN_READY && !k->goaway) {
        for (struct gc_call *call = c->calls; call; call = call->next)
            if (call->pending && !call->finishing && !call->done)
                gc_submit(k, call);
    }
    gc_run_completions(c);
    for (k = c->conns; k; k = k->next)
        if (k->state != CONN_DEAD && k->ng)
            gc_conn_send(k);
}

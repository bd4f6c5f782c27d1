/* grpc_test_client — a small nghttp2 + libevent gRPC client for the server's tests, fuzz
 * seeds and benchmark: raw control over frames, flow control and framing, on the same
 * event_base as the server under test. */
#ifndef PLINTH_TEST_GRPC_CLIENT_H
#define PLINTH_TEST_GRPC_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net/tls.h"

struct tc_conn;

struct tc_stream {
    struct tc_conn *conn;
    int32_t id;
    struct evbuffer *req; /* request body bytes not yet given to nghttp2 */
    bool req_end;         /* END_STREAM once req drains */
    bool deferred;
    struct evbuffer *resp; /* response DATA bytes (gRPC framed) */
    int http_status;
    int grpc_status; /* -1 until seen */
    char grpc_message[512];
    bool closed;
    uint32_t rst_code;
    int header_frames; /* response HEADERS frames seen (1 = trailers-only when closed) */
    size_t unconsumed;   /* DATA bytes not yet returned as window (slow connections) */
    struct tc_stream *next;
};

struct tc_conn {
    struct event_base *base;
    struct bufferevent *bev;
    nghttp2_session *session;
    SSL *ssl;
    bool connected, failed, closed, slow;
    char err[256];
    struct tc_stream *streams;
    bool goaway;
    int ping_acks;
};

static inline ssize_t tc_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                                 void *ud)
{
    (void)s, (void)flags;
    struct tc_conn *c = ud;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > (1u << 20))
        return NGHTTP2_ERR_WOULDBLOCK;
    bufferevent_write(c->bev, data, len);
    return (ssize_t)len;
}

static inline int tc_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                               size_t namelen, const uint8_t *value, size_t valuelen,
                               uint8_t flags, void *ud)
{
    (void)flags, (void)ud, (void)namelen;
    struct tc_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st)
        return 0;
    if (strcmp((const char *)name, ":status") == 0)
        st->http_status = atoi((const char *)value);
    else if (strcmp((const char *)name, "grpc-status") == 0)
        st->grpc_status = atoi((const char *)value);
    else if (strcmp((const char *)name, "grpc-message") == 0)
        snprintf(st->grpc_message, sizeof st->grpc_message, "%.*s", (int)valuelen,
                 (const char *)value);
    return 0;
}

static inline int tc_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct tc_conn *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        c->goaway = true;
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
        c->ping_acks++;
    if (f->hd.type == NGHTTP2_HEADERS) {
        struct tc_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (st)
            st->header_frames++;
    }
    return 0;
}

static inline int tc_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                             size_t len, void *ud)
{
    (void)flags, (void)ud;
    struct tc_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (st) {
        evbuffer_add(st->resp, data, len);
        st->unconsumed += len;
    }
    return 0;
}

static inline int tc_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)ud;
    struct tc_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (st) {
        st->closed = true;
        st->rst_code = code;
    }
    return 0;
}

static inline void tc_flush(struct tc_conn *c)
{
    if (c->session && !c->closed && nghttp2_session_send(c->session) != 0)
        c->closed = true;
}

static inline void tc_read_cb(struct bufferevent *bev, void *arg)
{
    struct tc_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (!c->session || !n)
        return;
    uint8_t *p = evbuffer_pullup(in, -1);
    ssize_t rv = nghttp2_session_mem_recv(c->session, p, n);
    if (rv < 0) {
        snprintf(c->err, sizeof c->err, "http2: %s", nghttp2_strerror((int)rv));
        c->closed = true;
        return;
    }
    evbuffer_drain(in, (size_t)rv);
    tc_flush(c);
}

static inline void tc_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    tc_flush(arg);
}

static inline int tc_session_start(struct tc_conn *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, tc_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, tc_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, tc_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, tc_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, tc_on_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    if (c->slow) /* a reader that never grants window beyond the first 64 KiB */
        nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_client_new2(&c->session, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv)
        return -1;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                    c->slow ? 65535u : (1u << 20)}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1);
    if (!c->slow)
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 8 << 20);
    tc_flush(c);
    return 0;
}

static inline void tc_event_cb(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct tc_conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        int fd = bufferevent_getfd(c->bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->connected = true;
        if (tc_session_start(c) != 0)
            c->failed = true;
        return;
    }
    if (events & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        if (!c->connected) {
            c->failed = true;
            net_tls_describe_error(c->ssl, c->err, sizeof c->err);
        }
        c->closed = true;
    }
}

/* Starts connecting to 127.0.0.1:port (TLS when ctx is set, checking the name "127.0.0.1").
 * slow: never grant HTTP/2 window beyond the initial 64 KiB (a stalled reader). */
static inline struct tc_conn *tc_connect(struct event_base *base, uint16_t port, SSL_CTX *ctx,
                                         bool slow)
{
    struct tc_conn *c = calloc(1, sizeof *c);
    c->base = base;
    c->slow = slow;
    if (ctx) {
        if (net_tls_client_ssl_new(ctx, "127.0.0.1", &c->ssl) != 0)
            abort();
        c->bev = bufferevent_openssl_socket_new(base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    bufferevent_setcb(c->bev, tc_read_cb, tc_write_cb, tc_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sin, sizeof sin) != 0)
        c->failed = true;
    return c;
}

static inline void tc_free(struct tc_conn *c)
{
    if (!c)
        return;
    if (c->session)
        nghttp2_session_del(c->session);
    while (c->streams) {
        struct tc_stream *st = c->streams;
        c->streams = st->next;
        evbuffer_free(st->req);
        evbuffer_free(st->resp);
        free(st);
    }
    bufferevent_free(c->bev);
    free(c);
}

static inline ssize_t tc_data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                                   uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)ud;
    struct tc_stream *st = src->ptr;
    size_t n = evbuffer_remove(st->req, buf, len);
    if (evbuffer_get_length(st->req) == 0 && st->req_end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

#define TC_NV(n, v) \
    {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

/* Opens a stream (the connection must be connected). extra: "name", "value", ..., NULL.
 * method: usually "POST"; ctype: usually "application/grpc". */
static inline struct tc_stream *tc_open_ex(struct tc_conn *c, const char *path,
                                           const char *method, const char *ctype,
                                           const char *const *extra)
{
    struct tc_stream *st = calloc(1, sizeof *st);
    st->conn = c;
    st->req = evbuffer_new();
    st->resp = evbuffer_new();
    st->grpc_status = -1;
    nghttp2_nv nv[32];
    size_t n = 0;
    nghttp2_nv base[] = {TC_NV(":method", method), TC_NV(":scheme", c->ssl ? "https" : "http"),
                         TC_NV(":path", path), TC_NV(":authority", "127.0.0.1"),
                         TC_NV("content-type", ctype), TC_NV("te", "trailers")};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        nv[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && extra[i + 1] && n < 32; i += 2) {
        nghttp2_nv e = TC_NV(extra[i], extra[i + 1]);
        nv[n++] = e;
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = tc_data_read};
    st->id = nghttp2_submit_request(c->session, NULL, nv, n, &prd, st);
    st->next = c->streams;
    c->streams = st;
    tc_flush(c);
    return st;
}

static inline struct tc_stream *tc_open(struct tc_conn *c, const char *path,
                                        const char *const *extra)
{
    return tc_open_ex(c, path, "POST", "application/grpc", extra);
}

/* Forgets a closed stream (long-running users such as the benchmark). */
static inline void tc_stream_free(struct tc_stream *st)
{
    struct tc_conn *c = st->conn;
    for (struct tc_stream **p = &c->streams; *p; p = &(*p)->next) {
        if (*p == st) {
            *p = st->next;
            break;
        }
    }
    if (c->session && !st->closed)
        nghttp2_session_set_stream_user_data(c->session, st->id, NULL);
    evbuffer_free(st->req);
    evbuffer_free(st->resp);
    free(st);
}

static inline void tc_kick(struct tc_stream *st)
{
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->conn->session, st->id);
    }
    tc_flush(st->conn);
}

/* Queues raw body bytes; end: END_STREAM after them. */
static inline void tc_send_raw(struct tc_stream *st, const void *buf, size_t len, bool end)
{
    if (len)
        evbuffer_add(st->req, buf, len);
    if (end)
        st->req_end = true;
    tc_kick(st);
}

/* Queues one gRPC-framed message. */
static inline void tc_send(struct tc_stream *st, const void *buf, size_t len, bool end)
{
    uint8_t p[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    evbuffer_add(st->req, p, 5);
    tc_send_raw(st, buf, len, end);
}

/* Pops one complete response message (malloc'd into *msg). Returns true when one was there. */
static inline bool tc_next_msg(struct tc_stream *st, uint8_t **msg, size_t *len)
{
    uint8_t p[5];
    if (evbuffer_copyout(st->resp, p, 5) != 5)
        return false;
    size_t n = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
    if (evbuffer_get_length(st->resp) < n + 5)
        return false;
    evbuffer_drain(st->resp, 5);
    *msg = malloc(n ? n : 1);
    evbuffer_remove(st->resp, *msg, n);
    *len = n;
    return true;
}

/* A slow connection grants window for everything received so far. */
static inline void tc_consume(struct tc_conn *c)
{
    for (struct tc_stream *st = c->streams; st; st = st->next) {
        if (st->unconsumed) {
            nghttp2_session_consume_connection(c->session, st->unconsumed);
            if (!st->closed)
                nghttp2_session_consume_stream(c->session, st->id, st->unconsumed);
        }
        st->unconsumed = 0;
    }
    tc_flush(c);
}

static inline void tc_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

/* Runs the loop until done(arg) or timeout_ms passes; returns done(arg). */
static inline bool tc_run_until(struct event_base *base, bool (*done)(void *), void *arg,
                                int timeout_ms)
{
    struct timeval start, now;
    evutil_gettimeofday(&start, NULL);
    struct event *tick = event_new(base, -1, EV_PERSIST, tc_tick_cb, NULL);
    struct timeval tv = {0, 5000};
    event_add(tick, &tv);
    bool ok = false;
    for (;;) {
        if (done(arg)) {
            ok = true;
            break;
        }
        evutil_gettimeofday(&now, NULL);
        long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
        if (el > timeout_ms)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return ok;
}

static inline bool tc_done_connected(void *arg)
{
    struct tc_conn *c = arg;
    return (c->session && c->connected) || c->failed || c->closed;
}

static inline bool tc_done_stream_closed(void *arg)
{
    struct tc_stream *st = arg;
    return st->closed || st->conn->closed;
}

static inline void tc_run_ms(struct event_base *base, int ms)
{
    struct timeval start, now;
    evutil_gettimeofday(&start, NULL);
    struct event *tick = event_new(base, -1, EV_PERSIST, tc_tick_cb, NULL);
    struct timeval tv = {0, 2000};
    event_add(tick, &tv);
    for (;;) {
        evutil_gettimeofday(&now, NULL);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000 > ms)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
}

#endif

/* grpc_test_server — a fixture for the gRPC server tests: a server on its own event_base
 * with echo-style methods that exercise unary, async, bidi and streaming answers. */
#ifndef PLINTH_TEST_GRPC_SERVER_H
#define PLINTH_TEST_GRPC_SERVER_H

#include <string.h>

#include "net/grpc_server.h"
#include "tests/unit/net/grpc_test_client.h"

struct fx {
    struct event_base *base;
    struct net_grpc_server *srv;
    uint16_t port;
    char log[4096];
    /* observations */
    int closes;           /* close callbacks run */
    int last_close_err;
    int handler_calls;
    struct net_grpc_call *held; /* a call answered later (Later/Hang) */
    struct event *later_ev;
    /* Pump method state */
    size_t pump_size;
    size_t pump_left;
    size_t pump_max_pending; /* largest pending_bytes seen */
    int pump_efull;
    int pump_writable;
    struct net_grpc_call *pump_call;
    int want_closes;   /* for fx_p_closes */
    int want_handlers; /* for fx_p_handlers */
};

static inline void fx_log(void *arg, const char *text)
{
    struct fx *f = arg;
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof f->log - n, "%s\n", text);
}

static inline void fx_on_close(struct net_grpc_call *call, void *user, int err)
{
    struct fx *f = user;
    f->closes++;
    f->last_close_err = err;
    if (f->held == call)
        f->held = NULL;
    if (f->pump_call == call)
        f->pump_call = NULL;
}

static inline void h_unary(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct fx *f = ud;
    f->handler_calls++;
    net_grpc_call_set_user(call, f);
    net_grpc_call_set_close_cb(call, fx_on_close);
    net_grpc_call_reply(call, msg, len);
}

static inline void later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct fx *f = arg;
    if (f->held)
        net_grpc_call_reply(f->held, (const uint8_t *)"later", 5);
}

static inline void h_later(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)msg, (void)len;
    struct fx *f = ud;
    f->handler_calls++;
    f->held = call;
    net_grpc_call_set_user(call, f);
    net_grpc_call_set_close_cb(call, fx_on_close);
    struct timeval tv = {0, 20000};
    evtimer_add(f->later_ev, &tv);
}

static inline void h_hang(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)msg, (void)len;
    struct fx *f = ud;
    f->handler_calls++;
    f->held = call;
    net_grpc_call_set_user(call, f);
    net_grpc_call_set_close_cb(call, fx_on_close);
}

static inline void bidi_half_close(struct net_grpc_call *call, void *user)
{
    (void)user;
    net_grpc_call_finish(call, NET_GRPC_OK, "done");
}

static inline void h_bidi(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct fx *f = ud;
    f->handler_calls++;
    net_grpc_call_set_user(call, f);
    net_grpc_call_set_close_cb(call, fx_on_close);
    net_grpc_call_set_half_close_cb(call, bidi_half_close);
    /* each message comes back twice; "fail" ends the call with an error */
    if (len == 4 && memcmp(msg, "fail", 4) == 0) {
        net_grpc_call_finish(call, NET_GRPC_FAILED_PRECONDITION, "asked to fail: 100% sure");
        return;
    }
    net_grpc_call_send(call, msg, len);
    net_grpc_call_send(call, msg, len);
}

static inline void pump(struct net_grpc_call *call, struct fx *f)
{
    static uint8_t chunk[64 * 1024];
    while (f->pump_left > 0) {
        int rc = net_grpc_call_send(call, chunk, f->pump_size);
        size_t p = net_grpc_call_pending_bytes(call);
        if (p > f->pump_max_pending)
            f->pump_max_pending = p;
        if (rc == NET_EFULL) {
            f->pump_efull++;
            return; /* the writable callback resumes */
        }
        if (rc != 0)
            return;
        f->pump_left--;
    }
    net_grpc_call_finish(call, NET_GRPC_OK, NULL);
}

static inline void pump_writable(struct net_grpc_call *call, void *user)
{
    struct fx *f = user;
    f->pump_writable++;
    pump(call, f);
}

static inline void h_pump(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct fx *f = ud;
    f->handler_calls++;
    f->pump_call = call;
    net_grpc_call_set_user(call, f);
    net_grpc_call_set_close_cb(call, fx_on_close);
    net_grpc_call_set_writable_cb(call, pump_writable);
    if (len == 8) { /* request: size and count, 4 bytes each, big-endian */
        f->pump_size = ((size_t)msg[0] << 24) | ((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) | msg[3];
        f->pump_left = ((size_t)msg[4] << 24) | ((size_t)msg[5] << 16) | ((size_t)msg[6] << 8) | msg[7];
    }
    if (f->pump_size > 64 * 1024)
        f->pump_size = 64 * 1024;
    pump(call, f);
}

static inline void h_headers(struct net_grpc_call *call, const uint8_t *msg, size_t len,
                             void *ud)
{
    (void)msg, (void)len, (void)ud;
    char out[512];
    const char *hl = net_grpc_call_header(call, "hasleader");
    const char *api = net_grpc_call_header(call, "client-api-version");
    int64_t dl = net_grpc_call_deadline_ms(call);
    int64_t left = dl ? dl - net_grpc_now_ms() : -1;
    snprintf(out, sizeof out, "hasleader=%s api=%s deadline=%s left_ok=%d method=%s",
             hl ? hl : "-", api ? api : "-", dl ? "yes" : "no",
             dl ? (left > 0 && left <= 5000) : 1, net_grpc_call_method(call));
    net_grpc_call_reply(call, (const uint8_t *)out, strlen(out));
}

/* Makes the fixture: a server on a fresh base listening on 127.0.0.1 port 0, h2c or TLS. */
static inline void fx_start(struct fx *f, const struct net_grpc_server_opts *o, bool tls)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    struct net_grpc_server_opts opts = o ? *o : (struct net_grpc_server_opts){0};
    opts.log = fx_log;
    opts.log_arg = f;
    if (net_grpc_server_new(f->base, &opts, &f->srv) != 0)
        abort();
    f->later_ev = evtimer_new(f->base, later_cb, f);
    net_grpc_server_register(f->srv, "/test.Echo/Unary", NET_GRPC_UNARY, h_unary, f);
    net_grpc_server_register(f->srv, "/test.Echo/Later", NET_GRPC_UNARY, h_later, f);
    net_grpc_server_register(f->srv, "/test.Echo/Hang", NET_GRPC_BIDI, h_hang, f);
    net_grpc_server_register(f->srv, "/test.Echo/Bidi", NET_GRPC_BIDI, h_bidi, f);
    net_grpc_server_register(f->srv, "/test.Echo/Pump", NET_GRPC_SERVER_STREAM, h_pump, f);
    net_grpc_server_register(f->srv, "/test.Echo/Headers", NET_GRPC_UNARY, h_headers, f);
    char err[256];
    if (net_grpc_server_listen(f->srv, tls ? "https://127.0.0.1:0" : "http://127.0.0.1:0",
                               &f->port, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
}

static inline void fx_stop(struct fx *f)
{
    net_grpc_server_free(f->srv);
    event_free(f->later_ev);
    event_base_free(f->base);
}

/* Connects a test client and waits for the connection (asserting success). */
static inline struct tc_conn *fx_connect(struct fx *f, SSL_CTX *cctx, bool slow)
{
    struct tc_conn *c = tc_connect(f->base, f->port, cctx, slow);
    tc_run_until(f->base, tc_done_connected, c, 5000);
    return c;
}

/* Predicates for tc_run_until (arg: the fixture), so tests wait for events, not for time. */
static inline bool fx_p_no_conns(void *arg)
{
    struct net_grpc_server_stats s;
    net_grpc_server_stats(((struct fx *)arg)->srv, &s);
    return s.connections_open == 0;
}

static inline bool fx_p_no_calls(void *arg)
{
    struct net_grpc_server_stats s;
    net_grpc_server_stats(((struct fx *)arg)->srv, &s);
    return s.calls_open == 0;
}

static inline bool fx_p_held(void *arg)
{
    return ((struct fx *)arg)->held != NULL;
}

static inline bool fx_p_handlers(void *arg)
{
    struct fx *f = arg;
    return f->handler_calls >= f->want_handlers;
}

static inline bool fx_p_pump_full(void *arg)
{
    return ((struct fx *)arg)->pump_efull > 0;
}

static inline bool fx_p_closes(void *arg)
{
    struct fx *f = arg;
    return f->closes >= f->want_closes;
}

/* Runs until the stream closed; returns its grpc-status (-1 if none arrived). */
static inline int fx_wait(struct fx *f, struct tc_stream *st)
{
    tc_run_until(f->base, tc_done_stream_closed, st, 10000);
    return st->grpc_status;
}

#endif

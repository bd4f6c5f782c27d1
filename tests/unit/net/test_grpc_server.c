/* test_grpc_server — gRPC server round trips over h2c and TLS with a raw nghttp2 client:
 * unary (immediate and asynchronous), bidi and server streams, limits, unknown methods,
 * malformed requests, headers and deadlines, listen errors. */
#include <stdio.h>
#include <string.h>

#include "tests/lib/testlib.h"
#include "tests/unit/net/grpc_test_certs.h"
#include "tests/unit/net/grpc_test_server.h"

static struct test_certs certs;
static SSL_CTX *server_ctx, *client_ctx;

static int group_setup(void **state)
{
    (void)state;
    if (test_certs_make(&certs) != 0)
        return -1;
    char err[NET_TLS_ERRLEN];
    struct net_tls_server_opts so = {.cert_file = test_cert_path(&certs, certs.dir, "server.pem"),
                                     .key_file = test_cert_path(&certs, certs.dir, "server-key.pem")};
    struct net_tls_client_opts co = {.ca_file = test_cert_path(&certs, certs.dir, "ca.pem")};
    if (net_tls_server_ctx_new(&so, &server_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&co, &client_ctx, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    net_tls_ctx_free(server_ctx);
    net_tls_ctx_free(client_ctx);
    test_certs_free(&certs);
    return 0;
}

static void start(struct fx *f, bool tls)
{
    struct net_grpc_server_opts o = {.ssl_ctx = tls ? server_ctx : NULL};
    fx_start(f, &o, tls);
}

static void unary_round_trip(bool tls)
{
    struct fx f;
    start(&f, tls);
    struct tc_conn *c = fx_connect(&f, tls ? client_ctx : NULL, false);
    assert_false(c->failed);
    struct tc_stream *st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send(st, "hello", 5, true);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_OK);
    assert_int_equal(st->http_status, 200);
    assert_int_equal(st->header_frames, 2); /* headers, then trailers */
    uint8_t *m = NULL;
    size_t n = 0;
    assert_true(tc_next_msg(st, &m, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(m, "hello", 5);
    free(m);
    assert_int_equal(f.closes, 1);
    assert_int_equal(f.last_close_err, 0);

    /* many calls multiplexed on one connection, including an empty message */
    struct tc_stream *s[20];
    for (int i = 0; i < 20; i++) {
        s[i] = tc_open(c, "/test.Echo/Unary", NULL);
        tc_send(s[i], "abcdefghijklmnopqrst", (size_t)i, true);
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(fx_wait(&f, s[i]), 0);
        assert_true(tc_next_msg(s[i], &m, &n));
        assert_int_equal(n, (size_t)i);
        free(m);
    }
    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.calls_started, 21);
    assert_int_equal(stats.calls_open, 0);
    assert_int_equal(stats.connections_open, 1);
    tc_free(c);
    fx_stop(&f);
}

static void test_unary_h2c(void **state)
{
    (void)state;
    unary_round_trip(false);
}

static void test_unary_tls(void **state)
{
    (void)state;
    unary_round_trip(true);
}

static void test_async_reply(void **state)
{
    (void)state;
    struct fx f;
    start(&f, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Later", NULL);
    tc_send(st, "x", 1, true);
    assert_int_equal(fx_wait(&f, st), 0);
    uint8_t *m = NULL;
    size_t n = 0;
    assert_true(tc_next_msg(st, &m, &n));
    assert_memory_equal(m, "later", 5);
    free(m);
    assert_int_equal(f.closes, 1);
    assert_null(f.held);

    /* the client cancels before the answer: close callback with NET_ECLOSED, and the late
     * reply never runs on a dead call (held was cleared by the close callback) */
    st = tc_open(c, "/test.Echo/Later", NULL);
    tc_send(st, "x", 1, true);
    assert_true(tc_run_until(f.base, fx_p_held, &f, 3000));
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    tc_flush(c);
    f.want_closes = 2;
    assert_true(tc_run_until(f.base, fx_p_closes, &f, 3000));
    tc_run_ms(f.base, 40); /* the later-timer fires on nothing */
    assert_int_equal(f.closes, 2);
    assert_int_equal(f.last_close_err, NET_ECLOSED);
    assert_null(f.held);
    tc_free(c);
    fx_stop(&f);
}

static void bidi(bool tls)
{
    struct fx f;
    start(&f, tls);
    struct tc_conn *c = fx_connect(&f, tls ? client_ctx : NULL, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Bidi", NULL);
    char buf[32];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(buf, sizeof buf, "msg-%d", i);
        tc_send(st, buf, (size_t)n, false);
        if (i % 10 == 0)
            tc_run_ms(f.base, 2); /* interleave sending and receiving */
    }
    tc_send_raw(st, NULL, 0, true);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_OK);
    assert_string_equal(st->grpc_message, "done");
    uint8_t *m = NULL;
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        assert_true(tc_next_msg(st, &m, &n));
        int k = snprintf(buf, sizeof buf, "msg-%d", i / 2);
        assert_int_equal(n, (size_t)k);
        assert_memory_equal(m, buf, n);
        free(m);
    }
    assert_false(tc_next_msg(st, &m, &n));
    assert_int_equal(f.handler_calls, 50);

    /* an error status after messages, with a percent-encoded message */
    st = tc_open(c, "/test.Echo/Bidi", NULL);
    tc_send(st, "one", 3, false);
    tc_send(st, "fail", 4, false);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_FAILED_PRECONDITION);
    assert_string_equal(st->grpc_message, "asked to fail: 100%25 sure");
    assert_true(tc_next_msg(st, &m, &n));
    free(m);
    tc_free(c);
    fx_stop(&f);
}

static void test_bidi_h2c(void **state)
{
    (void)state;
    bidi(false);
}

static void test_bidi_tls(void **state)
{
    (void)state;
    bidi(true);
}

static void test_server_stream(void **state)
{
    (void)state;
    struct fx f;
    start(&f, true);
    struct tc_conn *c = fx_connect(&f, client_ctx, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Pump", NULL);
    uint8_t req[8] = {0, 0, 0x10, 0, 0, 0, 0x01, 0}; /* 4096-byte messages, 256 of them */
    tc_send(st, req, 8, true);
    assert_int_equal(fx_wait(&f, st), 0);
    int count = 0;
    uint8_t *m = NULL;
    size_t n = 0;
    while (tc_next_msg(st, &m, &n)) {
        assert_int_equal(n, 4096);
        free(m);
        count++;
    }
    assert_int_equal(count, 256);
    tc_free(c);
    fx_stop(&f);
}

static void test_request_limit(void **state)
{
    (void)state;
    struct fx f;
    start(&f, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    size_t max = NET_GRPC_DEFAULT_MAX_REQUEST;
    uint8_t *big = calloc(1, max + 1);
    memset(big, 'k', max + 1);

    /* exactly at the limit: accepted and echoed */
    struct tc_stream *st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send(st, big, max, true);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_OK);
    uint8_t *m = NULL;
    size_t n = 0;
    assert_true(tc_next_msg(st, &m, &n));
    assert_int_equal(n, max);
    free(m);

    /* one byte over: RESOURCE_EXHAUSTED, no handler call */
    int calls = f.handler_calls;
    st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send(st, big, max + 1, true);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(st->grpc_message, "larger than max"));
    assert_int_equal(f.handler_calls, calls);

    /* only the prefix of a huge message: answered at once, before any body arrives */
    st = tc_open(c, "/test.Echo/Unary", NULL);
    uint8_t prefix[5] = {0, 0x7f, 0xff, 0xff, 0xff};
    tc_send_raw(st, prefix, 5, false);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(st->header_frames, 1); /* trailers-only */
    assert_int_equal(st->rst_code, NGHTTP2_NO_ERROR);

    /* the connection still works */
    st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send(st, "ok", 2, true);
    assert_int_equal(fx_wait(&f, st), 0);
    free(big);
    tc_free(c);
    fx_stop(&f);
}

static void test_unknown_and_malformed(void **state)
{
    (void)state;
    struct fx f;
    start(&f, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);

    struct tc_stream *st = tc_open(c, "/etcdserverpb.KV/Nope", NULL);
    tc_send(st, "x", 1, false); /* still sending when the answer comes */
    assert_int_equal(fx_wait(&f, st), NET_GRPC_UNIMPLEMENTED);
    assert_int_equal(st->http_status, 200);
    assert_int_equal(st->header_frames, 1);
    assert_non_null(strstr(st->grpc_message, "/etcdserverpb.KV/Nope"));

    st = tc_open(c, "/test.Echo/Unary", NULL);
    uint8_t comp[6] = {1, 0, 0, 0, 1, 'z'};
    tc_send_raw(st, comp, 6, true);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_UNIMPLEMENTED);
    assert_non_null(strstr(st->grpc_message, "compressed"));

    st = tc_open(c, "/test.Echo/Unary", NULL);
    uint8_t badflag[6] = {7, 0, 0, 0, 1, 'z'};
    tc_send_raw(st, badflag, 6, true);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_INTERNAL);

    st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send_raw(st, "\0\0\0", 3, true); /* ends inside a prefix */
    assert_int_equal(fx_wait(&f, st), NET_GRPC_INTERNAL);

    st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send_raw(st, NULL, 0, true); /* no message at all */
    assert_int_equal(fx_wait(&f, st), NET_GRPC_INTERNAL);

    st = tc_open_ex(c, "/test.Echo/Unary", "GET", "application/grpc", NULL);
    tc_send_raw(st, NULL, 0, true);
    fx_wait(&f, st);
    assert_int_equal(st->http_status, 405);

    st = tc_open_ex(c, "/test.Echo/Unary", "POST", "text/plain", NULL);
    tc_send_raw(st, NULL, 0, true);
    fx_wait(&f, st);
    assert_int_equal(st->http_status, 415);

    /* application/grpc+proto is gRPC too */
    st = tc_open_ex(c, "/test.Echo/Unary", "POST", "application/grpc+proto", NULL);
    tc_send(st, "p", 1, true);
    assert_int_equal(fx_wait(&f, st), 0);

    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.calls_unimplemented, 1);
    assert_int_equal(stats.calls_open, 0);
    assert_false(c->closed);
    tc_free(c);
    fx_stop(&f);
}

static void test_headers_and_deadline(void **state)
{
    (void)state;
    struct fx f;
    start(&f, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    const char *md[] = {"hasleader", "true", "client-api-version", "3.4", "grpc-timeout",
                        "4994281u", NULL};
    struct tc_stream *st = tc_open(c, "/test.Echo/Headers", md);
    tc_send(st, NULL, 0, true);
    assert_int_equal(fx_wait(&f, st), 0);
    uint8_t *m = NULL;
    size_t n = 0;
    assert_true(tc_next_msg(st, &m, &n));
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int)n, (char *)m);
    free(m);
    assert_string_equal(text, "hasleader=true api=3.4 deadline=yes left_ok=1 "
                              "method=/test.Echo/Headers");

    /* a call nobody answers ends with DEADLINE_EXCEEDED when grpc-timeout passes */
    const char *shortto[] = {"grpc-timeout", "40m", NULL};
    st = tc_open(c, "/test.Echo/Hang", shortto);
    tc_send(st, "x", 1, false);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_DEADLINE_EXCEEDED);
    assert_int_equal(f.last_close_err, NET_ETIMEDOUT);
    assert_null(f.held);
    tc_free(c);
    fx_stop(&f);
}

static void test_parse_timeout(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(net_grpc_parse_timeout("4994281u", &ns), 0);
    assert_true(ns == 4994281000LL);
    assert_int_equal(net_grpc_parse_timeout("5S", &ns), 0);
    assert_true(ns == 5000000000LL);
    assert_int_equal(net_grpc_parse_timeout("5010m", &ns), 0);
    assert_true(ns == 5010000000LL);
    assert_int_equal(net_grpc_parse_timeout("2M", &ns), 0);
    assert_true(ns == 120000000000LL);
    assert_int_equal(net_grpc_parse_timeout("1H", &ns), 0);
    assert_true(ns == 3600000000000LL);
    assert_int_equal(net_grpc_parse_timeout("17n", &ns), 0);
    assert_true(ns == 17);
    assert_int_equal(net_grpc_parse_timeout("99999999H", &ns), 0);
    assert_true(ns > 0);
    assert_int_equal(net_grpc_parse_timeout("", &ns), NET_EINVAL);
    assert_int_equal(net_grpc_parse_timeout("S", &ns), NET_EINVAL);
    assert_int_equal(net_grpc_parse_timeout("123456789S", &ns), NET_EINVAL);
    assert_int_equal(net_grpc_parse_timeout("5s", &ns), NET_EINVAL);
    assert_int_equal(net_grpc_parse_timeout("5SS", &ns), NET_EINVAL);
    assert_int_equal(net_grpc_parse_timeout("-5S", &ns), NET_EINVAL);
    assert_int_equal(net_grpc_parse_timeout(NULL, &ns), NET_EINVAL);
}

static void test_listen_errors(void **state)
{
    (void)state;
    struct fx f;
    start(&f, false);
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", f.port);
    assert_int_equal(net_grpc_server_listen(f.srv, url, NULL, err, sizeof err), NET_EADDRINUSE);
    assert_non_null(strstr(err, "in use"));
    assert_int_equal(net_grpc_server_listen(f.srv, "ftp://127.0.0.1:1", NULL, err, sizeof err),
                     NET_EINVAL);
    assert_int_equal(net_grpc_server_listen(f.srv, "http://127.0.0.1", NULL, err, sizeof err),
                     NET_EINVAL);
    assert_int_equal(net_grpc_server_listen(f.srv, "http://127.0.0.1:99999", NULL, err,
                                            sizeof err), NET_EINVAL);
    /* https without a TLS context */
    assert_int_equal(net_grpc_server_listen(f.srv, "https://127.0.0.1:0", NULL, err, sizeof err),
                     NET_EINVAL);
    uint16_t p = 0;
    assert_int_equal(net_grpc_server_listen(f.srv, "127.0.0.1:0", &p, err, sizeof err), 0);
    assert_true(p != 0 && p != f.port);
    assert_int_equal(net_grpc_server_listen(f.srv, "http://[::1]:0/", &p, err, sizeof err) == 0 ||
                         strstr(err, "::1") != NULL, 1);
    assert_int_equal(net_grpc_server_register(f.srv, "noslash", NET_GRPC_UNARY, h_unary, NULL),
                     NET_EINVAL);
    fx_stop(&f);
}

static void test_free_with_open_calls(void **state)
{
    (void)state;
    struct fx f;
    start(&f, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Hang", NULL);
    tc_send(st, "x", 1, false);
    struct tc_stream *st2 = tc_open(c, "/test.Echo/Bidi", NULL);
    tc_send(st2, "y", 1, false);
    f.want_handlers = 2;
    assert_true(tc_run_until(f.base, fx_p_handlers, &f, 3000));
    assert_int_equal(f.closes, 0);
    net_grpc_server_free(f.srv);
    f.srv = NULL;
    assert_int_equal(f.closes, 2);
    assert_int_equal(f.last_close_err, NET_ECLOSED);
    tc_free(c);
    event_free(f.later_ev);
    event_base_free(f.base);
}

static bool conn_closed(void *arg)
{
    return ((struct tc_conn *)arg)->closed;
}

static bool no_connections(void *arg)
{
    struct net_grpc_server_stats s;
    net_grpc_server_stats(arg, &s);
    return s.connections_open == 0;
}

static void test_shutdown_drains(void **state)
{
    (void)state;
    struct fx f;
    start(&f, true);
    struct tc_conn *c = fx_connect(&f, client_ctx, false);
    struct tc_conn *idle = fx_connect(&f, client_ctx, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Hang", NULL);
    tc_send(st, "x", 1, false);
    assert_true(tc_run_until(f.base, fx_p_held, &f, 3000));
    struct net_grpc_call *held = f.held;

    net_grpc_server_shutdown(f.srv);
    assert_true(tc_run_until(f.base, conn_closed, idle, 3000));
    tc_run_ms(f.base, 20);
    assert_true(c->goaway);
    assert_true(idle->goaway);
    assert_true(idle->closed); /* nothing running there: closed at once */
    assert_false(c->closed);
    /* the running call still completes */
    assert_int_equal(net_grpc_call_send(held, (const uint8_t *)"late", 4), 0);
    assert_int_equal(net_grpc_call_finish(held, NET_GRPC_OK, NULL), 0);
    assert_int_equal(fx_wait(&f, st), NET_GRPC_OK);
    uint8_t *m = NULL;
    size_t n = 0;
    assert_true(tc_next_msg(st, &m, &n));
    assert_memory_equal(m, "late", 4);
    free(m);
    assert_true(tc_run_until(f.base, no_connections, f.srv, 2000));
    /* no longer listening */
    struct tc_conn *late = tc_connect(f.base, f.port, client_ctx, false);
    tc_run_until(f.base, tc_done_connected, late, 2000);
    assert_true(late->failed);
    tc_free(late);
    tc_free(idle);
    tc_free(c);
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_h2c),
        cmocka_unit_test(test_unary_tls),
        cmocka_unit_test(test_async_reply),
        cmocka_unit_test(test_bidi_h2c),
        cmocka_unit_test(test_bidi_tls),
        cmocka_unit_test(test_server_stream),
        cmocka_unit_test(test_request_limit),
        cmocka_unit_test(test_unknown_and_malformed),
        cmocka_unit_test(test_headers_and_deadline),
        cmocka_unit_test(test_parse_timeout),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_free_with_open_calls),
        cmocka_unit_test(test_shutdown_drains),
    };
    return test_run_group("grpc_server", tests, sizeof tests / sizeof tests[0], group_setup,
                          group_teardown);
}

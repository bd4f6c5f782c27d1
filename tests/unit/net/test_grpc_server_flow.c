/* test_grpc_server_flow — the gRPC server under pressure and at its edges: a stream reader
 * that stops reading stays bounded, client certificates, idle / half-open / handshake
 * timeouts, frequent pings, dropped connections and garbage input. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/testlib.h"
#include "tests/unit/net/grpc_test_certs.h"
#include "tests/unit/net/grpc_test_server.h"

static struct test_certs certs;
static SSL_CTX *server_ctx, *auth_server_ctx, *client_ctx, *good_client_ctx, *rogue_client_ctx;

#define CP(n) test_cert_path(&certs, certs.dir, (n))
#define RP(n) test_cert_path(&certs, certs.rogue, (n))

static int group_setup(void **state)
{
    (void)state;
    if (test_certs_make(&certs) != 0)
        return -1;
    char err[NET_TLS_ERRLEN];
    struct net_tls_server_opts so = {.cert_file = CP("server.pem"),
                                     .key_file = CP("server-key.pem")};
    struct net_tls_server_opts ao = {.cert_file = CP("server.pem"),
                                     .key_file = CP("server-key.pem"),
                                     .ca_file = CP("ca.pem"),
                                     .client_cert_auth = true};
    struct net_tls_client_opts co = {.ca_file = CP("ca.pem")};
    struct net_tls_client_opts go = {.ca_file = CP("ca.pem"), .cert_file = CP("client.pem"),
                                     .key_file = CP("client-key.pem")};
    struct net_tls_client_opts ro = {.ca_file = CP("ca.pem"), .cert_file = RP("client.pem"),
                                     .key_file = RP("client-key.pem")};
    if (net_tls_server_ctx_new(&so, &server_ctx, err, sizeof err) ||
        net_tls_server_ctx_new(&ao, &auth_server_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&co, &client_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&go, &good_client_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&ro, &rogue_client_ctx, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    net_tls_ctx_free(server_ctx);
    net_tls_ctx_free(auth_server_ctx);
    net_tls_ctx_free(client_ctx);
    net_tls_ctx_free(good_client_ctx);
    net_tls_ctx_free(rogue_client_ctx);
    test_certs_free(&certs);
    return 0;
}

static bool conn_closed(void *arg)
{
    return ((struct tc_conn *)arg)->closed;
}

static void test_slow_reader_bounded(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.ssl_ctx = server_ctx, .max_pending_bytes = 256 * 1024};
    fx_start(&f, &o, true);
    struct tc_conn *c = fx_connect(&f, client_ctx, true);
    assert_false(c->failed);
    struct tc_stream *st = tc_open(c, "/test.Echo/Pump", NULL);
    uint8_t req[8] = {0, 0, 0x40, 0, 0, 0, 0, 200}; /* 200 messages of 16 KiB = 3.2 MB */
    tc_send(st, req, 8, true);
    assert_true(tc_run_until(f.base, fx_p_pump_full, &f, 3000));
    tc_run_ms(f.base, 100);

    /* The client granted 64 KiB and reads nothing more: the producer was told to stop and
     * the queue stayed within its bound (one message over at most). */
    assert_true(f.pump_efull >= 1);
    assert_true(f.pump_left > 150);
    assert_non_null(f.pump_call);
    size_t bound = 256 * 1024 + 16 * 1024 + 5;
    assert_true(f.pump_max_pending <= bound);
    assert_true(net_grpc_call_pending_bytes(f.pump_call) <= bound);
    assert_true(evbuffer_get_length(st->resp) <= 65535);
    size_t left = f.pump_left;
    tc_run_ms(f.base, 100);
    assert_int_equal(f.pump_left, left); /* no progress without window */

    /* The reader resumes: writable callbacks restart the producer to the end. */
    int count = 0;
    for (int i = 0; i < 2000 && !st->closed; i++) {
        tc_consume(c);
        tc_run_ms(f.base, 1);
        uint8_t *m;
        size_t n;
        while (tc_next_msg(st, &m, &n)) {
            assert_int_equal(n, 16 * 1024);
            free(m);
            count++;
        }
    }
    assert_true(st->closed);
    assert_int_equal(st->grpc_status, 0);
    assert_int_equal(count, 200);
    assert_true(f.pump_writable >= 1);
    assert_true(f.pump_max_pending <= bound);
    tc_free(c);
    fx_stop(&f);
}

static void test_client_cert_auth(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.ssl_ctx = auth_server_ctx};
    fx_start(&f, &o, true);

    /* untrusted certificate: refused during the handshake, with a clear log line */
    struct tc_conn *c = fx_connect(&f, rogue_client_ctx, false);
    tc_run_until(f.base, conn_closed, c, 3000);
    tc_run_ms(f.base, 20);
    assert_true(c->closed);
    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.tls_handshake_failures, 1);
    assert_non_null(strstr(f.log, "certificate verify failed"));
    assert_int_equal(stats.calls_started, 0);
    tc_free(c);

    /* no certificate at all: refused */
    c = fx_connect(&f, client_ctx, false);
    tc_run_until(f.base, conn_closed, c, 3000);
    tc_run_ms(f.base, 20);
    assert_true(c->closed);
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.tls_handshake_failures, 2);
    tc_free(c);

    /* a trusted certificate works and is visible to handlers */
    c = fx_connect(&f, good_client_ctx, false);
    assert_false(c->failed);
    struct tc_stream *st = tc_open(c, "/test.Echo/Headers", NULL);
    tc_send(st, "", 0, true);
    assert_int_equal(fx_wait(&f, st), 0);
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.calls_started, 1);
    tc_free(c);
    fx_stop(&f);
}

static char who_result[128];

static void h_who(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)msg, (void)len, (void)ud;
    char cn[64];
    int rc = net_grpc_call_peer_common_name(call, cn, sizeof cn);
    snprintf(who_result, sizeof who_result, "verified=%d cn=%s peer=%.9s",
             net_grpc_call_peer_verified(call), rc ? "-" : cn, net_grpc_call_peer(call));
    net_grpc_call_reply(call, NULL, 0);
}

static void test_peer_identity(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.ssl_ctx = auth_server_ctx};
    fx_start(&f, &o, true);
    net_grpc_server_register(f.srv, "/test.Echo/Who", NET_GRPC_UNARY, h_who, NULL);
    struct tc_conn *c = fx_connect(&f, good_client_ctx, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Who", NULL);
    tc_send(st, "", 0, true);
    assert_int_equal(fx_wait(&f, st), 0);
    assert_string_equal(who_result, "verified=1 cn=client peer=127.0.0.1");
    tc_free(c);
    fx_stop(&f);

    fx_start(&f, NULL, false);
    net_grpc_server_register(f.srv, "/test.Echo/Who", NET_GRPC_UNARY, h_who, NULL);
    c = fx_connect(&f, NULL, false);
    st = tc_open(c, "/test.Echo/Who", NULL);
    tc_send(st, "", 0, true);
    assert_int_equal(fx_wait(&f, st), 0);
    assert_string_equal(who_result, "verified=0 cn=- peer=127.0.0.1");
    tc_free(c);
    fx_stop(&f);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.idle_timeout_ms = 150, .keepalive_ms = -1};
    fx_start(&f, &o, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send(st, "x", 1, true);
    assert_int_equal(fx_wait(&f, st), 0);
    /* an open call keeps the connection: idle means "no calls" */
    st = tc_open(c, "/test.Echo/Hang", NULL);
    tc_send(st, "x", 1, false);
    tc_run_ms(f.base, 300);
    assert_false(c->closed);
    tc_send_raw(st, NULL, 0, true);
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    tc_flush(c);
    assert_true(tc_run_until(f.base, conn_closed, c, 2000));
    assert_true(c->goaway);
    tc_run_ms(f.base, 20);
    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.connections_open, 0);
    assert_true(stats.timeouts_closed >= 1);
    tc_free(c);
    fx_stop(&f);
}

static void test_half_open_closed(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.keepalive_ms = 60, .keepalive_timeout_ms = 80};
    fx_start(&f, &o, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Hang", NULL);
    tc_send(st, "x", 1, false);
    assert_true(tc_run_until(f.base, fx_p_held, &f, 3000));
    /* the client goes silent (as a peer whose machine died would) */
    bufferevent_disable(c->bev, EV_READ);
    assert_true(tc_run_until(f.base, fx_p_no_conns, &f, 3000));
    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.connections_open, 0);
    assert_int_equal(f.closes, 1);
    assert_int_equal(f.last_close_err, NET_ECLOSED);
    assert_null(f.held);
    assert_non_null(strstr(f.log, "keepalive"));
    tc_free(c);
    fx_stop(&f);
}

static bool enough_acks(void *arg)
{
    return ((struct tc_conn *)arg)->ping_acks >= 150;
}

static void test_pings_answered(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.ssl_ctx = server_ctx, .keepalive_ms = 50,
                                     .keepalive_timeout_ms = 50};
    fx_start(&f, &o, true);
    struct tc_conn *c = fx_connect(&f, client_ctx, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Hang", NULL);
    tc_send(st, "x", 1, false);
    /* a ping every 2 ms for 300 ms: all answered, nothing treated as abuse */
    for (int i = 0; i < 150; i++) {
        nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL);
        tc_flush(c);
        tc_run_ms(f.base, 2);
    }
    assert_true(tc_run_until(f.base, enough_acks, c, 3000));
    assert_false(c->closed);
    assert_int_equal(f.closes, 0);
    /* the server's own keepalive pings were answered by the client too */
    tc_run_ms(f.base, 200);
    assert_false(c->closed);
    tc_free(c);
    fx_stop(&f);
}

static void test_connection_drop(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, NULL, false);
    struct tc_conn *c = fx_connect(&f, NULL, false);
    struct tc_stream *a = tc_open(c, "/test.Echo/Hang", NULL);
    tc_send(a, "x", 1, false);
    struct tc_stream *b = tc_open(c, "/test.Echo/Bidi", NULL);
    tc_send(b, "y", 1, false);
    f.want_handlers = 2;
    assert_true(tc_run_until(f.base, fx_p_handlers, &f, 3000));
    tc_free(c); /* TCP close without GOAWAY, as Go clients do */
    assert_true(tc_run_until(f.base, fx_p_no_conns, &f, 3000));
    assert_int_equal(f.closes, 2);
    assert_int_equal(f.last_close_err, NET_ECLOSED);
    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.connections_open, 0);
    assert_int_equal(stats.calls_open, 0);
    fx_stop(&f);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

static bool four_accepted_none_open(void *arg)
{
    struct net_grpc_server_stats s;
    net_grpc_server_stats(((struct fx *)arg)->srv, &s);
    return s.connections_accepted == 4 && s.connections_open == 0;
}

static void test_handshake_timeout_and_garbage(void **state)
{
    (void)state;
    struct fx f;
    struct net_grpc_server_opts o = {.ssl_ctx = server_ctx, .handshake_timeout_ms = 100};
    fx_start(&f, &o, true);
    char err[256];
    uint16_t h2c_port = 0;
    assert_int_equal(net_grpc_server_listen(f.srv, "http://127.0.0.1:0", &h2c_port, err,
                                            sizeof err), 0);
    int silent_tls = raw_connect(f.port);
    int silent_h2c = raw_connect(h2c_port);
    int garbage = raw_connect(h2c_port);
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(garbage, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    int garbage_tls = raw_connect(f.port);
    assert_int_equal(write(garbage_tls, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    assert_true(tc_run_until(f.base, four_accepted_none_open, &f, 3000));
    struct net_grpc_server_stats stats;
    net_grpc_server_stats(f.srv, &stats);
    assert_int_equal(stats.connections_accepted, 4);
    assert_int_equal(stats.connections_open, 0);
    assert_true(stats.timeouts_closed >= 2);
    /* the server still serves */
    struct tc_conn *c = fx_connect(&f, client_ctx, false);
    struct tc_stream *st = tc_open(c, "/test.Echo/Unary", NULL);
    tc_send(st, "ok", 2, true);
    assert_int_equal(fx_wait(&f, st), 0);
    tc_free(c);
    close(silent_tls);
    close(silent_h2c);
    close(garbage);
    close(garbage_tls);
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_reader_bounded),
        cmocka_unit_test(test_client_cert_auth),
        cmocka_unit_test(test_peer_identity),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_half_open_closed),
        cmocka_unit_test(test_pings_answered),
        cmocka_unit_test(test_connection_drop),
        cmocka_unit_test(test_handshake_timeout_and_garbage),
    };
    return test_run_group("grpc_server_flow", tests, sizeof tests / sizeof tests[0],
                          group_setup, group_teardown);
}

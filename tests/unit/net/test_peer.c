/* test_peer — the Raft peer transport on loopback: framing, message exchange over mutual
 * TLS, refusal of untrusted peers and foreign clusters, reconnect after a restart, queue
 * bounds, and prompt down notices (also when a peer process is SIGKILLed). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/peer.h"
#include "net/peer_frame.h"
#include "net/tls.h"
#include "tests/lib/testlib.h"
#include "tests/unit/net/grpc_test_certs.h"

static struct test_certs certs;
#define CP(name) test_cert_path(&certs, certs.dir, (name))
#define RP(name) test_cert_path(&certs, certs.rogue, (name))

static struct event_base *base;
static SSL_CTX *srv_ctx, *cli_ctx, *rogue_cli_ctx, *nocert_cli_ctx;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What one transport saw. */
struct sink {
    int msgs;
    uint64_t last_from;
    size_t bytes;
    int bad_order;
    int next_seq;
    int downs;
    uint64_t last_down;
    uint64_t down_at_ms;
    char log[4096];
    int nlog;
};

static void on_log(void *ud, const char *text)
{
    struct sink *s = ud;
    size_t used = strlen(s->log);
    snprintf(s->log + used, sizeof s->log - used, "%s\n", text);
    s->nlog++;
}

static void on_msg(void *ud, uint64_t from, const uint8_t *buf, size_t len)
{
    struct sink *s = ud;
    s->msgs++;
    s->last_from = from;
    s->bytes += len;
    if (len >= 4) {
        int seq = buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
        if (seq != s->next_seq)
            s->bad_order++;
        s->next_seq = seq + 1;
    }
}

static void on_down(void *ud, uint64_t peer)
{
    struct sink *s = ud;
    s->downs++;
    s->last_down = peer;
    s->down_at_ms = now_ms();
}

static struct net_peer_transport *mk(uint64_t id, uint64_t cluster, SSL_CTX *cctx,
                                     struct sink *s, const char *listen)
{
    struct net_peer_opts o = {.base = base, .server_ctx = srv_ctx, .client_ctx = cctx,
                              .self_id = id, .cluster_id = cluster, .on_message = on_msg,
                              .on_peer_down = on_down, .ud = s, .backoff_min_ms = 20,
                              .backoff_max_ms = 200, .log = on_log};
    struct net_peer_transport *t = NULL;
    assert_int_equal(net_peer_transport_new(&o, &t), 0);
    char err[256];
    int rc = net_peer_listen(t, listen, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return t;
}

static void url_of(struct net_peer_transport *t, bool tls, char *buf, size_t len)
{
    snprintf(buf, len, "%s://127.0.0.1:%d", tls ? "https" : "http", net_peer_listen_port(t));
}

/* Runs the loop until *flag reaches want or ms pass. */
static void run_until(int *flag, int want, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    struct timeval tv = {0, 5000};
    while (*flag < want && now_ms() < end) {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

static void send_seq(struct net_peer_transport *t, uint64_t to, int seq, size_t len)
{
    static uint8_t buf[4 << 20];
    assert_true(len >= 4 && len <= sizeof buf);
    buf[0] = (uint8_t)(seq >> 24), buf[1] = (uint8_t)(seq >> 16);
    buf[2] = (uint8_t)(seq >> 8), buf[3] = (uint8_t)seq;
    assert_int_equal(net_peer_send(t, to, buf, len), 0);
}

/* --- tests ------------------------------------------------------------------------- */

static void test_frame_codec(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct peer_hello h = {PEER_HELLO_VERSION, 7, 1, 2}, h2;
    peer_frame_header(buf, PEER_FRAME_HELLO, PEER_HELLO_LEN);
    peer_hello_encode(&h, buf + PEER_FRAME_HDR);
    struct peer_frame f;
    size_t total = PEER_FRAME_HDR + PEER_HELLO_LEN;
    for (size_t i = 0; i < total; i++)
        assert_int_equal(peer_frame_decode(buf, i, 100, &f), PEER_DECODE_MORE);
    assert_int_equal(peer_frame_decode(buf, total + 3, 100, &f), PEER_DECODE_OK);
    assert_int_equal(f.total, total);
    assert_int_equal(peer_hello_decode(f.payload, f.len, &h2), 0);
    assert_int_equal(h2.cluster_id, 7);
    assert_int_equal(h2.sender_id, 1);
    assert_int_equal(h2.target_id, 2);
    buf[PEER_FRAME_HDR] = 'X';   /* bad magic */
    assert_int_equal(peer_hello_decode(buf + PEER_FRAME_HDR, PEER_HELLO_LEN, &h2), -1);
    /* a message over max is refused from its header alone */
    peer_frame_header(buf, PEER_FRAME_MSG, 101);
    assert_int_equal(peer_frame_decode(buf, PEER_FRAME_HDR, 100, &f), PEER_DECODE_ERR);
    peer_frame_header(buf, PEER_FRAME_MSG, 0);
    assert_int_equal(peer_frame_decode(buf, PEER_FRAME_HDR, 100, &f), PEER_DECODE_OK);
    assert_int_equal(f.len, 0);
    peer_frame_header(buf, 9, 0);   /* unknown type */
    assert_int_equal(peer_frame_decode(buf, PEER_FRAME_HDR, 100, &f), PEER_DECODE_ERR);
    peer_frame_header(buf, PEER_FRAME_HELLO, 3);   /* hello of the wrong size */
    assert_int_equal(peer_frame_decode(buf, PEER_FRAME_HDR, 100, &f), PEER_DECODE_ERR);
}

static void exchange(bool tls)
{
    struct sink sa = {0}, sb = {0};
    const char *l = tls ? "https://127.0.0.1:0" : "http://127.0.0.1:0";
    struct net_peer_transport *a = mk(1, 42, cli_ctx, &sa, l);
    struct net_peer_transport *b = mk(2, 42, cli_ctx, &sb, l);
    char ua[64], ub[64];
    url_of(a, tls, ua, sizeof ua);
    url_of(b, tls, ub, sizeof ub);
    assert_int_equal(net_peer_add(a, 2, ub), 0);
    assert_int_equal(net_peer_add(b, 1, ua), 0);
    assert_int_equal(net_peer_add(b, 1, ua), 0);   /* same URL again: no-op */
    /* queued before the connection exists, delivered once it does */
    for (int i = 0; i < 200; i++) {
        send_seq(a, 2, i, 4 + (size_t)i);
        send_seq(b, 1, i, 16);
    }
    send_seq(a, 2, 200, 3 << 20);   /* a snapshot-sized chunk */
    run_until(&sb.msgs, 201, 5000);
    run_until(&sa.msgs, 200, 5000);
    assert_int_equal(sb.msgs, 201);
    assert_int_equal(sa.msgs, 200);
    assert_int_equal(sb.bad_order, 0);
    assert_int_equal(sa.bad_order, 0);
    assert_int_equal(sb.last_from, 1);
    assert_int_equal(sa.last_from, 2);
    assert_true(net_peer_connected(a, 2));
    struct net_peer_stats st;
    assert_int_equal(net_peer_stats(a, 2, &st), 0);
    assert_int_equal(st.sent_frames, 201);
    assert_int_equal(st.dropped_frames, 0);
    assert_int_equal(st.inbound, 1);
    assert_int_equal(net_peer_stats(b, 1, &st), 0);
    assert_int_equal(st.recv_frames, 201);
    assert_int_equal(net_peer_stats(a, 99, &st), NET_ENOTFOUND);
    assert_int_equal(net_peer_send(a, 99, (const uint8_t *)"x", 1), NET_ENOTFOUND);
    assert_int_equal(sa.downs + sb.downs, 0);
    net_peer_transport_free(a);
    net_peer_transport_free(b);
}

static void test_exchange_mtls(void **state)
{
    (void)state;
    exchange(true);
}

static void test_exchange_plain(void **state)
{
    (void)state;
    exchange(false);
}

static void refused(SSL_CTX *cctx, uint64_t cluster)
{
    struct sink sa = {0}, sc = {0};
    struct net_peer_transport *a = mk(1, 42, cli_ctx, &sa, "https://127.0.0.1:0");
    struct net_peer_transport *c = mk(3, cluster, cctx, &sc, "https://127.0.0.1:0");
    char ua[64];
    url_of(a, true, ua, sizeof ua);
    assert_int_equal(net_peer_add(c, 1, ua), 0);
    for (int i = 0; i < 5; i++)
        send_seq(c, 1, i, 8);
    run_for(400);
    assert_int_equal(sa.msgs, 0);
    assert_false(net_peer_connected(c, 1));
    struct net_peer_stats st;
    assert_int_equal(net_peer_stats(c, 1, &st), 0);
    assert_true(st.dials >= 2);   /* it keeps trying with backoff */
    assert_int_equal(sc.downs, 0);   /* never up, so never reported down */
    /* both sides say why, and the dialer says it once, not once per retry */
    if (cluster != 42) {
        assert_non_null(strstr(sa.log, "hello: cluster 000000000000002b, ours 000000000000002a"));
    } else {
        assert_non_null(strstr(sa.log, "peer: inbound from 127.0.0.1:"));
        assert_non_null(strstr(sa.log, "tls: "));
    }
    assert_non_null(strstr(sc.log, "peer: dial 0000000000000001 at https://127.0.0.1:"));
    assert_int_equal(sc.nlog, 1);
    assert_int_equal(sa.nlog, 1);
    net_peer_transport_free(a);
    net_peer_transport_free(c);
}

static void test_untrusted_peer_refused(void **state)
{
    (void)state;
    refused(rogue_cli_ctx, 42);   /* certificate from another CA */
    refused(nocert_cli_ctx, 42);  /* no certificate at all */
}

static void test_foreign_cluster_refused(void **state)
{
    (void)state;
    refused(cli_ctx, 43);
}

static void test_restart_reconnects(void **state)
{
    (void)state;
    struct sink sa = {0}, sb = {0};
    struct net_peer_transport *a = mk(1, 42, cli_ctx, &sa, "https://127.0.0.1:0");
    struct net_peer_transport *b = mk(2, 42, cli_ctx, &sb, "https://127.0.0.1:0");
    char ua[64], ub[64];
    url_of(a, true, ua, sizeof ua);
    url_of(b, true, ub, sizeof ub);
    assert_int_equal(net_peer_add(a, 2, ub), 0);
    assert_int_equal(net_peer_add(b, 1, ua), 0);
    send_seq(a, 2, 0, 8);
    send_seq(b, 1, 0, 8);
    run_until(&sb.msgs, 1, 3000);
    run_until(&sa.msgs, 1, 3000);
    assert_int_equal(sb.msgs, 1);
    /* b goes away: a hears of it at once (both directions close) */
    uint64_t t0 = now_ms();
    net_peer_transport_free(b);
    run_until(&sa.downs, 2, 2000);
    assert_true(sa.downs >= 1);
    assert_int_equal(sa.last_down, 2);
    assert_true(sa.down_at_ms - t0 < 300);
    assert_false(net_peer_connected(a, 2));
    /* b comes back on the same address */
    memset(&sb, 0, sizeof sb);
    b = mk(2, 42, cli_ctx, &sb, ub);
    assert_int_equal(net_peer_add(b, 1, ua), 0);
    t0 = now_ms();
    for (int i = 0; i < 200 && !net_peer_connected(a, 2); i++)
        run_for(10);
    assert_true(net_peer_connected(a, 2));
    assert_true(now_ms() - t0 < 1500);
    assert_non_null(strstr(sa.log, "peer: connection to 0000000000000002 lost: "));
    assert_non_null(strstr(sa.log, "peer: connected to 0000000000000002 at https://"));
    send_seq(a, 2, 0, 8);
    run_until(&sb.msgs, 1, 3000);
    assert_int_equal(sb.msgs, 1);
    net_peer_transport_free(a);
    net_peer_transport_free(b);
}

static void test_queue_bound(void **state)
{
    (void)state;
    struct sink sa = {0};
    struct net_peer_opts o = {.base = base, .server_ctx = srv_ctx, .client_ctx = cli_ctx,
                              .self_id = 1, .on_message = on_msg, .ud = &sa,
                              .queue_max_frames = 10, .queue_max_bytes = 1000,
                              .stale_queue_ms = -1, .max_frame = 600};
    struct net_peer_transport *a = NULL;
    assert_int_equal(net_peer_transport_new(&o, &a), 0);
    /* a peer nobody listens for */
    assert_int_equal(net_peer_add(a, 9, "https://127.0.0.1:1"), 0);
    uint8_t buf[700] = {0};
    int full = 0;
    for (int i = 0; i < 30; i++) {
        int rc = net_peer_send(a, 9, buf, 8);
        if (rc == NET_EFULL)
            full++;
        else
            assert_int_equal(rc, 0);
    }
    assert_int_equal(full, 20);
    struct net_peer_stats st;
    assert_int_equal(net_peer_stats(a, 9, &st), 0);
    assert_int_equal(st.queued_frames, 10);
    assert_int_equal(st.dropped_frames, 20);
    assert_int_equal(net_peer_send(a, 9, buf, 601), NET_EINVAL);   /* over max_frame */
    run_for(100);
    assert_int_equal(net_peer_stats(a, 9, &st), 0);
    assert_int_equal(st.queued_frames, 10);   /* still bounded while it redials */
    assert_true(st.dials >= 1);
    /* removal forgets the queue */
    assert_int_equal(net_peer_remove(a, 9), 0);
    assert_int_equal(net_peer_remove(a, 9), NET_ENOTFOUND);
    net_peer_transport_free(a);

    /* byte bound, and the stale rule */
    o.queue_max_frames = 0;
    o.queue_max_bytes = 100;
    o.stale_queue_ms = 50;
    o.max_frame = 0;
    assert_int_equal(net_peer_transport_new(&o, &a), 0);
    assert_int_equal(net_peer_add(a, 9, "http://127.0.0.1:1"), 0);
    assert_int_equal(net_peer_send(a, 9, buf, 60), 0);
    assert_int_equal(net_peer_send(a, 9, buf, 60), NET_EFULL);
    run_for(120);
    assert_int_equal(net_peer_send(a, 9, buf, 10), NET_EUNAVAIL);
    assert_int_equal(net_peer_stats(a, 9, &st), 0);
    assert_int_equal(st.queued_frames, 0);
    net_peer_transport_free(a);
}

static void test_oversized_frame_closes(void **state)
{
    (void)state;
    struct sink sa = {0}, sb = {0};
    struct net_peer_transport *a = mk(1, 42, cli_ctx, &sa, "http://127.0.0.1:0");
    struct net_peer_opts o = {.base = base, .self_id = 2, .cluster_id = 42,
                              .on_message = on_msg, .on_peer_down = on_down, .ud = &sb,
                              .max_frame = 1 << 20};
    struct net_peer_transport *b = NULL;
    assert_int_equal(net_peer_transport_new(&o, &b), 0);
    assert_int_equal(net_peer_listen(b, "http://127.0.0.1:0", NULL, 0), 0);
    char ub[64];
    url_of(b, false, ub, sizeof ub);
    assert_int_equal(net_peer_add(a, 2, ub), 0);
    send_seq(a, 2, 0, 16);
    run_until(&sb.msgs, 1, 3000);
    assert_int_equal(sb.msgs, 1);
    send_seq(a, 2, 1, 2 << 20);   /* over b's limit: b drops the connection */
    run_until(&sa.downs, 1, 3000);
    assert_int_equal(sa.downs, 1);
    assert_int_equal(sb.msgs, 1);
    assert_int_equal(sb.downs, 1);   /* b saw a's inbound connection close */
    net_peer_transport_free(a);
    net_peer_transport_free(b);
}

static void test_url_update(void **state)
{
    (void)state;
    struct sink sa = {0}, sb = {0}, sc = {0};
    struct net_peer_transport *a = mk(1, 42, cli_ctx, &sa, "http://127.0.0.1:0");
    struct net_peer_transport *b = mk(2, 42, cli_ctx, &sb, "http://127.0.0.1:0");
    struct net_peer_transport *b2 = mk(2, 42, cli_ctx, &sc, "http://127.0.0.1:0");
    char ub[64], ub2[64];
    url_of(b, false, ub, sizeof ub);
    url_of(b2, false, ub2, sizeof ub2);
    assert_int_equal(net_peer_add(a, 2, ub), 0);
    send_seq(a, 2, 0, 8);
    run_until(&sb.msgs, 1, 3000);
    assert_int_equal(sb.msgs, 1);
    assert_int_equal(net_peer_add(a, 2, ub2), 0);   /* member 2 moved */
    send_seq(a, 2, 0, 8);
    run_until(&sc.msgs, 1, 3000);
    assert_int_equal(sc.msgs, 1);
    assert_int_equal(sb.msgs, 1);
    assert_true(sa.downs >= 1);
    /* a URL that answers for another member is not used */
    struct sink sd = {0};
    struct net_peer_transport *d = mk(4, 42, cli_ctx, &sd, "http://127.0.0.1:0");
    assert_int_equal(net_peer_add(d, 3, ub2), 0);   /* ub2 is member 2, not 3 */
    send_seq(d, 3, 0, 8);
    run_for(200);
    assert_int_equal(sc.msgs, 1);
    assert_false(net_peer_connected(d, 3));
    /* a member that a does not know yet (it is joining) still gets through */
    struct sink se = {0};
    struct net_peer_transport *e = mk(5, 42, cli_ctx, &se, "http://127.0.0.1:0");
    char ua[64];
    url_of(a, false, ua, sizeof ua);
    int before = sa.msgs;
    assert_int_equal(net_peer_add(e, 1, ua), 0);
    send_seq(e, 1, 0, 8);
    run_until(&sa.msgs, before + 1, 3000);
    assert_int_equal(sa.msgs, before + 1);
    assert_int_equal(sa.last_from, 5);
    net_peer_transport_free(e);
    assert_int_equal(net_peer_add(a, 1, ub), NET_EINVAL);      /* self */
    assert_int_equal(net_peer_add(a, 5, "ftp://x:1"), NET_EINVAL);
    net_peer_transport_free(a);
    net_peer_transport_free(b);
    net_peer_transport_free(b2);
    net_peer_transport_free(d);
}

/* A peer in another process, killed with SIGKILL: the survivor's down notice must come
 * from the kernel closing the sockets, within a fraction of an election timeout. */
static void test_sigkill_down_notice(void **state)
{
    (void)state;
    struct sink sa = {0};
    struct net_peer_transport *a = mk(1, 42, cli_ctx, &sa, "https://127.0.0.1:0");
    char ua[64];
    url_of(a, true, ua, sizeof ua);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        event_reinit(base);
        struct event_base *cb = event_base_new();
        struct sink sb = {0};
        struct net_peer_opts o = {.base = cb, .server_ctx = srv_ctx, .client_ctx = cli_ctx,
                                  .self_id = 2, .cluster_id = 42, .on_message = on_msg,
                                  .ud = &sb};
        struct net_peer_transport *b = NULL;
        if (net_peer_transport_new(&o, &b) || net_peer_listen(b, "https://127.0.0.1:0", NULL, 0))
            _exit(1);
        int port = net_peer_listen_port(b);
        if (write(pfd[1], &port, sizeof port) != sizeof port)
            _exit(1);
        net_peer_add(b, 1, ua);
        uint8_t hi[4] = {0, 0, 0, 0};
        net_peer_send(b, 1, hi, 4);
        alarm(20);
        event_base_dispatch(cb);
        _exit(0);
    }
    close(pfd[1]);
    int port = 0;
    assert_int_equal(read(pfd[0], &port, sizeof port), (ssize_t)sizeof port);
    close(pfd[0]);
    char ub[64];
    snprintf(ub, sizeof ub, "https://127.0.0.1:%d", port);
    assert_int_equal(net_peer_add(a, 2, ub), 0);
    run_until(&sa.msgs, 1, 5000);
    assert_int_equal(sa.msgs, 1);
    for (int i = 0; i < 300 && !net_peer_connected(a, 2); i++)
        run_for(10);
    assert_true(net_peer_connected(a, 2));
    uint64_t t0 = now_ms();
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    run_until(&sa.downs, 2, 1000);
    assert_int_equal(sa.downs, 2);   /* inbound and outbound */
    assert_int_equal(sa.last_down, 2);
    assert_true(sa.down_at_ms - t0 < 200);
    net_peer_transport_free(a);
}

static int group_setup(void **state)
{
    (void)state;
    if (test_certs_make(&certs) != 0)
        return -1;
    base = event_base_new();
    char err[NET_TLS_ERRLEN];
    struct net_tls_server_opts so = {.cert_file = CP("server.pem"),
                                     .key_file = CP("server-key.pem"),
                                     .ca_file = CP("ca.pem"), .client_cert_auth = true,
                                     .alpn = ""};
    struct net_tls_client_opts co = {.ca_file = CP("ca.pem"), .cert_file = CP("client.pem"),
                                     .key_file = CP("client-key.pem"), .alpn = ""};
    struct net_tls_client_opts ro = {.ca_file = CP("ca.pem"), .cert_file = RP("client.pem"),
                                     .key_file = RP("client-key.pem"), .alpn = ""};
    struct net_tls_client_opts no = {.ca_file = CP("ca.pem"), .alpn = ""};
    if (net_tls_server_ctx_new(&so, &srv_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&co, &cli_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&ro, &rogue_cli_ctx, err, sizeof err) ||
        net_tls_client_ctx_new(&no, &nocert_cli_ctx, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    net_tls_ctx_free(srv_ctx);
    net_tls_ctx_free(cli_ctx);
    net_tls_ctx_free(rogue_cli_ctx);
    net_tls_ctx_free(nocert_cli_ctx);
    event_base_free(base);
    test_certs_free(&certs);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_codec),
        cmocka_unit_test(test_exchange_mtls),
        cmocka_unit_test(test_exchange_plain),
        cmocka_unit_test(test_untrusted_peer_refused),
        cmocka_unit_test(test_foreign_cluster_refused),
        cmocka_unit_test(test_restart_reconnects),
        cmocka_unit_test(test_queue_bound),
        cmocka_unit_test(test_oversized_frame_closes),
        cmocka_unit_test(test_url_update),
        cmocka_unit_test(test_sigkill_down_notice),
    };
    return test_run_group("peer", tests, sizeof tests / sizeof tests[0], group_setup,
                          group_teardown);
}

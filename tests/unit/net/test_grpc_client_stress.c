/* test_grpc_client_stress — random mix of async unary calls, streams, cancels, frees, deadlines and
 * server restarts against the gRPC server on one loop; every callback must run exactly
 * once, nothing may crash or leak (run under ASan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/grpc_client.h"
#include "net/grpc_server.h"
#include "tests/lib/testlib.h"

static struct event_base *base;
static struct net_grpc_server *srv;
static uint16_t port;
#define MAXH 64
static struct net_grpc_call *hung[MAXH];
static int nhung;

static void hung_closed(struct net_grpc_call *call, void *user, int err)
{
    (void)user, (void)err;
    for (int i = 0; i < nhung; i++)
        if (hung[i] == call) {
            hung[i] = hung[--nhung];
            break;
        }
}

static void unary(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    if (len && msg[0] == 'h' && nhung < MAXH) {
        hung[nhung++] = call;
        net_grpc_call_set_close_cb(call, hung_closed);
    } else if (len && msg[0] == 'f') {
        net_grpc_call_finish(call, NET_GRPC_ABORTED, "etcdserver: %%x failed 100%");
    } else {
        net_grpc_call_reply(call, msg, len);
    }
}

static void bidi(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    if (len && msg[0] == 'e')
        net_grpc_call_finish(call, NET_GRPC_OK, NULL);
    else
        net_grpc_call_send(call, msg, len);
}

static void server_up(void)
{
    char url[64];
    net_grpc_server_new(base, NULL, &srv);
    net_grpc_server_register(srv, "/s/U", NET_GRPC_UNARY, unary, NULL);
    net_grpc_server_register(srv, "/s/B", NET_GRPC_BIDI, bidi, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    for (int i = 0; i < 50; i++) {
        uint16_t p;
        if (net_grpc_server_listen(srv, port ? url : "http://127.0.0.1:0", &p, NULL, 0) == 0) {
            port = p;
            return;
        }
        usleep(20000);
    }
    fail_msg("cannot listen on 127.0.0.1:%u", port);
}

static long started, completed, twice;
struct tok { int done; };

static void ucb(void *ud, const struct net_grpc_status *st, const uint8_t *r, size_t n)
{
    (void)st, (void)r, (void)n;
    struct tok *t = ud;
    if (t->done++)
        twice++;
    completed++;
    free(t);
}

#define MAXS 32
struct sstate { struct net_grpc_stream *s; int closes; int msgs; };
static struct sstate ss[MAXS];
static long s_open, s_closed;

static void smsg(void *ud, struct net_grpc_stream *s, const uint8_t *m, size_t n)
{
    (void)s, (void)m, (void)n;
    ((struct sstate *)ud)->msgs++;
}

static void sclose(void *ud, struct net_grpc_stream *s, const struct net_grpc_status *st)
{
    (void)s, (void)st;
    struct sstate *x = ud;
    if (x->closes++)
        twice++;
    s_closed++;
}

static int run(unsigned seed, int iters)
{
    srand(seed);
    port = 0;
    nhung = 0;
    started = completed = twice = s_open = s_closed = 0;
    memset(ss, 0, sizeof ss);
    printf("# seed %u (SEED=%u replays it)\n", seed, seed);
    base = event_base_new();
    server_up();
    char eps[128];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%u", port);
    struct net_grpc_client *cs[3];
    for (int i = 0; i < 3; i++) {
        struct net_grpc_client_opts o = {.endpoints = eps, .base = base, .dial_timeout_ms = 300,
                                         .keepalive_ms = 50, .keepalive_timeout_ms = 500};
        cs[i] = net_grpc_client_new(&o, NULL);
    }
    for (int it = 0; it < iters; it++) {
        struct net_grpc_client *c = cs[rand() % 3];
        int r = rand() % 100;
        if (r < 40) {
            const char *kinds[] = {"echo", "hang", "fail"};
            const char *m = kinds[rand() % 3];
            struct tok *t = calloc(1, sizeof *t);
            int tmo = rand() % 4 == 0 ? 5 + rand() % 50 : 300;
            if (net_grpc_unary_async(c, "/s/U", (const uint8_t *)m, strlen(m), tmo, ucb, t) == 0)
                started++;
            else
                free(t);
        } else if (r < 55) {
            int i = rand() % MAXS;
            if (!ss[i].s) {
                struct net_grpc_stream_opts so = {.on_msg = rand() % 2 ? smsg : NULL,
                                                  .on_close = sclose, .ud = &ss[i],
                                                  .timeout_ms = rand() % 3 ? 0 : 100};
                ss[i].closes = 0;
                if (net_grpc_stream_open(c, "/s/B", &so, &ss[i].s) == 0)
                    s_open++;
            } else {
                int a = rand() % 6;
                if (a == 0) net_grpc_stream_cancel(ss[i].s);
                else if (a == 1) net_grpc_stream_close_send(ss[i].s);
                else if (a == 2) {
                    if (!ss[i].closes) s_closed++;   /* freed before close: no callback */
                    ss[i].closes = 1;
                    net_grpc_stream_free(ss[i].s);
                    ss[i].s = NULL;
                } else if (a == 3) net_grpc_stream_send(ss[i].s, (const uint8_t *)"end", 3);
                else {
                    net_grpc_stream_send(ss[i].s, (const uint8_t *)"data", 4);
                    uint8_t *m; size_t n;
                    if (net_grpc_stream_recv(ss[i].s, &m, &n, 0) == NET_GRPC_RECV_MSG)
                        free(m);
                }
            }
        } else if (r < 65 && nhung) {
            int i = rand() % nhung;
            if (rand() % 2)
                net_grpc_call_reply(hung[i], (const uint8_t *)"late", 4);
            else
                net_grpc_call_finish(hung[i], NET_GRPC_UNAVAILABLE, "gone");
        } else if (r < 66) {
            /* restart the server */
            if (rand() % 2) {
                net_grpc_server_shutdown(srv);
                for (int k = 0; k < 5; k++)
                    event_base_loop(base, EVLOOP_NONBLOCK);
            }
            net_grpc_server_free(srv);
            nhung = 0;
            for (int k = 0; k < 3; k++)
                event_base_loop(base, EVLOOP_NONBLOCK);
            server_up();
        } else {
            if (rand() % 2) {
                event_base_loop(base, EVLOOP_NONBLOCK);
            } else {
                struct timeval tv = {0, 2000};
                event_base_loopexit(base, &tv);
                event_base_loop(base, EVLOOP_ONCE);
            }
        }
    }
    /* drain: answer everything, let deadlines pass */
    for (int i = 0; i < MAXS; i++)
        if (ss[i].s)
            net_grpc_stream_cancel(ss[i].s);
    time_t end = time(NULL) + 5;
    while (completed < started && time(NULL) < end) {
        while (nhung)
            net_grpc_call_reply(hung[0], (const uint8_t *)"x", 1), hung_closed(hung[0], NULL, 0);
        struct timeval tv = {0, 20000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    for (int i = 0; i < MAXS; i++)
        if (ss[i].s) {
            if (!ss[i].closes) s_closed++;
            net_grpc_stream_free(ss[i].s);
        }
    for (int i = 0; i < 3; i++)
        net_grpc_client_free(cs[i]);
    net_grpc_server_free(srv);
    event_base_free(base);
    printf("# unary started %ld completed %ld; streams %ld closed %ld; twice %ld\n", started,
           completed, s_open, s_closed, twice);
    return completed == started && twice == 0 && s_closed == s_open && started > 100;
}

static void test_seeds(void **state)
{
    (void)state;
    const char *env = getenv("SEED");
    if (env) {
        assert_true(run((unsigned)atoi(env), 3000));
        return;
    }
    for (unsigned seed = 1; seed <= 3; seed++)
        assert_true(run(seed, 3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds),
    };
    return PLINTH_RUN_TESTS("grpc_client_stress", tests);
}

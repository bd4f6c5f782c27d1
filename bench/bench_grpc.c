/* bench_grpc — plinth's gRPC server on loopback: unary round trips per second and streamed
 * messages per second, over TLS (or h2c), with 1 and 64 concurrent streams on one
 * connection. The server runs in a child process; the client is a minimal nghttp2 client.
 *
 *   bench_grpc [--seconds S] [--h2c] [--size BYTES] [--streams N,...]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/grpc_server.h"
#include "tests/unit/net/grpc_test_client.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- server (child process) -------------------------------------------------------- */

struct pump {
    size_t size, left;
};

static void pump_close(struct net_grpc_call *call, void *user, int err)
{
    (void)call, (void)err;
    free(user);
}

static void pump_run(struct net_grpc_call *call, void *user)
{
    static uint8_t payload[65536];
    struct pump *p = user;
    while (p->left > 0) {
        int rc = net_grpc_call_send(call, payload, p->size);
        if (rc == NET_EFULL)
            return; /* resumed by the writable callback */
        if (rc != 0)
            return;
        p->left--;
    }
    net_grpc_call_finish(call, NET_GRPC_OK, NULL);
}

static void h_unary(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    net_grpc_call_reply(call, msg, len);
}

/* request: message size and count, 4 bytes each, big-endian */
static void h_stream(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    struct pump *p = calloc(1, sizeof *p);
    if (len == 8) {
        p->size = ((size_t)msg[0] << 24) | ((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) | msg[3];
        p->left = ((size_t)msg[4] << 24) | ((size_t)msg[5] << 16) | ((size_t)msg[6] << 8) | msg[7];
    }
    if (p->size > 65536)
        p->size = 65536;
    net_grpc_call_set_user(call, p);
    net_grpc_call_set_close_cb(call, pump_close);
    net_grpc_call_set_writable_cb(call, pump_run);
    pump_run(call, p);
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopexit(arg, NULL);
}

static void log_line(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "bench_grpc server: %s\n", text);
}

static void serve(int port_pipe, SSL_CTX *ctx)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct event_base *base = event_base_new();
    struct net_grpc_server_opts o = {.ssl_ctx = ctx, .log = log_line};
    struct net_grpc_server *srv = NULL;
    if (net_grpc_server_new(base, &o, &srv) != 0)
        _exit(1);
    net_grpc_server_register(srv, "/bench.B/Unary", NET_GRPC_UNARY, h_unary, NULL);
    net_grpc_server_register(srv, "/bench.B/Stream", NET_GRPC_SERVER_STREAM, h_stream, NULL);
    uint16_t port = 0;
    char err[256];
    if (net_grpc_server_listen(srv, ctx ? "https://127.0.0.1:0" : "http://127.0.0.1:0", &port,
                               err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        _exit(1);
    }
    if (write(port_pipe, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(1);
    close(port_pipe);
    struct event *term = evsignal_new(base, SIGTERM, on_term, base);
    event_add(term, NULL);
    event_base_dispatch(base);
    event_free(term);
    net_grpc_server_free(srv);
    event_base_free(base);
    _exit(0);
}

/* --- client ------------------------------------------------------------------------- */

static struct tc_stream *start_unary(struct tc_conn *c, size_t size)
{
    static uint8_t payload[65536];
    struct tc_stream *st = tc_open(c, "/bench.B/Unary", NULL);
    tc_send(st, payload, size, true);
    return st;
}

static struct tc_stream *start_stream(struct tc_conn *c, size_t size, size_t count)
{
    uint8_t req[8] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                      (uint8_t)size, (uint8_t)(count >> 24), (uint8_t)(count >> 16),
                      (uint8_t)(count >> 8), (uint8_t)count};
    struct tc_stream *st = tc_open(c, "/bench.B/Stream", NULL);
    tc_send(st, req, 8, true);
    return st;
}

/* Counts complete messages in st->resp and drops them. */
static size_t eat_messages(struct tc_stream *st)
{
    size_t n = 0;
    uint8_t p[5];
    while (evbuffer_copyout(st->resp, p, 5) == 5) {
        size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
        if (evbuffer_get_length(st->resp) < len + 5)
            break;
        evbuffer_drain(st->resp, len + 5);
        n++;
    }
    return n;
}

struct result {
    double ops, secs, errors, bytes;
};

/* Keeps `streams` calls in flight for `seconds`; unary mode counts completed calls,
 * stream mode counts received messages (each stream asks for `per_stream` messages and is
 * replaced when it ends). */
static struct result run(struct event_base *base, uint16_t port, SSL_CTX *cctx, int streams,
                         bool unary, size_t size, double seconds)
{
    struct result r = {0, 0, 0, 0};
    struct tc_conn *c = tc_connect(base, port, cctx, false);
    tc_run_until(base, tc_done_connected, c, 5000);
    if (c->failed || !c->session) {
        fprintf(stderr, "bench_grpc: connect failed: %s\n", c->err);
        tc_free(c);
        r.errors = 1;
        return r;
    }
    const size_t per_stream = 100000;
    struct tc_stream **inflight = calloc((size_t)streams, sizeof *inflight);
    for (int i = 0; i < streams; i++)
        inflight[i] = unary ? start_unary(c, size) : start_stream(c, size, per_stream);
    double t0 = now_s(), t;
    bool stopping = false;
    int open = streams;
    while (open > 0) {
        event_base_loop(base, EVLOOP_ONCE);
        t = now_s();
        if (!stopping && t - t0 >= seconds)
            stopping = true;
        if (c->closed)
            break;
        for (int i = 0; i < streams; i++) {
            struct tc_stream *st = inflight[i];
            if (!st)
                continue;
            if (!unary && !stopping) {
                r.ops += (double)eat_messages(st);
                r.bytes += (double)st->unconsumed; /* DATA payload bytes, as a cross-check */
                st->unconsumed = 0;
            }
            if (!st->closed) {
                if (stopping && !unary) { /* stop a stream that is still producing */
                    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
                                              NGHTTP2_CANCEL);
                    tc_flush(c);
                    inflight[i] = NULL;
                    open--;
                }
                continue;
            }
            if (st->grpc_status != 0)
                r.errors++;
            else if (unary && !stopping)
                r.ops++;
            tc_stream_free(st);
            inflight[i] = NULL;
            if (stopping) {
                open--;
                continue;
            }
            inflight[i] = unary ? start_unary(c, size) : start_stream(c, size, per_stream);
        }
        if (stopping && !unary)
            break;
    }
    r.secs = now_s() - t0;
    if (r.secs > seconds)
        r.secs = seconds; /* ops were only counted until the stop mark */
    free(inflight);
    tc_free(c);
    return r;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    bool tls = true;
    size_t size = 64;
    int stream_counts[8] = {1, 64};
    int nsc = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--h2c"))
            tls = false;
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--streams") && i + 1 < argc) {
            nsc = 0;
            for (char *p = strtok(argv[++i], ","); p && nsc < 8; p = strtok(NULL, ","))
                stream_counts[nsc++] = atoi(p);
        } else {
            fprintf(stderr, "usage: bench_grpc [--seconds S] [--h2c] [--size BYTES] "
                            "[--streams 1,64]\n");
            return 2;
        }
    }
    if (size > 65536)
        size = 65536;

    SSL_CTX *sctx = NULL, *cctx = NULL;
    char dir[] = "/tmp/plinth-bench-grpc-XXXXXX";
    if (tls) {
        if (!mkdtemp(dir))
            return 1;
        char cmd[512];
        snprintf(cmd, sizeof cmd, "scripts/certs.sh %s server >/dev/null 2>&1", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_grpc: scripts/certs.sh failed (run from the repository root)\n");
            return 1;
        }
        char cert[600], key[600], ca[600], err[NET_TLS_ERRLEN];
        snprintf(cert, sizeof cert, "%s/server.pem", dir);
        snprintf(key, sizeof key, "%s/server-key.pem", dir);
        snprintf(ca, sizeof ca, "%s/ca.pem", dir);
        struct net_tls_server_opts so = {.cert_file = cert, .key_file = key};
        struct net_tls_client_opts co = {.ca_file = ca};
        if (net_tls_server_ctx_new(&so, &sctx, err, sizeof err) ||
            net_tls_client_ctx_new(&co, &cctx, err, sizeof err)) {
            fprintf(stderr, "bench_grpc: %s\n", err);
            return 1;
        }
    }
    int pp[2];
    if (pipe(pp) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(pp[0]);
        serve(pp[1], sctx);
    }
    close(pp[1]);
    uint16_t port = 0;
    if (read(pp[0], &port, sizeof port) != (ssize_t)sizeof port) {
        fprintf(stderr, "bench_grpc: server did not start\n");
        return 1;
    }
    close(pp[0]);

    struct event_base *base = event_base_new();
    printf("# bench_grpc: %s on loopback, %zu-byte messages, %.1f s per figure, one "
           "connection, server in a separate process\n", tls ? "TLS 1.3 + h2" : "h2c", size,
           seconds);
    int failed = 0;
    for (int k = 0; k < nsc; k++) {
        struct result r = run(base, port, cctx, stream_counts[k], true, size, seconds);
        printf("grpc unary   %-4s streams=%-3d %10.0f calls/s     (%.0f calls, %.0f errors)\n",
               tls ? "tls" : "h2c", stream_counts[k], r.secs > 0 ? r.ops / r.secs : 0, r.ops,
               r.errors);
        failed |= r.errors > 0 || r.ops == 0;
    }
    for (int k = 0; k < nsc; k++) {
        struct result r = run(base, port, cctx, stream_counts[k], false, size, seconds);
        printf("grpc stream  %-4s streams=%-3d %10.0f messages/s  (%.0f messages, %.0f MB/s, "
               "%.0f errors)\n", tls ? "tls" : "h2c", stream_counts[k],
               r.secs > 0 ? r.ops / r.secs : 0, r.ops, r.secs > 0 ? r.bytes / r.secs / 1e6 : 0,
               r.errors);
        failed |= r.errors > 0 || r.ops == 0;
    }
    fflush(stdout);
    int wst = 0;
    if (waitpid(child, &wst, WNOHANG) == child) {
        fprintf(stderr, "bench_grpc: the server process ended early (%s %d)\n",
                WIFSIGNALED(wst) ? "signal" : "exit",
                WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
        failed = 1;
    } else {
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
    }
    event_base_free(base);
    net_tls_ctx_free(sctx);
    net_tls_ctx_free(cctx);
    if (tls) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_grpc: could not remove %s\n", dir);
    }
    return failed ? 1 : 0;
}

/* plinth-bench — throughput, latency, watch and failover benchmarks against any etcd v3
 * endpoint (plinth or etcd), on plinth's asynchronous gRPC client. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "net/tls.h"

static void usage(FILE *f)
{
    fputs("usage: plinth-bench [global flags] WORKLOAD [flags]\n"
          "\n"
          "workloads:\n"
          "  put        N clients over M connections write keys\n"
          "  range      N clients read one key (or a prefix with --prefix-range)\n"
          "  txn-put    compare-and-swap: each client updates its key only if mod_revision matches\n"
          "  watch      event latency from put acknowledgement to delivery, to --watchers watchers\n"
          "  failover   kill the leader of a scripts/cluster.sh cluster (--cluster DIR) --rounds times\n"
          "\n"
          "flags (all workloads):\n"
          "  --endpoints URLS      comma-separated client URLs (default http://127.0.0.1:2379)\n"
          "  --cacert F --cert F --key F   TLS files\n"
          "  --conns M             connections (default 1)\n"
          "  --clients N           requests kept in flight (default 1)\n"
          "  --total N             requests to make (default 10000; 0 = until --duration)\n"
          "  --duration S          stop after S seconds (default none)\n"
          "  --max-time S          hard cap for any run (default 600)\n"
          "  --key-size B --val-size B   (default 8 and 256)\n"
          "  --sequential-keys     keys 0,1,2.. (default random over --key-space)\n"
          "  --key-space N         distinct random keys (default 100000)\n"
          "  --prefix P            key prefix (default \"bench/\")\n"
          "  --timeout-ms MS       per request deadline (default 10000)\n"
          "  -w simple|json        output (default simple)\n"
          "  -q                    no progress line\n"
          "range: --consistency l|s (default l), --prefix-range\n"
          "watch: --watchers W (default 1; spread over --conns streams)\n"
          "failover: --cluster DIR, --rounds R (default 5), --stop (SIGSTOP instead of SIGKILL)\n",
          f);
}

double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

void lat_add(struct bench_lat *l, double us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint32_t *p = realloc(l->us, cap * sizeof *p);
        if (!p)
            return; /* a lost sample is better than a lost run */
        l->us = p;
        l->cap = cap;
    }
    if (us < 0)
        us = 0;
    l->us[l->n++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

double lat_pct_ms(struct bench_lat *l, double q)
{
    if (!l->n)
        return 0;
    qsort(l->us, l->n, sizeof *l->us, cmp_u32);
    size_t i = (size_t)ceil(q * l->n);
    if (i > 0)
        i--;
    if (i >= l->n)
        i = l->n - 1;
    return l->us[i] / 1000.0;
}

double lat_max_ms(struct bench_lat *l)
{
    uint32_t m = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->us[i] > m)
            m = l->us[i];
    return m / 1000.0;
}

void lat_free(struct bench_lat *l)
{
    free(l->us);
    l->us = NULL;
    l->n = l->cap = 0;
}

void report_print(const struct bench_opts *o, const struct bench_report *r)
{
    double rate = r->seconds > 0 ? r->ops / r->seconds : 0;
    double p50 = lat_pct_ms(r->lat, 0.50), p90 = lat_pct_ms(r->lat, 0.90);
    double p99 = lat_pct_ms(r->lat, 0.99), mx = lat_max_ms(r->lat);
    if (o->json) {
        printf("{\"workload\":\"%s\",\"ops\":%ld,\"errors\":%ld,\"seconds\":%.3f,"
               "\"ops_per_sec\":%.1f,\"samples\":%zu,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
               "\"p99\":%.3f,\"max\":%.3f}",
               r->workload, r->ops, r->errors, r->seconds, rate, r->lat->n, p50, p90, p99, mx);
        if (r->extra)
            printf(",%s", r->extra);
        if (r->first_error) {
            printf(",\"first_error\":\"");
            for (const char *p = r->first_error; *p; p++)
                if (*p == '"' || *p == '\\')
                    printf("\\%c", *p);
                else if ((unsigned char)*p >= 0x20)
                    putchar(*p);
            putchar('"');
        }
        printf("}\n");
    } else {
        printf("%s: %ld ops in %.2f s, %.1f ops/s, %ld errors\n", r->workload, r->ops, r->seconds,
               rate, r->errors);
        printf("%s: latency ms (%zu samples): p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
               r->workload, r->lat->n, p50, p90, p99, mx);
        if (r->extra_text)
            printf("%s: %s\n", r->workload, r->extra_text);
        if (r->first_error)
            printf("%s: first error: %s\n", r->workload, r->first_error);
    }
    fflush(stdout);
}

int make_clients(const struct bench_opts *o, const char *endpoints, struct event_base *base,
                 struct net_grpc_client **out, int m, SSL_CTX **ctx_out)
{
    char err[NET_TLS_ERRLEN];
    *ctx_out = NULL;
    if (strstr(endpoints, "https://")) {
        struct net_tls_client_opts to = { .ca_file = o->cacert, .cert_file = o->cert,
                                          .key_file = o->key, .alpn = "h2" };
        if (net_tls_client_ctx_new(&to, ctx_out, err, sizeof err) != 0) {
            fprintf(stderr, "plinth-bench: %s\n", err);
            return -1;
        }
    }
    for (int i = 0; i < m; i++) {
        struct net_grpc_client_opts co = { .endpoints = endpoints, .ssl_ctx = *ctx_out,
                                           .base = base, .dial_timeout_ms = 3000,
                                           .call_timeout_ms = o->timeout_ms };
        struct net_grpc_status st;
        out[i] = net_grpc_client_new(&co, &st);
        if (!out[i]) {
            fprintf(stderr, "plinth-bench: %s\n", st.message);
            while (i-- > 0)
                net_grpc_client_free(out[i]);
            net_tls_ctx_free(*ctx_out);
            *ctx_out = NULL;
            return -1;
        }
    }
    return 0;
}

static double last_progress;

void progress(const struct bench_opts *o, const char *what, long done, long errors, double start_us)
{
    double t = now_us();
    if (o->quiet || t - start_us < 2e6 || t - last_progress < 1e6)
        return;
    last_progress = t;
    double el = (t - start_us) / 1e6;
    fprintf(stderr, "%s%s: %ld done, %ld errors, %.1f s, %.0f ops/s%s", isatty(2) ? "\r" : "",
            what, done, errors, el, done / el, isatty(2) ? "   " : "\n");
}

void progress_end(const struct bench_opts *o)
{
    if (!o->quiet && last_progress > 0 && isatty(2))
        fputc('\n', stderr);
    last_progress = 0;
}

void make_key(const struct bench_opts *o, long i, uint8_t *buf)
{
    size_t pl = strlen(o->prefix);
    char num[32];
    int nl = snprintf(num, sizeof num, "%010ld", i);
    size_t ks = (size_t)o->key_size;
    memset(buf, '0', ks);
    /* the prefix, then the number right-aligned; keys shorter than both keep the tail */
    size_t take = pl < ks ? pl : ks;
    memcpy(buf, o->prefix, take);
    size_t room = ks - take;
    if ((size_t)nl <= room)
        memcpy(buf + ks - nl, num, nl);
    else if (room)
        memcpy(buf + take, num + nl - room, room);
}

static int parse_num(const char *flag, const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v ? v : "", &end);
    if (!v || !*v || *end || errno || d < 0) {
        fprintf(stderr, "plinth-bench: %s: not a non-negative number: '%s'\n", flag, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_opts o = { .endpoints = "http://127.0.0.1:2379", .conns = 1, .clients = 1,
                            .total = 10000, .max_time = 600, .key_size = 8, .val_size = 256,
                            .key_space = 100000, .prefix = "bench/", .watchers = 1,
                            .rounds = 5, .timeout_ms = 10000 };
    const char *workload = NULL;
    int total_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char name[64];
        if (strncmp(a, "--", 2) == 0 && strchr(a, '=')) {
            size_t n = (size_t)(strchr(a, '=') - a);
            if (n >= sizeof name)
                n = sizeof name - 1;
            memcpy(name, a, n);
            name[n] = 0;
            v = strchr(a, '=') + 1;
            a = name;
        }
#define VAL() (v ? v : (i + 1 < argc ? argv[++i] : NULL))
#define NUM(dst)                                  \
    do {                                          \
        double d_;                                \
        if (parse_num(a, VAL(), &d_) != 0)        \
            return 2;                             \
        dst = d_;                                 \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--endpoints")) {
            if (!(o.endpoints = VAL())) goto missing;
        } else if (!strcmp(a, "--cacert")) {
            if (!(o.cacert = VAL())) goto missing;
        } else if (!strcmp(a, "--cert")) {
            if (!(o.cert = VAL())) goto missing;
        } else if (!strcmp(a, "--key")) {
            if (!(o.key = VAL())) goto missing;
        } else if (!strcmp(a, "--prefix")) {
            if (!(o.prefix = VAL())) goto missing;
        } else if (!strcmp(a, "--cluster")) {
            if (!(o.cluster_dir = VAL())) goto missing;
        } else if (!strcmp(a, "--conns")) NUM(o.conns);
        else if (!strcmp(a, "--clients")) NUM(o.clients);
        else if (!strcmp(a, "--total")) { NUM(o.total); total_set = 1; }
        else if (!strcmp(a, "--duration")) NUM(o.duration);
        else if (!strcmp(a, "--max-time")) NUM(o.max_time);
        else if (!strcmp(a, "--key-size")) NUM(o.key_size);
        else if (!strcmp(a, "--val-size")) NUM(o.val_size);
        else if (!strcmp(a, "--key-space")) NUM(o.key_space);
        else if (!strcmp(a, "--watchers")) NUM(o.watchers);
        else if (!strcmp(a, "--rounds")) NUM(o.rounds);
        else if (!strcmp(a, "--timeout-ms")) NUM(o.timeout_ms);
        else if (!strcmp(a, "--sequential-keys")) o.sequential = 1;
        else if (!strcmp(a, "--prefix-range")) o.range_prefix = 1;
        else if (!strcmp(a, "--stop")) o.use_stop = 1;
        else if (!strcmp(a, "-q")) o.quiet = 1;
        else if (!strcmp(a, "--consistency")) {
            const char *c = VAL();
            if (!c || (strcmp(c, "l") && strcmp(c, "s"))) {
                fprintf(stderr, "plinth-bench: --consistency: want l or s\n");
                return 2;
            }
            o.serializable = c[0] == 's';
        } else if (!strcmp(a, "-w") || !strcmp(a, "--write-out")) {
            const char *w = VAL();
            if (!w || (strcmp(w, "json") && strcmp(w, "simple"))) {
                fprintf(stderr, "plinth-bench: -w: want simple or json\n");
                return 2;
            }
            o.json = !strcmp(w, "json");
        } else if (a[0] == '-') {
            fprintf(stderr, "plinth-bench: unknown flag %s (see --help)\n", argv[i]);
            return 2;
        } else if (!workload) {
            workload = a;
        } else {
            fprintf(stderr, "plinth-bench: unexpected argument '%s'\n", a);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "plinth-bench: %s needs a value\n", a);
        return 2;
    }
#undef VAL
#undef NUM
    if (!workload) {
        usage(stderr);
        return 2;
    }
    if (o.conns < 1 || o.clients < 1 || o.key_size < 1 || o.key_space < 1 || o.watchers < 1 ||
        o.rounds < 1 || o.max_time <= 0) {
        fprintf(stderr, "plinth-bench: --conns, --clients, --key-size, --key-space, --watchers, "
                        "--rounds and --max-time must be positive\n");
        return 2;
    }
    if (o.duration > 0 && !total_set)
        o.total = 0;
    if (o.total == 0 && o.duration <= 0) {
        fprintf(stderr, "plinth-bench: give --total or --duration (a run must be bounded)\n");
        return 2;
    }
    if (o.duration <= 0 || o.duration > o.max_time)
        o.duration = o.max_time;
    if (o.conns > o.clients && strcmp(workload, "watch"))
        o.conns = o.clients;
    if (!strcmp(workload, "put") || !strcmp(workload, "range") || !strcmp(workload, "txn-put"))
        return run_load(&o, workload);
    if (!strcmp(workload, "watch"))
        return run_watch(&o);
    if (!strcmp(workload, "failover"))
        return run_failover(&o);
    fprintf(stderr, "plinth-bench: unknown workload '%s' (put, range, txn-put, watch, failover)\n",
            workload);
    return 2;
}

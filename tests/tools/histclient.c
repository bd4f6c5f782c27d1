/* histclient — concurrent clients doing random puts, deletes, cas and linearizable gets, recording a history for lincheck. */
/*
 * Usage: histclient --endpoints URL[,URL...] | --endpoints-file FILE
 *                   [--cacert F --cert F --key F] [--clients N] [--keys K] [--prefix P]
 *                   [--duration S] [--max-ops M] [--op-timeout MS] [--think MS] [--etcdctl PATH] [--cas on]
 *                   [--stop-file F] [--tag T] --out HISTORY
 *
 * N client threads each loop until the duration, the op budget or the stop file ends
 * the run: pick one of K keys (P0..P{K-1}) and get it (a linearizable read, 2 ops in 5),
 * put a value unique in the run ("T.c<client>-<seq>", T from --tag, default "p<pid>", so
 * runs appending to one history never collide), or delete it (1 op in 20); with --cas on,
 * 3 ops in 10 are a compare-and-swap through Txn instead of a put (compare the value, or
 * absence, the client last saw; put a new unique value on success), recorded "ok" when it
 * swapped and "fail" when the compare was false. One line per operation goes to HISTORY in
 * lincheck's format with CLOCK_MONOTONIC ns times.
 *
 * Each operation is one gRPC call (plinth's client, one connection per client thread) to
 * the client's current endpoint with a deadline, or with --etcdctl PATH one etcdctl
 * process; on any error the client moves to the next endpoint (re-reading
 * --endpoints-file, which a test rewrites as members come and go). A write that fails or
 * times out is recorded with outcome "unknown": it may or may not have taken effect. A
 * failed get is recorded as unknown too (lincheck ignores it).
 * At the end it prints a summary line: "histclient: puts ok=.. unknown=.. gets ok=.. ...".
 * Exit 0, or 2 on bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/grpc_client.h"
#include "rpc.pb-c.h"

extern char **environ;

#define MAX_EPS 16
#define URL_LEN 256

static struct {
    char eps[MAX_EPS][URL_LEN];
    int neps;
    const char *eps_file;
    const char *cacert, *cert, *key, *etcdctl, *prefix, *out_path, *stop_file;
    char tag[32];
    int clients, keys, op_timeout_ms, think_ms;
    int use_etcdctl;                 /* --etcdctl PATH: run etcdctl per op instead of gRPC */
    int use_cas;                     /* --cas: also compare-and-swap through Txn */
    double duration;
    long max_ops;
} cfg = {.clients = 4, .keys = 3, .op_timeout_ms = 2000, .duration = 10, .max_ops = 100000,
         .etcdctl = "etcdctl", .prefix = "lin-"};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;
static long ops_started;
static long n_put_ok, n_put_unknown, n_get_ok, n_get_fail, n_cas_done, n_cas_unknown;
static long n_del_ok, n_del_unknown;
static int64_t t_end;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int parse_endpoints(const char *list, char eps[][URL_LEN], int max)
{
    int n = 0;
    const char *p = list;
    while (*p && n < max) {
        size_t len = strcspn(p, ", \n\t");
        if (len > 0 && len < URL_LEN) {
            memcpy(eps[n], p, len);
            eps[n][len] = '\0';
            n++;
        }
        p += len;
        p += strspn(p, ", \n\t");
    }
    return n;
}

/* Copies the current endpoint list (from the file when one is given). */
static int current_endpoints(char eps[][URL_LEN])
{
    if (cfg.eps_file) {
        char buf[MAX_EPS * URL_LEN];
        FILE *f = fopen(cfg.eps_file, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[n] = '\0';
            int k = parse_endpoints(buf, eps, MAX_EPS);
            if (k > 0)
                return k;
        }
    }
    memcpy(eps, cfg.eps, sizeof(cfg.eps));
    return cfg.neps;
}

/*
 * Runs etcdctl with argv against one endpoint, with the op deadline; captures stdout.
 * Returns the exit status (0 success), or -1 when it was killed at the deadline.
 */
static int run_etcdctl(const char *endpoint, const char *const *args, char *outbuf, size_t outlen)
{
    char a_ep[URL_LEN + 16], a_cmd[64], a_dial[64], a_ca[600], a_cert[600], a_key[600];
    const char *argv[24];
    int argc = 0;
    snprintf(a_ep, sizeof(a_ep), "--endpoints=%s", endpoint);
    snprintf(a_cmd, sizeof(a_cmd), "--command-timeout=%dms", cfg.op_timeout_ms);
    snprintf(a_dial, sizeof(a_dial), "--dial-timeout=%dms", cfg.op_timeout_ms);
    argv[argc++] = cfg.etcdctl;
    argv[argc++] = a_ep;
    argv[argc++] = a_cmd;
    argv[argc++] = a_dial;
    if (cfg.cacert) {
        snprintf(a_ca, sizeof(a_ca), "--cacert=%s", cfg.cacert);
        argv[argc++] = a_ca;
    }
    if (cfg.cert) {
        snprintf(a_cert, sizeof(a_cert), "--cert=%s", cfg.cert);
        argv[argc++] = a_cert;
    }
    if (cfg.key) {
        snprintf(a_key, sizeof(a_key), "--key=%s", cfg.key);
        argv[argc++] = a_key;
    }
    for (int i = 0; args[i] && argc < 23; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, cfg.etcdctl, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return 1;
    }
    /* Read until EOF or the deadline (the op timeout plus a grace for process start). */
    int64_t deadline = now_ns() + (int64_t)(cfg.op_timeout_ms + 1000) * 1000000;
    size_t len = 0;
    int killed = 0;
    for (;;) {
        int64_t left = (deadline - now_ns()) / 1000000;
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char tmp[512];
        ssize_t n = read(pfd[0], tmp, sizeof(tmp));
        if (n <= 0)
            break;
        size_t room = outlen - 1 - len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(outbuf + len, tmp, take);
        len += take;
    }
    outbuf[len] = '\0';
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (killed)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static void record(const char *line)
{
    pthread_mutex_lock(&mu);
    fputs(line, out);
    fflush(out);
    pthread_mutex_unlock(&mu);
}

static int should_stop(void)
{
    if (now_ns() >= t_end)
        return 1;
    if (cfg.stop_file && access(cfg.stop_file, F_OK) == 0)
        return 1;
    pthread_mutex_lock(&mu);
    int stop = ops_started >= cfg.max_ops;
    if (!stop)
        ops_started++;
    pthread_mutex_unlock(&mu);
    return stop;
}

/* ---- the two ways to reach the store ------------------------------------------------ */

struct client {
    int id;
    int ep;                          /* index of the endpoint to use next */
    char eps[MAX_EPS][URL_LEN];
    int neps;
    struct net_grpc_client *grpc;    /* gRPC backend: dialed lazily, dropped on any error */
};

/* Moves the client to the next endpoint after an error (a fresh connection there). */
static void client_fail_over(struct client *cl)
{
    cl->ep++;
    if (cl->grpc) {
        net_grpc_client_free(cl->grpc);
        cl->grpc = NULL;
    }
}

static struct net_grpc_client *client_grpc(struct client *cl)
{
    if (cl->grpc)
        return cl->grpc;
    /* Only the chosen endpoint: failing over is this program's decision, made per op. */
    struct net_grpc_client_opts o = {
        .endpoints = cl->eps[cl->ep % cl->neps],
        .ca_file = cfg.cacert, .cert_file = cfg.cert, .key_file = cfg.key,
        .dial_timeout_ms = cfg.op_timeout_ms, .call_timeout_ms = cfg.op_timeout_ms,
    };
    struct net_grpc_status st;
    cl->grpc = net_grpc_client_new(&o, &st);
    if (!cl->grpc)
        fprintf(stderr, "histclient: client %d: %s\n", cl->id, st.message);
    return cl->grpc;
}

/* put: returns 1 when acknowledged, 0 when the outcome is unknown. */
static int do_put(struct client *cl, const char *key, const char *val)
{
    if (cfg.use_etcdctl) {
        char outbuf[4096];
        const char *args[] = {"put", key, val, NULL};
        int rc = run_etcdctl(cl->eps[cl->ep % cl->neps], args, outbuf, sizeof(outbuf));
        return rc == 0 && strncmp(outbuf, "OK", 2) == 0;
    }
    struct net_grpc_client *g = client_grpc(cl);
    if (!g)
        return 0;
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    req.value = (ProtobufCBinaryData){strlen(val), (uint8_t *)val};
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    int code = net_grpc_unary(g, "/etcdserverpb.KV/Put", &req.base,
                              &etcdserverpb__put_response__descriptor, &resp, &st, cfg.op_timeout_ms);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return code == NET_GRPC_OK;
}

/* delete: returns 1 when acknowledged, 0 when the outcome is unknown. */
static int do_del(struct client *cl, const char *key)
{
    if (cfg.use_etcdctl) {
        char outbuf[4096];
        const char *args[] = {"del", key, NULL};
        return run_etcdctl(cl->eps[cl->ep % cl->neps], args, outbuf, sizeof(outbuf)) == 0;
    }
    struct net_grpc_client *g = client_grpc(cl);
    if (!g)
        return 0;
    Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    int code = net_grpc_unary(g, "/etcdserverpb.KV/DeleteRange", &req.base,
                              &etcdserverpb__delete_range_response__descriptor, &resp, &st,
                              cfg.op_timeout_ms);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return code == NET_GRPC_OK;
}

/* get (linearizable): returns 1 with the value in val ("-" when absent), 0 on error. */
static int do_get(struct client *cl, const char *key, char *val, size_t vallen)
{
    if (cfg.use_etcdctl) {
        char outbuf[4096];
        const char *args[] = {"get", key, "--print-value-only", NULL};
        if (run_etcdctl(cl->eps[cl->ep % cl->neps], args, outbuf, sizeof(outbuf)) != 0)
            return 0;
        /* One line with the value, or nothing when the key is absent. */
        size_t l = strcspn(outbuf, "\n");
        outbuf[l] = '\0';
        if (l >= vallen || memchr(outbuf, ' ', l) || memchr(outbuf, '\t', l))
            snprintf(val, vallen, "?invalid");   /* not a value this program wrote */
        else if (l == 0)
            snprintf(val, vallen, "-");
        else
            snprintf(val, vallen, "%.*s", (int)l, outbuf);
        return 1;
    }
    struct net_grpc_client *g = client_grpc(cl);
    if (!g)
        return 0;
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    int code = net_grpc_unary(g, "/etcdserverpb.KV/Range", &req.base,
                              &etcdserverpb__range_response__descriptor, &resp, &st, cfg.op_timeout_ms);
    if (code != NET_GRPC_OK || !resp)
        return 0;
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)resp;
    int ok = 1;
    if (r->n_kvs == 0) {
        snprintf(val, vallen, "-");
    } else {
        ProtobufCBinaryData v = r->kvs[0]->value;
        if (v.len == 0 || v.len >= vallen || memchr(v.data, ' ', v.len) || memchr(v.data, '\n', v.len)) {
            /* Not a value this program wrote: keep the history well-formed. */
            snprintf(val, vallen, "?invalid");
        } else {
            memcpy(val, v.data, v.len);
            val[v.len] = '\0';
        }
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return ok;
}

/* cas through Txn: if KEY holds OLD ("-": absent) put NEW. Returns 1 swapped, 0 compared
 * false, -1 unknown outcome. */
static int do_cas(struct client *cl, const char *key, const char *old, const char *val)
{
    struct net_grpc_client *g = client_grpc(cl);
    if (!g)
        return -1;
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    if (strcmp(old, "-") == 0) {
        cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
        cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        cmp.create_revision = 0;
    } else {
        cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
        cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        cmp.value = (ProtobufCBinaryData){strlen(old), (uint8_t *)old};
    }
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    put.value = (ProtobufCBinaryData){strlen(val), (uint8_t *)val};
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = &put;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__RequestOp *ops[1] = {&op};
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_compare = 1;
    req.compare = cmps;
    req.n_success = 1;
    req.success = ops;
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    int code = net_grpc_unary(g, "/etcdserverpb.KV/Txn", &req.base,
                              &etcdserverpb__txn_response__descriptor, &resp, &st, cfg.op_timeout_ms);
    if (code != NET_GRPC_OK || !resp)
        return -1;
    int swapped = ((Etcdserverpb__TxnResponse *)resp)->succeeded ? 1 : 0;
    protobuf_c_message_free_unpacked(resp, NULL);
    return swapped;
}

static void *client_main(void *arg)
{
    struct client cl = {.id = (int)(intptr_t)arg};
    unsigned seed = (unsigned)(now_ns() ^ (cl.id * 7919));
    int seq = 0;
    char line[8192];
    char seen[64][64];   /* per key: the last value this client saw or wrote ("-": none) */
    for (int k = 0; k < 64; k++)
        snprintf(seen[k], sizeof(seen[k]), "-");
    cl.ep = cl.id;
    while (!should_stop()) {
        cl.neps = current_endpoints(cl.eps);
        if (cl.neps == 0)
            break;
        char key[128], val[64], got[64];
        int id = cl.id;
        int k = rand_r(&seed) % cfg.keys;
        snprintf(key, sizeof(key), "%s%d", cfg.prefix, k);
        /* The mix, in tenths: get 4, put 4 (3 with cas), delete 1 in 20, cas 2. */
        int dice = rand_r(&seed) % 20;
        int is_del = dice == 19;
        int is_put = !is_del && (cfg.use_cas ? dice >= 8 && dice < 14 : dice >= 8);
        int is_cas = !is_del && cfg.use_cas && dice >= 14;
        int64_t inv = now_ns(), ret;
        int ok;
        if (is_del) {
            ok = do_del(&cl, key);
            ret = now_ns();
            if (ok) {
                snprintf(seen[k], sizeof(seen[k]), "-");
                snprintf(line, sizeof(line), "%sc%d del %s - %" PRId64 " %" PRId64 " ok\n",
                         cfg.tag, id, key, inv, ret);
            } else {
                snprintf(line, sizeof(line), "%sc%d del %s - %" PRId64 " - unknown\n", cfg.tag,
                         id, key, inv);
            }
        } else if (is_cas) {
            char old[64];
            snprintf(old, sizeof(old), "%s", seen[k]);
            snprintf(val, sizeof(val), "%sc%d-%d", cfg.tag, id, ++seq);
            int r = do_cas(&cl, key, old, val);
            ret = now_ns();
            ok = r >= 0;
            if (r > 0)
                snprintf(seen[k], sizeof(seen[k]), "%s", val);
            if (ok)
                snprintf(line, sizeof(line), "%sc%d cas %s %s->%s %" PRId64 " %" PRId64 " %s\n",
                         cfg.tag, id, key, old, val, inv, ret, r ? "ok" : "fail");
            else
                snprintf(line, sizeof(line), "%sc%d cas %s %s->%s %" PRId64 " - unknown\n",
                         cfg.tag, id, key, old, val, inv);
        } else if (is_put) {
            snprintf(val, sizeof(val), "%sc%d-%d", cfg.tag, id, ++seq);
            ok = do_put(&cl, key, val);
            ret = now_ns();
            if (ok)
                snprintf(seen[k], sizeof(seen[k]), "%s", val);
            if (ok)
                snprintf(line, sizeof(line), "%sc%d put %s %s %" PRId64 " %" PRId64 " ok\n",
                         cfg.tag, id, key, val, inv, ret);
            else
                snprintf(line, sizeof(line), "%sc%d put %s %s %" PRId64 " - unknown\n", cfg.tag,
                         id, key, val, inv);
        } else {
            ok = do_get(&cl, key, got, sizeof(got));
            ret = now_ns();
            if (ok && strlen(got) < sizeof(seen[k]))
                snprintf(seen[k], sizeof(seen[k]), "%.63s", got);
            if (ok)
                snprintf(line, sizeof(line), "%sc%d get %s - %" PRId64 " %" PRId64 " %s\n",
                         cfg.tag, id, key, inv, ret, got);
            else
                snprintf(line, sizeof(line), "%sc%d get %s - %" PRId64 " - unknown\n", cfg.tag,
                         id, key, inv);
        }
        record(line);
        pthread_mutex_lock(&mu);
        if (is_del)
            ok ? n_del_ok++ : n_del_unknown++;
        else if (is_cas)
            ok ? n_cas_done++ : n_cas_unknown++;
        else if (is_put)
            ok ? n_put_ok++ : n_put_unknown++;
        else
            ok ? n_get_ok++ : n_get_fail++;
        pthread_mutex_unlock(&mu);
        if (cfg.think_ms > 0) {
            struct timespec ts = {cfg.think_ms / 1000, (long)(cfg.think_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        if (!ok) {
            client_fail_over(&cl);
            /* Back off briefly after an error so a dead endpoint is not hammered. */
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    client_fail_over(&cl);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: histclient --endpoints URLS | --endpoints-file F [--cacert F --cert F --key F]\n"
            "       [--clients N] [--keys K] [--prefix P] [--duration S] [--max-ops M]\n"
            "       [--op-timeout MS] [--think MS] [--etcdctl PATH] [--cas on|off] [--stop-file F] [--tag T] --out HISTORY\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(a, "--endpoints") == 0)
            cfg.neps = parse_endpoints(v, cfg.eps, MAX_EPS);
        else if (strcmp(a, "--endpoints-file") == 0)
            cfg.eps_file = v;
        else if (strcmp(a, "--cacert") == 0)
            cfg.cacert = v;
        else if (strcmp(a, "--cert") == 0)
            cfg.cert = v;
        else if (strcmp(a, "--key") == 0)
            cfg.key = v;
        else if (strcmp(a, "--clients") == 0)
            cfg.clients = atoi(v);
        else if (strcmp(a, "--keys") == 0)
            cfg.keys = atoi(v);
        else if (strcmp(a, "--prefix") == 0)
            cfg.prefix = v;
        else if (strcmp(a, "--duration") == 0)
            cfg.duration = atof(v);
        else if (strcmp(a, "--max-ops") == 0)
            cfg.max_ops = atol(v);
        else if (strcmp(a, "--op-timeout") == 0)
            cfg.op_timeout_ms = atoi(v);
        else if (strcmp(a, "--cas") == 0 && (strcmp(v, "on") == 0 || strcmp(v, "off") == 0))
            cfg.use_cas = strcmp(v, "on") == 0;
        else if (strcmp(a, "--think") == 0)
            cfg.think_ms = atoi(v);
        else if (strcmp(a, "--etcdctl") == 0)
            cfg.etcdctl = v, cfg.use_etcdctl = 1;
        else if (strcmp(a, "--stop-file") == 0)
            cfg.stop_file = v;
        else if (strcmp(a, "--tag") == 0)
            snprintf(cfg.tag, sizeof(cfg.tag), "%s.", v);
        else if (strcmp(a, "--out") == 0)
            cfg.out_path = v;
        else
            usage();
        i++;
    }
    if (!cfg.tag[0])
        snprintf(cfg.tag, sizeof(cfg.tag), "p%d.", (int)getpid());
    if (cfg.eps_file) {
        char tmp[MAX_EPS][URL_LEN];
        if (cfg.neps == 0 && current_endpoints(tmp) == 0) {
            fprintf(stderr, "histclient: no endpoints in %s\n", cfg.eps_file);
            return 2;
        }
    }
    if (cfg.use_cas && cfg.use_etcdctl) {
        fprintf(stderr, "histclient: --cas needs the gRPC client (not --etcdctl)\n");
        return 2;
    }
    if (cfg.keys > 64)
        usage();
    if ((cfg.neps == 0 && !cfg.eps_file) || !cfg.out_path || cfg.clients < 1 || cfg.clients > 64 ||
        cfg.keys < 1 || cfg.duration <= 0 || cfg.op_timeout_ms < 50 || cfg.max_ops < 1)
        usage();
    out = fopen(cfg.out_path, "a");
    if (!out) {
        fprintf(stderr, "histclient: %s: %s\n", cfg.out_path, strerror(errno));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    t_end = now_ns() + (int64_t)(cfg.duration * 1e9);
    pthread_t th[64];
    for (int i = 0; i < cfg.clients; i++)
        pthread_create(&th[i], NULL, client_main, (void *)(intptr_t)i);
    for (int i = 0; i < cfg.clients; i++)
        pthread_join(th[i], NULL);
    fclose(out);
    printf("histclient: puts ok=%ld unknown=%ld gets ok=%ld failed=%ld cas done=%ld unknown=%ld "
           "deletes ok=%ld unknown=%ld\n", n_put_ok, n_put_unknown, n_get_ok, n_get_fail,
           n_cas_done, n_cas_unknown, n_del_ok, n_del_unknown);
    return 0;
}

/* bench_sched — scheduling throughput and scheduler failover on a running store.
 *
 * Against the store given by --endpoints it starts one hollow agent (--nodes simulated
 * nodes), creates --pods unbound pods, then starts two schedulers and measures how fast
 * every pod gets bound (watching the binds). Then it kills the acting scheduler (SIGKILL,
 * then SIGTERM, which resigns) and measures the time from the signal to the next bind of a
 * freshly created pod. Uses plinth-agent and plinth-scheduler from --bin-dir (default: the
 * folder of this program's ../bin). Objects go to namespace "bench-<pid>" and nodes named
 * "bench<pid>-N": run it on a throwaway cluster (nothing is cleaned up). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched/objects.h"
#include "sched/store.h"

static const char *endpoints = "http://127.0.0.1:2379", *cacert, *cert, *keyf, *bindir;
static int nodes = 1000, pods = 10000, ttl = 2;
static char ns[64], nodeprefix[64];

static pid_t spawn(const char *prog, const char *log, char *const extra[])
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", bindir, prog);
    char *argv[40];
    int n = 0;
    argv[n++] = path;
    argv[n++] = "--endpoints";
    argv[n++] = (char *)endpoints;
    if (cacert) { argv[n++] = "--cacert"; argv[n++] = (char *)cacert; }
    if (cert) { argv[n++] = "--cert"; argv[n++] = (char *)cert; }
    if (keyf) { argv[n++] = "--key"; argv[n++] = (char *)keyf; }
    for (int i = 0; extra[i] && n < 38; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(path, argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    return pid;
}

static size_t count_prefix(struct sched_store *s, const char *prefix, int64_t *rev)
{
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    if (sched_store_list(s, prefix, 0, true, &kvs, &n, rev)) return 0;
    sched_kvs_free(kvs, n);
    return n;
}

static int create_pod(struct sched_store *s, const char *name)
{
    json_t *pod = json_pack("{ss s{ssss} s{s[{ssss s{s{ssss}}}]} }", "kind", "Pod", "metadata",
                            "name", name, "namespace", ns, "spec", "containers", "name", "c",
                            "image", "hollow", "resources", "requests", "cpu", "10m",
                            "memory", "16Mi");
    char err[256];
    int rc = sched_obj_validate(pod, err, sizeof(err));
    if (!rc) rc = sched_store_create_obj(s, pod, NULL);
    json_decref(pod);
    return rc;
}

/* Waits until `want` pods of the namespace are bound, watching from rev+1. Returns the
 * time of the last bind (ms) or -1 on timeout; *first gets the time of the first bind. */
static int64_t wait_binds(struct sched_store *s, int64_t rev, long want, int64_t timeout_ms,
                          int64_t *first, const char *only)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "/registry/pods/%s/", ns);
    struct sched_watch *w = NULL;
    if (sched_watch_open(s, prefix, rev + 1, &w)) return -1;
    json_t *bound = json_object();
    int64_t end = sched_now_ms() + timeout_ms, last = -1;
    *first = -1;
    while ((long)json_object_size(bound) < want && sched_now_ms() < end) {
        struct sched_event *evs = NULL;
        size_t n = 0;
        if (sched_watch_next(w, 200, &evs, &n, NULL)) break;
        for (size_t i = 0; i < n; i++) {
            if (evs[i].type != SCHED_EV_PUT) continue;
            if (only && !strstr(evs[i].kv.key, only)) continue;
            json_t *o = sched_obj_from_kv(evs[i].kv.value, evs[i].kv.value_len, evs[i].kv.mod_rev);
            if (o && *sched_obj_str(o, "spec.nodeName") && !json_object_get(bound, evs[i].kv.key)) {
                json_object_set_new(bound, evs[i].kv.key, json_true());
                last = sched_now_ms();
                if (*first < 0) *first = last;
            }
            json_decref(o);
        }
        sched_events_free(evs, n);
    }
    long got = (long)json_object_size(bound);
    json_decref(bound);
    sched_watch_close(w);
    return got >= want ? last : -1;
}

static void leader_name(struct sched_store *s, char *out, size_t len)
{
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (sched_store_list(s, "/plinth/election/scheduler/", 0, false, &kvs, &n, NULL)) return;
    int64_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (!best || kvs[i].create_rev < best) {
            best = kvs[i].create_rev;
            snprintf(out, len, "%s", kvs[i].value);
        }
    sched_kvs_free(kvs, n);
}

/* Kills the acting scheduler with sig and returns the ms until a new pod is bound. */
static int64_t failover(struct sched_store *s, const char *names[], pid_t pids[], int n, int sig,
                        const char *podname)
{
    char lead[128];
    int64_t until = sched_now_ms() + 10000;
    int idx = -1;
    /* the previous leader's key may linger until its lease expires: wait for a live one */
    while (idx < 0 && sched_now_ms() < until) {
        leader_name(s, lead, sizeof(lead));
        for (int i = 0; i < n; i++)
            if (pids[i] > 0 && !strcmp(names[i], lead)) idx = i;
        if (idx < 0) usleep(50000);
    }
    if (idx < 0) {
        fprintf(stderr, "bench_sched: no acting scheduler found\n");
        return -1;
    }
    int64_t rev = 0;
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "/registry/pods/%s/", ns);
    count_prefix(s, prefix, &rev);
    int64_t t0 = sched_now_ms();
    kill(pids[idx], sig);
    waitpid(pids[idx], NULL, 0);
    pids[idx] = 0;
    if (create_pod(s, podname)) {
        fprintf(stderr, "bench_sched: create %s: %s\n", podname, sched_store_errmsg(s));
        return -1;
    }
    int64_t first = 0;
    char only[128];
    snprintf(only, sizeof(only), "/%s", podname);
    int64_t t1 = wait_binds(s, rev, 1, 30000, &first, only);
    printf("bench_sched: %s killed the acting scheduler %s; next bind after %" PRId64 " ms\n",
           sig == SIGKILL ? "SIGKILL" : "SIGTERM", lead, t1 < 0 ? -1 : t1 - t0);
    return t1 < 0 ? -1 : t1 - t0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--endpoints") && v) endpoints = argv[++i];
        else if (!strcmp(a, "--cacert") && v) cacert = argv[++i];
        else if (!strcmp(a, "--cert") && v) cert = argv[++i];
        else if (!strcmp(a, "--key") && v) keyf = argv[++i];
        else if (!strcmp(a, "--bin-dir") && v) bindir = argv[++i];
        else if (!strcmp(a, "--nodes") && v) nodes = atoi(argv[++i]);
        else if (!strcmp(a, "--pods") && v) pods = atoi(argv[++i]);
        else if (!strcmp(a, "--lease-ttl") && v) ttl = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_sched --endpoints URLS [--cacert F --cert F --key F]\n"
                            "       [--nodes 1000] [--pods 10000] [--lease-ttl 2] [--bin-dir DIR]\n");
            return 2;
        }
    }
    char self[1024], bd[1100];
    if (!bindir) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[n > 0 ? n : 0] = '\0';
        snprintf(bd, sizeof(bd), "%s/../bin", dirname(self));
        bindir = bd;
    }
    snprintf(ns, sizeof(ns), "bench-%d", (int)getpid());
    snprintf(nodeprefix, sizeof(nodeprefix), "bench%d", (int)getpid());
    signal(SIGPIPE, SIG_IGN);
    struct sched_store *s;
    char err[512];
    struct sched_store_opts o = {.endpoints = endpoints, .ca_file = cacert, .cert_file = cert,
                                 .key_file = keyf, .timeout_ms = 10000};
    if (sched_store_open(&o, &s, err, sizeof(err))) {
        fprintf(stderr, "bench_sched: %s\n", err);
        return 1;
    }
    char nbuf[16], tbuf[16], logdir[64];
    snprintf(nbuf, sizeof(nbuf), "%d", nodes);
    snprintf(tbuf, sizeof(tbuf), "%d", ttl);
    snprintf(logdir, sizeof(logdir), "/tmp/bench_sched.%d", (int)getpid());
    mkdir(logdir, 0755);
    char alog[128];
    snprintf(alog, sizeof(alog), "%s/agent.log", logdir);
    /* hollow nodes renew one shared node lease; a long TTL keeps that cheap */
    char *aargs[] = {"--node", nodeprefix, "--hollow", nbuf, "--lease-ttl", "30", "--cpu", "8",
                     "--memory", "32Gi", "--max-pods", "110", NULL};
    pid_t agent = spawn("plinth-agent", alog, aargs);
    int64_t t0 = sched_now_ms();
    char nprefix[128];
    snprintf(nprefix, sizeof(nprefix), "/registry/nodes/%s-", nodeprefix);
    while (count_prefix(s, nprefix, NULL) < (size_t)nodes && sched_now_ms() - t0 < 120000) usleep(200000);
    printf("bench_sched: %d hollow nodes registered in %" PRId64 " ms\n", nodes, sched_now_ms() - t0);

    int64_t rev0 = 0;
    char pprefix[128];
    snprintf(pprefix, sizeof(pprefix), "/registry/pods/%s/", ns);
    count_prefix(s, pprefix, &rev0);
    t0 = sched_now_ms();
    /* pipelined creates, 500 in flight */
    for (int i = 0; i < pods; i += 500) {
        int m = pods - i < 500 ? pods - i : 500;
        struct sched_write w[500];
        char *text[500], keys[500][128];
        for (int j = 0; j < m; j++) {
            char name[64];
            snprintf(name, sizeof(name), "p%06d", i + j);
            json_t *pod = json_pack("{ss s{ssss} s{s[{ssss s{s{ssss}}}]} }", "kind", "Pod", "metadata",
                                    "name", name, "namespace", ns, "spec", "containers", "name", "c",
                                    "image", "hollow", "resources", "requests", "cpu", "10m",
                                    "memory", "16Mi");
            char err[256], uid[33], now[32];
            sched_obj_validate(pod, err, sizeof(err));
            sched_new_uid(uid);
            sched_now_rfc3339(now, sizeof(now));
            sched_obj_set(pod, "metadata.uid", json_string(uid));
            sched_obj_set(pod, "metadata.creationTimestamp", json_string(now));
            sched_obj_key(pod, keys[j], sizeof(keys[j]));
            text[j] = sched_obj_encode(pod);
            json_decref(pod);
            w[j] = (struct sched_write){.key = keys[j], .value = text[j], .len = strlen(text[j]), .expect_mod = 0};
        }
        sched_store_write_batch(s, w, (size_t)m, NULL);
        int bad = 0;
        for (int j = 0; j < m; j++) {
            bad += w[j].rc != 0;
            free(text[j]);
        }
        if (bad) {
            fprintf(stderr, "bench_sched: %d creates failed: %s\n", bad, sched_store_errmsg(s));
            break;
        }
    }
    int64_t tc = sched_now_ms() - t0;
    printf("bench_sched: created %d pods in %" PRId64 " ms (%.0f creates/s, pipelined)\n", pods, tc,
           tc ? pods * 1000.0 / tc : 0.0);

    const char *names[3] = {"bench-s1", "bench-s2", "bench-s3"};
    pid_t sp[3] = {0, 0, 0};
    for (int i = 0; i < 2; i++) {
        char log[128];
        snprintf(log, sizeof(log), "%s/%s.log", logdir, names[i]);
        char *sargs[] = {"--name", (char *)names[i], "--lease-ttl", tbuf, NULL};
        sp[i] = spawn("plinth-scheduler", log, sargs);
    }
    int64_t tstart = sched_now_ms(), first = 0;
    int64_t last = wait_binds(s, rev0, pods, 600000, &first, NULL);
    if (last < 0) {
        printf("bench_sched: not every pod was bound within 600 s\n");
    } else {
        printf("bench_sched: bound %d pods on %d hollow nodes: %.0f pods/s from the first bind "
               "(%" PRId64 " ms), %.0f pods/s including start-up and cache sync (%" PRId64 " ms)\n",
               pods, nodes, (last - first) ? (pods - 1) * 1000.0 / (last - first) : 0.0, last - first,
               (last - tstart) ? pods * 1000.0 / (last - tstart) : 0.0, last - tstart);
    }
    char log3[128];
    snprintf(log3, sizeof(log3), "%s/%s.log", logdir, names[2]);
    char *s3args[] = {"--name", (char *)names[2], "--lease-ttl", tbuf, NULL};
    sp[2] = spawn("plinth-scheduler", log3, s3args);
    sleep(1);
    int64_t f1 = failover(s, names, sp, 3, SIGKILL, "failover-kill");
    int64_t f2 = failover(s, names, sp, 3, SIGTERM, "failover-term");
    printf("bench_sched: failover (lease ttl %d s): SIGKILL %" PRId64 " ms, SIGTERM (resign) %" PRId64 " ms\n",
           ttl, f1, f2);
    printf("bench_sched: logs in %s\n", logdir);
    for (int i = 0; i < 3; i++)
        if (sp[i] > 0) kill(sp[i], SIGTERM);
    kill(agent, SIGTERM);
    for (int i = 0; i < 3; i++)
        if (sp[i] > 0) waitpid(sp[i], NULL, 0);
    waitpid(agent, NULL, 0);
    sched_store_close(s);
    return last < 0 || f1 < 0 || f2 < 0;
}

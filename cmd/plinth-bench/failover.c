/* failover — kills (SIGKILL, or SIGSTOP with --stop) the leader of a cluster made by
 * scripts/cluster.sh, measures the time to the first acknowledged write and to a new
 * leader, brings the member back and repeats for --rounds rounds. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "net/tls.h"

#define MAXM 9

struct member {
    char name[32];
    char url[256];
    pid_t pid;
    uint64_t id;
};

struct fo {
    const struct bench_opts *o;
    const char *dir;
    struct member m[MAXM];
    int n;
    char cacert[1024], cert[1024], key[1024];
};

/* One round's measuring loop. */
struct round {
    struct fo *f;
    struct event_base *base;
    struct net_grpc_client *c[MAXM];
    int nc, next;
    uint64_t old_leader;
    double t0, first_write, new_leader;
    long inflight, puts, put_errors;
    double give_up;
    uint8_t key[64];
    size_t key_len;
};

static int read_members(struct fo *f)
{
    char path[1100], line[1200];
    snprintf(path, sizeof path, "%s/members", f->dir);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "plinth-bench: failover: %s: %s (make the cluster with scripts/cluster.sh)\n",
                path, strerror(errno));
        return -1;
    }
    while (f->n < MAXM && fgets(line, sizeof line, fp)) {
        struct member *m = &f->m[f->n];
        if (sscanf(line, "%31s %255s", m->name, m->url) == 2)
            f->n++;
    }
    fclose(fp);
    if (f->n < 3) {
        fprintf(stderr, "plinth-bench: failover: %s lists %d members; need at least 3\n", path, f->n);
        return -1;
    }
    return 0;
}

static int read_pids(struct fo *f)
{
    char path[1100], name[64];
    long pid;
    snprintf(path, sizeof path, "%s/pids", f->dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    while (fscanf(fp, "%63s %ld", name, &pid) == 2)
        for (int i = 0; i < f->n; i++)
            if (!strcmp(f->m[i].name, name))
                f->m[i].pid = (pid_t)pid;
    fclose(fp);
    return 0;
}

static void write_pids(struct fo *f)
{
    char path[1100], tmp[1100];
    snprintf(path, sizeof path, "%s/pids", f->dir);
    snprintf(tmp, sizeof tmp, "%s/pids.bench", f->dir);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return;
    for (int i = 0; i < f->n; i++)
        fprintf(fp, "%s %ld\n", f->m[i].name, (long)f->m[i].pid);
    fclose(fp);
    rename(tmp, path);
}

/* True when pid is the process serving member m (its command line names m's data dir). */
static int is_member_process(struct fo *f, struct member *m)
{
    char path[64], buf[8192], want[1200];
    if (m->pid <= 0 || kill(m->pid, 0) != 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)m->pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = 0;
    snprintf(want, sizeof want, "%s/%s", f->dir, m->name);
    return strstr(buf, want) != NULL;
}

static struct net_grpc_client *sync_client(struct fo *f, const char *url)
{
    struct net_grpc_client_opts co = { .endpoints = url, .ca_file = f->cacert,
                                       .cert_file = f->cert, .key_file = f->key,
                                       .dial_timeout_ms = 1000, .call_timeout_ms = 1000 };
    return net_grpc_client_new(&co, NULL);
}

/* Status of every member; returns the index of the member all answering ones call
 * leader, or -1. *answered counts the members that answered. */
static int find_leader(struct fo *f, int *answered)
{
    uint64_t leader = 0;
    int agree = 1;
    *answered = 0;
    for (int i = 0; i < f->n; i++) {
        struct net_grpc_client *c = sync_client(f, f->m[i].url);
        if (!c)
            continue;
        Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        if (net_grpc_unary(c, "/etcdserverpb.Maintenance/Status", &req.base,
                           &etcdserverpb__status_response__descriptor, &resp, NULL, 1000) ==
            NET_GRPC_OK) {
            Etcdserverpb__StatusResponse *s = (Etcdserverpb__StatusResponse *)resp;
            (*answered)++;
            if (s->header)
                f->m[i].id = s->header->member_id;
            if (s->leader == 0 || (leader && s->leader != leader))
                agree = 0;
            leader = s->leader ? s->leader : leader;
            protobuf_c_message_free_unpacked(resp, NULL);
        }
        net_grpc_client_free(c);
    }
    if (!agree || !leader)
        return -1;
    for (int i = 0; i < f->n; i++)
        if (f->m[i].id == leader)
            return i;
    return -1;
}

static void on_put(void *ud, const struct net_grpc_status *st, const uint8_t *resp, size_t len)
{
    (void)resp;
    (void)len;
    struct round *r = ud;
    r->inflight--;
    if (st->code == NET_GRPC_OK) {
        if (r->first_write == 0)
            r->first_write = now_us() - r->t0;
    } else {
        r->put_errors++;
    }
    if (r->first_write > 0 && r->new_leader > 0)
        event_base_loopbreak(r->base);
}

static void on_status(void *ud, const struct net_grpc_status *st, const uint8_t *resp, size_t len)
{
    struct round *r = ud;
    r->inflight--;
    if (st->code != NET_GRPC_OK)
        return;
    Etcdserverpb__StatusResponse *s = etcdserverpb__status_response__unpack(NULL, len, resp);
    if (s) {
        if (s->leader && s->leader != r->old_leader && r->new_leader == 0)
            r->new_leader = now_us() - r->t0;
        etcdserverpb__status_response__free_unpacked(s, NULL);
    }
    if (r->first_write > 0 && r->new_leader > 0)
        event_base_loopbreak(r->base);
}

/* Every 10 ms: a put and a status request to the next surviving member. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct round *r = arg;
    if (now_us() > r->give_up) {
        event_base_loopbreak(r->base);
        return;
    }
    if (r->inflight > 400)
        return;
    struct net_grpc_client *c = r->c[r->next++ % r->nc];
    uint8_t buf[256];
    if (r->first_write == 0) {
        Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){ r->key_len, r->key };
        req.value = (ProtobufCBinaryData){ 5, (uint8_t *)"value" };
        size_t len = etcdserverpb__put_request__pack(&req, buf);
        if (net_grpc_unary_async(c, "/etcdserverpb.KV/Put", buf, len, 3000, on_put, r) == 0) {
            r->inflight++;
            r->puts++;
        }
    }
    if (r->new_leader == 0) {
        Etcdserverpb__StatusRequest sreq = ETCDSERVERPB__STATUS_REQUEST__INIT;
        size_t len = etcdserverpb__status_request__pack(&sreq, buf);
        if (net_grpc_unary_async(c, "/etcdserverpb.Maintenance/Status", buf, len, 500, on_status,
                                 r) == 0)
            r->inflight++;
    }
}

/* Starts member m again from the command cluster.sh saved (DIR/NAME.sh), detached. */
static int restart_member(struct fo *f, struct member *m)
{
    char script[1100], log[1100], pidf[1100];
    snprintf(script, sizeof script, "%s/%s.sh", f->dir, m->name);
    snprintf(log, sizeof log, "%s/%s.log", f->dir, m->name);
    snprintf(pidf, sizeof pidf, "%s/%s.pid", f->dir, m->name);
    unlink(pidf);
    pid_t c = fork();
    if (c < 0)
        return -1;
    if (c == 0) {
        if (fork() != 0)
            _exit(0);
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execl("/bin/bash", "bash", script, (char *)NULL);
        _exit(127);
    }
    waitpid(c, NULL, 0);
    for (int i = 0; i < 200; i++) {
        FILE *fp = fopen(pidf, "r");
        long pid = 0;
        if (fp) {
            if (fscanf(fp, "%ld", &pid) != 1)
                pid = 0;
            fclose(fp);
        }
        if (pid > 0) {
            m->pid = (pid_t)pid;
            write_pids(f);
            return 0;
        }
        usleep(10000);
    }
    return -1;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

static void print_series(const char *name, double *v, int n, int json)
{
    double s[64];
    int k = n < 64 ? n : 64;
    memcpy(s, v, (size_t)k * sizeof *v);
    double med = median(s, k);
    if (json) {
        printf("\"%s\":{\"median\":%.1f,\"min\":%.1f,\"max\":%.1f,\"all\":[", name, med,
               k ? s[0] : 0, k ? s[k - 1] : 0);
        for (int i = 0; i < n; i++)
            printf("%s%.1f", i ? "," : "", v[i]);
        printf("]}");
    } else {
        printf("failover: %-22s median %8.1f ms  min %8.1f  max %8.1f\n", name, med, k ? s[0] : 0,
               k ? s[k - 1] : 0);
    }
}

int run_failover(const struct bench_opts *o)
{
    struct fo f = { .o = o, .dir = o->cluster_dir };
    if (!f.dir) {
        fprintf(stderr, "plinth-bench: failover needs --cluster DIR (made by scripts/cluster.sh)\n");
        return 2;
    }
    snprintf(f.cacert, sizeof f.cacert, "%s", o->cacert ? o->cacert : "");
    snprintf(f.cert, sizeof f.cert, "%s", o->cert ? o->cert : "");
    snprintf(f.key, sizeof f.key, "%s", o->key ? o->key : "");
    if (!o->cacert)
        snprintf(f.cacert, sizeof f.cacert, "%s/certs/ca.pem", f.dir);
    if (!o->cert)
        snprintf(f.cert, sizeof f.cert, "%s/certs/client.pem", f.dir);
    if (!o->key)
        snprintf(f.key, sizeof f.key, "%s/certs/client-key.pem", f.dir);
    if (read_members(&f) != 0 || read_pids(&f) != 0)
        return 1;
    int sig = o->use_stop ? SIGSTOP : SIGKILL;
    int R = o->rounds > 64 ? 64 : o->rounds, done = 0;
    double fw[64], nl[64];
    double deadline = now_us() + o->max_time * 1e6;
    for (int round = 0; round < R && now_us() < deadline; round++) {
        int answered = 0, li = -1;
        double wait_until = now_us() + 30e6;
        while (now_us() < wait_until) {
            li = find_leader(&f, &answered);
            if (li >= 0 && answered == f.n)
                break;
            usleep(100000);
        }
        if (li < 0 || answered < f.n) {
            fprintf(stderr, "plinth-bench: failover: round %d: no stable leader with all %d members "
                            "up within 30 s\n", round + 1, f.n);
            break;
        }
        struct member *lm = &f.m[li];
        if (!is_member_process(&f, lm)) {
            fprintf(stderr, "plinth-bench: failover: leader %s: pid %ld from %s/pids is not its "
                            "process\n", lm->name, (long)lm->pid, f.dir);
            break;
        }
        struct round r = { .f = &f, .old_leader = lm->id };
        r.key_len = (size_t)snprintf((char *)r.key, sizeof r.key, "%sfailover", o->prefix);
        r.base = event_base_new();
        for (int i = 0; i < f.n; i++) {
            if (i == li)
                continue;
            struct net_grpc_client_opts co = { .endpoints = f.m[i].url, .ca_file = f.cacert,
                                               .cert_file = f.cert, .key_file = f.key,
                                               .base = r.base, .dial_timeout_ms = 1000 };
            r.c[r.nc] = net_grpc_client_new(&co, NULL);
            if (r.c[r.nc])
                r.nc++;
        }
        /* warm the connections so the round measures the cluster, not the TLS handshake */
        for (int i = 0; i < r.nc; i++) {
            Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
            req.key = (ProtobufCBinaryData){ r.key_len, r.key };
            req.value = (ProtobufCBinaryData){ 4, (uint8_t *)"warm" };
            ProtobufCMessage *resp = NULL;
            if (net_grpc_unary(r.c[i], "/etcdserverpb.KV/Put", &req.base,
                               &etcdserverpb__put_response__descriptor, &resp, NULL, 3000) ==
                NET_GRPC_OK)
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        struct event *tick = event_new(r.base, -1, EV_PERSIST, on_tick, &r);
        struct timeval tv = { 0, 10000 };
        r.t0 = now_us();
        r.give_up = r.t0 + 30e6;
        kill(lm->pid, sig);
        event_add(tick, &tv);
        on_tick(-1, 0, &r);
        event_base_dispatch(r.base);
        event_free(tick);
        for (int i = 0; i < r.nc; i++)
            net_grpc_client_free(r.c[i]);
        event_base_free(r.base);
        if (r.first_write == 0 || r.new_leader == 0)
            fprintf(stderr, "plinth-bench: failover: round %d: %s within 30 s\n", round + 1,
                    r.first_write == 0 ? "no write was acknowledged" : "no new leader seen");
        fw[done] = r.first_write / 1000.0;
        nl[done] = r.new_leader / 1000.0;
        done++;
        if (!o->json || !o->quiet)
            fprintf(o->json ? stderr : stdout,
                    "failover: round %d: %s leader %s: first write after %.1f ms, new leader after "
                    "%.1f ms (%ld puts tried)\n",
                    round + 1, o->use_stop ? "SIGSTOP" : "SIGKILL", lm->name, fw[done - 1],
                    nl[done - 1], r.puts);
        /* bring the member back: a stopped one continues, a killed one restarts */
        if (o->use_stop) {
            kill(lm->pid, SIGCONT);
        } else {
            waitpid(lm->pid, NULL, WNOHANG);
            for (int i = 0; i < 100 && kill(lm->pid, 0) == 0; i++)
                usleep(10000);
            if (restart_member(&f, lm) != 0) {
                fprintf(stderr, "plinth-bench: failover: could not restart %s from %s/%s.sh\n",
                        lm->name, f.dir, lm->name);
                break;
            }
        }
        if (r.first_write == 0)
            break;
        usleep(1000000); /* let the member rejoin before the next round looks for a leader */
    }
    if (!done)
        return 1;
    if (o->json) {
        printf("{\"workload\":\"failover\",\"signal\":\"%s\",\"rounds\":%d,",
               o->use_stop ? "SIGSTOP" : "SIGKILL", done);
        print_series("first_write_ms", fw, done, 1);
        printf(",");
        print_series("new_leader_ms", nl, done, 1);
        printf("}\n");
    } else {
        printf("failover: %d rounds of %s on the leader\n", done, o->use_stop ? "SIGSTOP" : "SIGKILL");
        print_series("to first write", fw, done, 0);
        print_series("to new leader", nl, done, 0);
    }
    for (int i = 0; i < done; i++)
        if (fw[i] == 0)
            return 1;
    return 0;
}

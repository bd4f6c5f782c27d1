/* agent — plinth-agent: registers its Node(s), keeps the node lease alive, runs the pods
 * bound to it as local processes (or, with --hollow N, pretends to for N nodes), restarts
 * them per restartPolicy, reports phase and exit codes, and stops deleted pods. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/agent_proc.h"
#include "sched/daemon.h"
#include "sched/informer.h"

#define MAX_CONTAINERS 16
#define RESTART_BACKOFF_MIN_MS 500
#define RESTART_BACKOFF_MAX_MS 10000
#define KILL_GRACE_MS 2000
#define MAX_STATUS_WRITES 500 /* per pass, all in flight at once */

struct cont {
    char name[64];
    pid_t pid;          /* > 0 while running */
    int restarts;
    int last_exit;      /* -1 before the first exit */
    bool done;          /* exited and will not restart */
    int64_t restart_at; /* when to start again (0: not waiting) */
    int64_t started_ms;
};

struct apod {
    char key[SCHED_KEY_MAX];
    char uid[40];
    char node[SCHED_NAME_MAX + 1];
    int ncont;
    struct cont c[MAX_CONTAINERS];
    bool seen;   /* still bound here in this pass */
    bool dirty;  /* local state changed since the status was last reported */
    int64_t seen_rev; /* the pod's resourceVersion when last reconciled */
    struct apod *next;
};

/* A process being stopped: SIGTERM sent, SIGKILL due at kill_at. */
struct dying {
    pid_t pid;
    int64_t kill_at;
    struct dying *next;
};

struct agent {
    struct sched_common *c;
    struct sched_store *s;
    struct sched_informer *inf;
    json_t *nodes;        /* node name -> true */
    int hollow;
    const char *cpu, *memory, *log_dir;
    int pods_cap;
    json_t *labels, *taints;
    int64_t lease;
    int64_t ka_due;
    bool registered;
    struct apod *pods;
    struct dying *dying;
    long status_writes;
};

static struct apod *find_pod(struct agent *a, const char *key)
{
    for (struct apod *p = a->pods; p; p = p->next)
        if (!strcmp(p->key, key)) return p;
    return NULL;
}

static void stop_pid(struct agent *a, pid_t pid)
{
    if (pid <= 0) return;
    agent_proc_signal(pid, SIGTERM);
    struct dying *d = calloc(1, sizeof(*d));
    if (!d) {
        agent_proc_signal(pid, SIGKILL);
        return;
    }
    d->pid = pid;
    d->kill_at = sched_now_ms() + KILL_GRACE_MS;
    d->next = a->dying;
    a->dying = d;
}

static void forget_pod(struct agent *a, struct apod *p)
{
    for (int i = 0; i < p->ncont; i++) stop_pid(a, p->c[i].pid);
    struct apod **pp = &a->pods;
    while (*pp != p) pp = &(*pp)->next;
    *pp = p->next;
    free(p);
}

/* ---- node registration and lease ---- */

static json_t *node_doc(struct agent *a, const char *name)
{
    json_t *n = json_pack("{ss s{ssso} s{so} s{s{sssssi} s[{ssss}]}}", "kind", "Node", "metadata",
                          "name", name, "labels", json_deep_copy(a->labels), "spec", "taints",
                          json_deep_copy(a->taints), "status", "capacity", "cpu", a->cpu,
                          "memory", a->memory, "pods", a->pods_cap, "addresses", "type",
                          "InternalIP", "address", "127.0.0.1");
    json_object_set_new(json_object_get(n, "metadata"), "labels", json_deep_copy(a->labels));
    json_object_set_new(json_object_get(json_object_get(n, "metadata"), "labels"),
                        "kubernetes.io/hostname", json_string(name));
    return n;
}

/* A pipelined batch of writes the agent owns the strings of. */
struct wbatch {
    struct sched_write *w;
    char **keys, **vals;
    size_t n, cap;
};

static void wb_add(struct wbatch *b, const char *key, char *val, int64_t expect, int64_t lease)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        b->w = realloc(b->w, cap * sizeof(*b->w));
        b->keys = realloc(b->keys, cap * sizeof(*b->keys));
        b->vals = realloc(b->vals, cap * sizeof(*b->vals));
        b->cap = cap;
    }
    b->keys[b->n] = strdup(key);
    b->vals[b->n] = val;
    b->w[b->n] = (struct sched_write){.key = b->keys[b->n], .value = val, .len = val ? strlen(val) : 0,
                                      .expect_mod = expect, .lease = lease};
    b->n++;
}

/* Sends the batch; returns the first failure (0 when all succeeded) and frees it. */
static int wb_send(struct agent *a, struct wbatch *b, const char *what)
{
    int rc = 0;
    if (b->n) sched_store_write_batch(a->s, b->w, b->n, NULL);
    for (size_t i = 0; i < b->n; i++) {
        if (b->w[i].rc && !rc) {
            rc = b->w[i].rc;
            sched_log("%s %s: %s", what, b->keys[i], sched_store_errmsg(a->s));
        }
        free(b->keys[i]);
        free(b->vals[i]);
    }
    free(b->w);
    free(b->keys);
    free(b->vals);
    memset(b, 0, sizeof(*b));
    return rc;
}

/* Creates or refreshes each Node object; marks it Ready. Returns 0 or a store error. */
static int register_nodes(struct agent *a)
{
    const char *name;
    json_t *v;
    struct wbatch b = {0};
    size_t fresh_nodes = 0;
    char now[32];
    sched_now_rfc3339(now, sizeof(now));
    json_object_foreach(a->nodes, name, v) {
        json_t *cur = sched_informer_get(a->inf, SCHED_NODE, NULL, name);
        json_t *doc;
        if (cur) {
            doc = json_deep_copy(cur);
            json_t *fresh = node_doc(a, name);
            char err[256];
            sched_obj_validate(fresh, err, sizeof(err));
            sched_obj_set(doc, "status.capacity", json_incref(sched_obj_get(fresh, "status.capacity")));
            sched_obj_set(doc, "status.addresses", json_incref(sched_obj_get(fresh, "status.addresses")));
            json_decref(fresh);
        } else {
            doc = node_doc(a, name);
            char uid[33];
            sched_new_uid(uid);
            sched_obj_set(doc, "metadata.uid", json_string(uid));
            sched_obj_set(doc, "metadata.creationTimestamp", json_string(now));
        }
        char err[256];
        if (sched_obj_validate(doc, err, sizeof(err))) {
            sched_log("node %s: %s", name, err);
            json_decref(doc);
            wb_send(a, &b, "register node");
            return SCHED_EINVAL;
        }
        sched_condition_set(doc, "Ready", "True", "AgentReady", "plinth-agent is posting ready status");
        if (cur && json_equal(doc, cur)) {
            json_decref(doc);
            continue;
        }
        char key[SCHED_KEY_MAX];
        sched_key(SCHED_NODE, NULL, name, key, sizeof(key));
        wb_add(&b, key, sched_obj_encode(doc), cur ? sched_obj_rev(cur) : 0, 0);
        fresh_nodes += !cur;
        json_decref(doc);
    }
    int rc = wb_send(a, &b, "register node");
    if (fresh_nodes) sched_log("registered %zu node(s)", fresh_nodes);
    return rc;
}

static int put_leases(struct agent *a)
{
    const char *name;
    json_t *v;
    char now[32], key[SCHED_KEY_MAX];
    struct wbatch b = {0};
    sched_now_rfc3339(now, sizeof(now));
    json_object_foreach(a->nodes, name, v) {
        snprintf(key, sizeof(key), "/registry/leases/%s", name);
        json_t *doc = json_pack("{ss ss si}", "holderIdentity", name, "renewTime", now,
                                "leaseDurationSeconds", a->c->lease_ttl);
        wb_add(&b, key, json_dumps(doc, JSON_COMPACT), -1, a->lease);
        json_decref(doc);
    }
    return wb_send(a, &b, "node lease");
}

/* Keeps the node lease alive; re-registers after it was lost. */
static void heartbeat(struct agent *a)
{
    int64_t now = sched_now_ms();
    if (a->lease && now < a->ka_due) return;
    if (a->lease) {
        int rc = sched_store_lease_keepalive(a->s, a->lease, NULL);
        if (rc == 0) {
            a->ka_due = now + a->c->lease_ttl * 1000 / 3;
            return;
        }
        if (rc != SCHED_ENOTFOUND) {
            a->ka_due = now + 300;
            return;
        }
        sched_log("node lease expired: registering again");
        a->lease = 0;
        a->registered = false;
    }
    if (sched_store_lease_grant(a->s, a->c->lease_ttl, &a->lease) || put_leases(a)) {
        sched_log("node lease: %s", sched_store_errmsg(a->s));
        a->lease = 0;
        a->ka_due = now + 500;
        return;
    }
    a->ka_due = now + a->c->lease_ttl * 1000 / 3;
}

/* ---- pods ---- */

static void start_container(struct agent *a, struct apod *p, int i, const json_t *pod)
{
    json_t *ct = json_array_get(sched_obj_get(pod, "spec.containers"), (size_t)i);
    struct cont *c = &p->c[i];
    c->restart_at = 0;
    c->started_ms = sched_now_ms();
    p->dirty = true;
    if (a->hollow) {
        c->pid = 0;
        return;
    }
    c->pid = agent_proc_start(ct, sched_obj_namespace(pod), sched_obj_name(pod), p->node, a->log_dir);
    if (c->pid < 0) {
        c->pid = 0;
        c->last_exit = 126;
        c->restart_at = sched_now_ms() + RESTART_BACKOFF_MIN_MS;
    }
}

static struct apod *adopt(struct agent *a, const char *key, const json_t *pod)
{
    struct apod *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    snprintf(p->key, sizeof(p->key), "%s", key);
    snprintf(p->uid, sizeof(p->uid), "%s", sched_obj_str(pod, "metadata.uid"));
    snprintf(p->node, sizeof(p->node), "%s", sched_obj_str(pod, "spec.nodeName"));
    json_t *cts = sched_obj_get(pod, "spec.containers");
    p->ncont = (int)json_array_size(cts);
    if (p->ncont > MAX_CONTAINERS) p->ncont = MAX_CONTAINERS;
    for (int i = 0; i < p->ncont; i++) {
        snprintf(p->c[i].name, sizeof(p->c[i].name), "%s",
                 sched_obj_str(json_array_get(cts, (size_t)i), "name"));
        p->c[i].last_exit = -1;
        start_container(a, p, i, pod);
    }
    p->next = a->pods;
    a->pods = p;
    if (!a->hollow || a->c->verbose) sched_log("pod %s: started on %s", key, p->node);
    return p;
}

static void on_exit_code(struct agent *a, pid_t pid, int code)
{
    for (struct apod *p = a->pods; p; p = p->next)
        for (int i = 0; i < p->ncont; i++)
            if (p->c[i].pid == pid) {
                p->c[i].pid = 0;
                p->c[i].last_exit = code;
                p->c[i].restart_at = -1; /* decided in the next pass, by restartPolicy */
                p->dirty = true;
                return;
            }
}

static void apply_restart_policy(struct apod *p, const json_t *pod, int64_t now)
{
    const char *policy = sched_obj_str(pod, "spec.restartPolicy");
    for (int i = 0; i < p->ncont; i++) {
        struct cont *c = &p->c[i];
        if (c->restart_at != -1) continue;
        bool again = !strcmp(policy, "Always") || (!strcmp(policy, "OnFailure") && c->last_exit != 0);
        if (!again) {
            c->done = true;
            c->restart_at = 0;
            continue;
        }
        int64_t backoff = RESTART_BACKOFF_MIN_MS << (c->restarts < 5 ? c->restarts : 5);
        if (backoff > RESTART_BACKOFF_MAX_MS) backoff = RESTART_BACKOFF_MAX_MS;
        /* a container that ran a while restarts at once */
        if (now - c->started_ms > 10000) backoff = 0;
        c->restart_at = now + backoff;
        c->restarts++;
    }
}

/* True when a container waits for a restart decision or its restart time has come. */
static bool restart_due(const struct apod *p, int64_t now)
{
    for (int i = 0; i < p->ncont; i++) {
        const struct cont *c = &p->c[i];
        if (c->restart_at == -1 || (!c->done && c->pid == 0 && c->restart_at > 0 && now >= c->restart_at))
            return true;
    }
    return false;
}

/* The status this agent reports for a pod. */
static void fill_status(struct agent *a, struct apod *p, json_t *upd)
{
    json_t *cs = json_array();
    bool all_running = true, any_alive = false, all_ok = true;
    for (int i = 0; i < p->ncont; i++) {
        struct cont *c = &p->c[i];
        bool running = a->hollow ? !c->done : c->pid > 0;
        json_t *state;
        if (running) state = json_pack("{s{si}}", "running", "pid", (int)c->pid);
        else if (c->done) state = json_pack("{s{si}}", "terminated", "exitCode", c->last_exit);
        else state = json_pack("{s{sssi}}", "waiting", "reason", "CrashLoopBackOff", "lastExitCode", c->last_exit);
        json_array_append_new(cs, json_pack("{sssbsiso}", "name", c->name, "ready", running,
                                            "restartCount", c->restarts, "state", state));
        if (c->last_exit >= 0) json_object_set_new(json_array_get(cs, (size_t)i), "lastExitCode", json_integer(c->last_exit));
        all_running &= running;
        any_alive |= !c->done;
        all_ok &= !c->done || c->last_exit == 0;
    }
    const char *phase = any_alive ? "Running" : all_ok ? "Succeeded" : "Failed";
    sched_obj_set(upd, "status.phase", json_string(phase));
    sched_obj_set(upd, "status.hostIP", json_string("127.0.0.1"));
    sched_obj_set(upd, "status.podIP", json_string("127.0.0.1"));
    sched_obj_set(upd, "status.containerStatuses", cs);
    sched_condition_set(upd, "Ready", all_running ? "True" : "False",
                        all_running ? NULL : "ContainersNotReady", NULL);
}

static void sync_pods(struct agent *a)
{
    int64_t now = sched_now_ms();
    int code;
    pid_t pid;
    while ((pid = agent_proc_reap(&code)) > 0) {
        on_exit_code(a, pid, code);
        for (struct dying **d = &a->dying; *d; d = &(*d)->next)
            if ((*d)->pid == pid) {
                struct dying *gone = *d;
                *d = gone->next;
                free(gone);
                break;
            }
    }
    for (struct dying *d = a->dying; d; d = d->next)
        if (d->kill_at && now >= d->kill_at) {
            agent_proc_signal(d->pid, SIGKILL);
            d->kill_at = 0;
        }
    for (struct apod *p = a->pods; p; p = p->next) p->seen = false;
    const char *key;
    json_t *pod;
    static struct sched_write w[MAX_STATUS_WRITES];
    static char *text[MAX_STATUS_WRITES];
    static const char *keys[MAX_STATUS_WRITES];
    static struct apod *wp[MAX_STATUS_WRITES];
    size_t nw = 0;
    json_object_foreach(sched_informer_objects(a->inf, SCHED_POD), key, pod) {
        const char *nn = sched_obj_str(pod, "spec.nodeName");
        if (!*nn || !json_object_get(a->nodes, nn)) continue;
        struct apod *p = find_pod(a, key);
        if (p && strcmp(p->uid, sched_obj_str(pod, "metadata.uid")) != 0) {
            forget_pod(a, p);
            p = NULL;
        }
        if (!p) {
            const char *ph = sched_obj_str(pod, "status.phase");
            if (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed")) continue;
            p = adopt(a, key, pod);
            if (!p) continue;
        }
        p->seen = true;
        /* nothing new on either side: skip the comparison (hollow agents hold thousands) */
        if (!p->dirty && p->seen_rev == sched_obj_rev(pod) && !restart_due(p, now)) continue;
        apply_restart_policy(p, pod, now);
        for (int i = 0; i < p->ncont; i++)
            if (!p->c[i].done && p->c[i].pid == 0 && p->c[i].restart_at > 0 && now >= p->c[i].restart_at)
                start_container(a, p, i, pod);
        /* report what changed; a conflict is retried on the next pass with fresh data */
        json_t *upd = json_deep_copy(pod);
        fill_status(a, p, upd);
        if (!json_equal(json_object_get(upd, "status"), json_object_get(pod, "status")) &&
            nw < MAX_STATUS_WRITES) {
            keys[nw] = key;
            wp[nw] = p;
            text[nw] = sched_obj_encode(upd);
            w[nw] = (struct sched_write){.key = keys[nw], .value = text[nw],
                                         .len = text[nw] ? strlen(text[nw]) : 0,
                                         .expect_mod = sched_obj_rev(pod)};
            nw++;
            p->dirty = false;
        } else if (json_equal(json_object_get(upd, "status"), json_object_get(pod, "status"))) {
            p->dirty = false;
        }
        p->seen_rev = sched_obj_rev(pod);
        json_decref(upd);
    }
    /* all status updates of this pass in flight together */
    sched_store_write_batch(a->s, w, nw, NULL);
    for (size_t i = 0; i < nw; i++) {
        if (w[i].rc == 0) a->status_writes++;
        else if (w[i].rc != SCHED_ECONFLICT && w[i].rc != SCHED_ENOTFOUND)
            sched_log("status %s: %s", keys[i], sched_store_errmsg(a->s));
        /* a write that did not land is tried again on the next pass */
        if (w[i].rc) wp[i]->dirty = true;
        free(text[i]);
    }
    /* pods deleted from the store, or bound elsewhere: stop them */
    for (struct apod *p = a->pods, *next; p; p = next) {
        next = p->next;
        if (!p->seen) {
            if (!a->hollow || a->c->verbose) sched_log("pod %s: stopped (deleted)", p->key);
            forget_pod(a, p);
        }
    }
}

static json_t *parse_kv_list(const char *s, bool taints)
{
    json_t *out = taints ? json_array() : json_object();
    char *copy = strdup(s ? s : ""), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *colon = taints ? strrchr(tok, ':') : NULL;
        if (colon) *colon = '\0';
        if (eq) *eq = '\0';
        if (taints)
            json_array_append_new(out, json_pack("{ssssss}", "key", tok, "value", eq ? eq + 1 : "",
                                                 "effect", colon ? colon + 1 : "NoSchedule"));
        else
            json_object_set_new(out, tok, json_string(eq ? eq + 1 : ""));
    }
    free(copy);
    return out;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: plinth-agent [flags]\n"
               "Registers a node and runs the pods bound to it as local processes.\n\nflags:\n%s"
               "                       (for the agent: the TTL of its node lease; a node whose\n"
               "                       lease is not renewed within it becomes NotReady)\n"
               "  --node NAME          node name (default: --name)\n"
               "  --hollow N           simulate N nodes NAME-0..NAME-(N-1): pods are marked\n"
               "                       Running without processes (scale tests)\n"
               "  --cpu Q              cpu capacity (default 4)\n"
               "  --memory Q           memory capacity (default 8Gi)\n"
               "  --max-pods N         pod capacity (default 110)\n"
               "  --labels k=v,...     node labels\n"
               "  --taints k=v:Effect,...  node taints\n"
               "  --log-dir DIR        container output goes to DIR/<ns>_<pod>_<container>.log\n"
               "  -h, --help           this text\n", sched_common_help);
}

int sched_agent_main(int argc, char **argv)
{
    struct sched_common c;
    struct agent a = {.c = &c, .cpu = "4", .memory = "8Gi", .pods_cap = 110};
    const char *node = NULL, *labels = NULL, *taints = NULL;
    sched_log_set_name("plinth-agent");
    sched_common_init(&c, "agent");
    char host[64] = "node";
    gethostname(host, sizeof(host) - 1);
    c.name = host;
    for (int i = 1; i < argc; i++) {
        int r = sched_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        }
        static const char *const vflags[] = {"--node", "--hollow", "--cpu", "--memory", "--max-pods",
                                             "--labels", "--taints", "--log-dir"};
        int which = -1;
        const char *val = NULL;
        for (size_t f = 0; f < sizeof(vflags) / sizeof(vflags[0]); f++) {
            size_t n = strlen(vflags[f]);
            if (!strncmp(arg, vflags[f], n) && (arg[n] == '=' || arg[n] == '\0')) {
                which = (int)f;
                val = arg[n] == '=' ? arg + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (which < 0 || !val) {
            fprintf(stderr, "plinth-agent: %s flag %s\n", which < 0 ? "unknown" : "missing value for", arg);
            usage(stderr);
            return 2;
        }
        switch (which) {
        case 0: node = val; break;
        case 1: a.hollow = atoi(val); break;
        case 2: a.cpu = val; break;
        case 3: a.memory = val; break;
        case 4: a.pods_cap = atoi(val); break;
        case 5: labels = val; break;
        case 6: taints = val; break;
        case 7: a.log_dir = val; break;
        }
    }
    if (!node) node = c.name;
    sched_log_set_name(node);
    a.labels = parse_kv_list(labels, false);
    a.taints = parse_kv_list(taints, true);
    a.nodes = json_object();
    if (a.hollow > 0) {
        for (int i = 0; i < a.hollow; i++) {
            char nm[SCHED_NAME_MAX + 1];
            snprintf(nm, sizeof(nm), "%.200s-%d", node, i);
            json_object_set_new(a.nodes, nm, json_true());
        }
    } else {
        json_object_set_new(a.nodes, node, json_true());
    }
    if (sched_common_store(&c, &a.s)) return 1;
    sched_informer_new(a.s, "/registry/", NULL, NULL, &a.inf);
    sched_signals_install();
    sched_log("starting: %zu node(s), endpoints %s, node lease ttl %d s", json_object_size(a.nodes),
              c.endpoints, c.lease_ttl);
    int64_t next_register = 0;
    while (!sched_stopping()) {
        sched_informer_poll(a.inf, 50);
        if (!sched_informer_synced(a.inf)) continue;
        bool had_lease = a.lease != 0;
        heartbeat(&a);
        if (!a.lease) continue;
        if (!had_lease) a.registered = false;
        /* Ready again after a lapse; also repairs a node object someone else changed */
        if (!a.registered || sched_now_ms() >= next_register) {
            if (register_nodes(&a) == 0) a.registered = true;
            next_register = sched_now_ms() + 2000;
        }
        sync_pods(&a);
    }
    sched_log("stopping: killing %s pods, revoking the node lease", a.hollow ? "hollow" : "local");
    while (a.pods) forget_pod(&a, a.pods);
    int64_t until = sched_now_ms() + KILL_GRACE_MS;
    while (a.dying && sched_now_ms() < until) {
        int code;
        pid_t pid = agent_proc_reap(&code);
        for (struct dying **d = &a.dying; pid > 0 && *d; d = &(*d)->next)
            if ((*d)->pid == pid) {
                struct dying *gone = *d;
                *d = gone->next;
                free(gone);
                break;
            }
        if (pid <= 0) usleep(20000);
    }
    for (struct dying *d = a.dying, *n; d; d = n) {
        n = d->next;
        agent_proc_signal(d->pid, SIGKILL);
        free(d);
    }
    if (a.lease) sched_store_lease_revoke(a.s, a.lease);
    sched_informer_free(a.inf);
    sched_store_close(a.s);
    json_decref(a.nodes);
    json_decref(a.labels);
    json_decref(a.taints);
    return 0;
}

/* scheduler — plinth-scheduler: while leader, places each unscheduled pod on the best
 * feasible node and binds it by a fenced compare-and-swap on the pod. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/algo.h"
#include "sched/daemon.h"
#include "sched/informer.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000
#define PASS_BUDGET_MS 400
#define BATCH 256 /* binds in flight at once */

struct pending {
    const char *key;
    json_t *pod; /* borrowed from the cache */
    const char *created;
};

struct scheduler {
    struct sched_common *c;
    struct sched_store *s;
    struct sched_informer *inf;
    struct sched_election *el;
    json_t *backoff;   /* pod key -> [next_try_ms, delay_ms, uid] */
    uint64_t tiebreak;
    long binds, unschedulable, conflicts;
    bool uncertain; /* a write's outcome is unknown: relist before the next pass */
};

static int cmp_pending(const void *a, const void *b)
{
    const struct pending *x = a, *y = b;
    int c = strcmp(x->created, y->created);
    return c ? c : strcmp(x->key, y->key);
}

static bool pod_terminated(const json_t *pod)
{
    const char *ph = sched_obj_str(pod, "status.phase");
    return !strcmp(ph, "Succeeded") || !strcmp(ph, "Failed");
}

static bool node_ready(const json_t *node)
{
    json_t *c = sched_condition_get(node, "Ready");
    const char *st = json_string_value(json_object_get(c, "status"));
    return st && !strcmp(st, "True");
}

/* Builds the node table with the requests of every pod already bound. */
static struct sched_node_info *node_table(struct scheduler *sc, json_t *index, size_t *count)
{
    json_t *nodes = sched_informer_objects(sc->inf, SCHED_NODE);
    size_t n = json_object_size(nodes), i = 0;
    struct sched_node_info *t = calloc(n ? n : 1, sizeof(*t));
    const char *key;
    json_t *node;
    if (!t) return NULL;
    json_object_foreach(nodes, key, node) {
        struct sched_node_info *ni = &t[i];
        ni->name = sched_obj_name(node);
        ni->ready = node_ready(node);
        ni->unschedulable = json_is_true(sched_obj_get(node, "spec.unschedulable"));
        ni->cpu_cap = sched_obj_cpu(node, "status.capacity.cpu");
        ni->mem_cap = sched_obj_int(node, "status.capacity.memory", 0);
        ni->pods_cap = sched_obj_int(node, "status.capacity.pods", 110);
        ni->labels = sched_obj_get(node, "metadata.labels");
        ni->taints = sched_obj_get(node, "spec.taints");
        json_object_set_new(index, ni->name, json_integer((json_int_t)i));
        i++;
    }
    json_t *pods = sched_informer_objects(sc->inf, SCHED_POD);
    json_t *pod;
    json_object_foreach(pods, key, pod) {
        const char *nn = sched_obj_str(pod, "spec.nodeName");
        if (!*nn || pod_terminated(pod)) continue;
        json_t *ix = json_object_get(index, nn);
        if (!ix) continue;
        struct sched_pod_req r;
        sched_pod_req_from(pod, &r);
        sched_node_account(&t[json_integer_value(ix)], &r, +1);
    }
    *count = n;
    return t;
}

/* Returns true when the pod may be tried now (not inside its backoff window). */
static bool backoff_allows(struct scheduler *sc, const char *key, const json_t *pod, int64_t now)
{
    json_t *b = json_object_get(sc->backoff, key);
    if (!b) return true;
    const char *uid = json_string_value(json_array_get(b, 2));
    if (!uid || strcmp(uid, sched_obj_str(pod, "metadata.uid")) != 0) {
        json_object_del(sc->backoff, key);
        return true;
    }
    return json_integer_value(json_array_get(b, 0)) <= now;
}

static void backoff_bump(struct scheduler *sc, const char *key, const json_t *pod, int64_t now)
{
    json_t *b = json_object_get(sc->backoff, key);
    int64_t delay = b ? json_integer_value(json_array_get(b, 1)) * 2 : BACKOFF_MIN_MS;
    if (delay > BACKOFF_MAX_MS) delay = BACKOFF_MAX_MS;
    json_object_set_new(sc->backoff, key,
                        json_pack("[IIs]", (json_int_t)(now + delay), (json_int_t)delay,
                                  sched_obj_str(pod, "metadata.uid")));
}

/* One decision of a pass, written in a pipelined batch. */
struct decision {
    struct pending *p;
    json_t *upd;      /* the pod as it should be written, or NULL: nothing to write */
    int node;         /* index of the chosen node, or -1 (unschedulable) */
    struct sched_pod_req req;
    char *text;       /* encoded upd */
};

/* Decides placements for pend[0..n) against the node table (accounting as it goes),
 * writes them all at once, and undoes the accounting of the writes that failed. Returns
 * false when the pass must end (leadership lost or the store failing). */
static bool bind_batch(struct scheduler *sc, struct pending *pend, size_t n,
                       struct sched_node_info *nodes, size_t nn, int64_t now)
{
    const struct sched_fence *f = sched_election_fence(sc->el);
    if (!f) return false;
    struct decision *d = calloc(n, sizeof(*d));
    struct sched_write *w = calloc(n, sizeof(*w));
    size_t nw = 0;
    bool go_on = true;
    if (!d || !w) {
        free(d);
        free(w);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char reason[512];
        d[i].p = &pend[i];
        sched_pod_req_from(pend[i].pod, &d[i].req);
        d[i].node = sched_pick(nodes, nn, &d[i].req, sc->tiebreak++, reason, sizeof(reason));
        json_t *upd = json_deep_copy(pend[i].pod);
        if (d[i].node >= 0) {
            sched_obj_set(upd, "spec.nodeName", json_string(nodes[d[i].node].name));
            /* who bound it: lets an audit tell a deposed scheduler's write from its successor's */
            json_t *ann = sched_obj_get(upd, "metadata.annotations");
            if (!json_is_object(ann)) {
                ann = json_object();
                sched_obj_set(upd, "metadata.annotations", ann);
            }
            json_object_set_new(ann, "scheduler.plinth.io/bound-by", json_string(sc->c->name));
            sched_condition_set(upd, "PodScheduled", "True", NULL, NULL);
            sched_node_account(&nodes[d[i].node], &d[i].req, +1);
        } else {
            backoff_bump(sc, pend[i].key, pend[i].pod, now);
            if (!sched_condition_set(upd, "PodScheduled", "False", "Unschedulable", reason)) {
                json_decref(upd);
                upd = NULL;
            } else {
                sched_log("cannot place %s: %s", pend[i].key, reason);
            }
        }
        d[i].upd = upd;
        if (!upd) continue;
        d[i].text = sched_obj_encode(upd);
        w[nw] = (struct sched_write){.key = pend[i].key, .value = d[i].text,
                                     .len = d[i].text ? strlen(d[i].text) : 0,
                                     .expect_mod = sched_obj_rev(pend[i].pod)};
        nw++;
    }
    sched_store_write_batch(sc->s, w, nw, f);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (!d[i].upd) continue;
        int rc = w[j++].rc;
        if (rc == 0) {
            if (d[i].node >= 0) {
                sc->binds++;
                json_object_del(sc->backoff, d[i].p->key);
                if (sc->c->verbose) sched_log("bound %s to %s", d[i].p->key, nodes[d[i].node].name);
            } else {
                sc->unschedulable++;
            }
        } else {
            if (d[i].node >= 0) sched_node_account(&nodes[d[i].node], &d[i].req, -1);
            if (rc == SCHED_ECONFLICT || rc == SCHED_ENOTFOUND) {
                /* the pod changed or went away since the cache saw it: the watch brings it */
                sc->conflicts++;
            } else {
                /* a lost answer may hide a bind that happened: its pod must be counted on
                 * its node before anything else goes there */
                if (rc == SCHED_ESTORE) sc->uncertain = true;
                if (rc == SCHED_ENOTLEADER) sched_election_lost(sc->el);
                if (go_on) sched_log("binds stopped: %s", sched_store_errmsg(sc->s));
                go_on = false;
            }
        }
        json_decref(d[i].upd);
        free(d[i].text);
    }
    free(d);
    free(w);
    return go_on;
}

static void schedule_pass(struct scheduler *sc)
{
    int64_t start = sched_now_ms();
    json_t *pods = sched_informer_objects(sc->inf, SCHED_POD);
    size_t cap = json_object_size(pods), n = 0;
    struct pending *pend = calloc(cap ? cap : 1, sizeof(*pend));
    const char *key;
    json_t *pod;
    if (!pend) return;
    json_object_foreach(pods, key, pod) {
        if (*sched_obj_str(pod, "spec.nodeName") || pod_terminated(pod)) continue;
        if (!backoff_allows(sc, key, pod, start)) continue;
        pend[n].key = key;
        pend[n].pod = pod;
        pend[n].created = sched_obj_str(pod, "metadata.creationTimestamp");
        n++;
    }
    if (n == 0) {
        free(pend);
        return;
    }
    qsort(pend, n, sizeof(*pend), cmp_pending);
    if (sc->c->verbose) sched_log("pass: %zu pod(s) to place", n);
    json_t *index = json_object();
    size_t nn = 0;
    struct sched_node_info *nodes = node_table(sc, index, &nn);
    for (size_t i = 0; nodes && i < n; i += BATCH) {
        if (!bind_batch(sc, pend + i, n - i < BATCH ? n - i : BATCH, nodes, nn, start)) break;
        /* return to the loop now and then: the lease must be renewed */
        if (sched_now_ms() - start > PASS_BUDGET_MS) break;
    }
    free(nodes);
    json_decref(index);
    free(pend);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: plinth-scheduler [flags]\n"
               "Places pods on nodes. Several may run; one leads (election prefix\n"
               "/plinth/election/scheduler/), the others stand by.\n\nflags:\n%s"
               "  --no-local-expiry    testing aid: keep acting after a pause until the store\n"
               "                       refuses a write (shows that writes are fenced)\n"
               "  -h, --help           this text\n", sched_common_help);
}

int sched_scheduler_main(int argc, char **argv)
{
    struct sched_common c;
    bool no_local_expiry = false;
    sched_log_set_name("plinth-scheduler");
    sched_common_init(&c, "scheduler");
    for (int i = 1; i < argc; i++) {
        int r = sched_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--no-local-expiry")) {
            no_local_expiry = true;
            continue;
        }
        fprintf(stderr, "plinth-scheduler: unknown flag %s\n", argv[i]);
        usage(stderr);
        return 2;
    }
    struct scheduler sc = {.c = &c};
    if (sched_common_store(&c, &sc.s)) return 1;
    sched_informer_new(sc.s, "/registry/", NULL, NULL, &sc.inf);
    struct sched_election_opts eo = {.prefix = "/plinth/election/scheduler/", .id = c.name,
                                     .ttl = c.lease_ttl, .no_local_expiry = no_local_expiry};
    sched_election_new(sc.s, &eo, &sc.el);
    sc.backoff = json_object();
    sched_signals_install();
    sched_log("%s starting (endpoints %s, lease ttl %d s)", c.name, c.endpoints, c.lease_ttl);
    bool was_leader = false;
    int lists = 0, compactions = 0;
    int64_t last_stats = sched_now_ms();
    bool leader = false;
    while (!sched_stopping()) {
        /* read, act, then renew: a process resumed after a pause acts on what it believed
         * before the pause, and only the fence (its own clock check, and the store's
         * compare on its election key) keeps a deposed leader from writing */
        int rc = sched_informer_poll(sc.inf, leader ? 20 : 100);
        if (sched_informer_lists(sc.inf) != lists) {
            lists = sched_informer_lists(sc.inf);
            sched_log("cache listed at revision %lld%s", (long long)sched_informer_rev(sc.inf),
                      sched_informer_compactions(sc.inf) != compactions
                          ? " (relist: the watch fell behind a compaction)"
                          : lists > 1 ? " (relist)" : "");
            compactions = sched_informer_compactions(sc.inf);
        }
        if (rc < 0 && c.verbose) sched_log("cache: %s", sched_store_errmsg(sc.s));
        if (leader && sched_informer_synced(sc.inf) &&
            sched_informer_rev(sc.inf) >= sched_store_last_write_rev(sc.s))
            schedule_pass(&sc);
        if (sc.uncertain) {
            sched_informer_resync(sc.inf);
            sc.uncertain = false;
        }
        leader = sched_election_step(sc.el);
        if (leader != was_leader) {
            sched_log("%s", leader ? "acting as leader" : "standing by");
            was_leader = leader;
            /* the previous leader's last binds may not have reached our cache yet; a list
             * read now shows every write it could still make (its key is gone) */
            if (leader) sched_informer_resync(sc.inf);
        }
        if (c.verbose && sched_now_ms() - last_stats > 5000) {
            sched_log("binds %ld unschedulable %ld conflicts %ld", sc.binds, sc.unschedulable,
                      sc.conflicts);
            last_stats = sched_now_ms();
        }
    }
    sched_log("stopping: resigning (binds %ld)", sc.binds);
    sched_election_resign(sc.el);
    sched_election_free(sc.el);
    sched_informer_free(sc.inf);
    json_decref(sc.backoff);
    sched_store_close(sc.s);
    return 0;
}

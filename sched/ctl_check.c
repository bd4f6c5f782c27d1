/* ctl_check — `plinthctl kube check [-w]`: audits placement invariants. A pod is never
 * bound twice (its nodeName never changes once set) and no node holds more requests than
 * its capacity. With -w it watches every change until SIGINT/SIGTERM or --timeout and
 * reports each violation as it happens; exit status 1 when any was seen. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/algo.h"
#include "sched/ctl_int.h"

struct checker {
    json_t *pods;   /* key -> document */
    json_t *nodes;  /* name -> document */
    json_t *reported; /* "node:resource" already reported, so a lasting overcommit is one line */
    long violations, binds, events;
};

static bool active(const json_t *pod)
{
    const char *ph = sched_obj_str(pod, "status.phase");
    return strcmp(ph, "Succeeded") != 0 && strcmp(ph, "Failed") != 0;
}

static void check_node(struct checker *ck, const char *node)
{
    json_t *n = json_object_get(ck->nodes, node);
    if (!n) return;
    int64_t cpu = 0, mem = 0, pods = 0;
    const char *key;
    json_t *p;
    json_object_foreach(ck->pods, key, p) {
        if (strcmp(sched_obj_str(p, "spec.nodeName"), node) != 0 || !active(p)) continue;
        struct sched_pod_req r;
        sched_pod_req_from(p, &r);
        cpu += r.cpu;
        mem += r.mem;
        pods++;
    }
    struct { const char *what; int64_t used, cap; } res[3] = {
        {"cpu", cpu, sched_obj_cpu(n, "status.capacity.cpu")},
        {"memory", mem, sched_obj_int(n, "status.capacity.memory", 0)},
        {"pods", pods, sched_obj_int(n, "status.capacity.pods", 110)},
    };
    for (int i = 0; i < 3; i++) {
        char tag[SCHED_NAME_MAX + 16];
        snprintf(tag, sizeof(tag), "%s:%s", node, res[i].what);
        if (res[i].used > res[i].cap) {
            if (!json_object_get(ck->reported, tag)) {
                printf("VIOLATION overcommit: node %s %s requested %" PRId64 " > capacity %" PRId64 "\n",
                       node, res[i].what, res[i].used, res[i].cap);
                ck->violations++;
                json_object_set_new(ck->reported, tag, json_true());
            }
        } else {
            json_object_del(ck->reported, tag);
        }
    }
}

static void on_pod(struct checker *ck, const char *key, json_t *cur)
{
    json_t *old = json_object_get(ck->pods, key);
    const char *was = old ? sched_obj_str(old, "spec.nodeName") : "";
    const char *now = cur ? sched_obj_str(cur, "spec.nodeName") : "";
    if (old && cur && *was && strcmp(was, now) != 0 &&
        !strcmp(sched_obj_str(old, "metadata.uid"), sched_obj_str(cur, "metadata.uid"))) {
        printf("VIOLATION double bind: pod %s moved from node %s to node %s\n", key, was, *now ? now : "(none)");
        ck->violations++;
    }
    if (cur && *now && (!old || !*was)) ck->binds++;
    char was_copy[SCHED_NAME_MAX + 1];
    snprintf(was_copy, sizeof(was_copy), "%s", was);
    if (cur) json_object_set(ck->pods, key, cur);
    else json_object_del(ck->pods, key);
    if (*now) check_node(ck, now);
    if (*was_copy && strcmp(was_copy, now) != 0) check_node(ck, was_copy);
}

static void apply(struct checker *ck, const char *key, size_t keylen, const char *value, size_t vlen,
                  int64_t rev)
{
    enum sched_kind k;
    char ns[SCHED_NAME_MAX + 1], name[SCHED_NAME_MAX + 1];
    if (sched_key_parse(key, keylen, &k, ns, name)) return;
    json_t *cur = value ? sched_obj_from_kv(value, vlen, rev) : NULL;
    if (k == SCHED_POD) {
        on_pod(ck, key, cur);
    } else if (k == SCHED_NODE) {
        if (cur) json_object_set(ck->nodes, name, cur);
        else json_object_del(ck->nodes, name);
        check_node(ck, name);
    }
    json_decref(cur);
}

static volatile sig_atomic_t stop;
static void on_sig(int sig)
{
    (void)sig;
    stop = 1;
}

int ctl_check(struct ctl *c)
{
    struct checker ck = {json_object(), json_object(), json_object(), 0, 0, 0};
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    int64_t rev = 0;
    if (sched_store_list(c->s, "/registry/", 0, false, &kvs, &n, &rev)) {
        fprintf(stderr, "kube: check: %s\n", sched_store_errmsg(c->s));
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        apply(&ck, kvs[i].key, kvs[i].key_len, kvs[i].value, kvs[i].value_len, kvs[i].mod_rev);
    sched_kvs_free(kvs, n);
    int exit_code = 0;
    if (c->watch) {
        signal(SIGINT, on_sig);
        signal(SIGTERM, on_sig);
        printf("check: watching from revision %" PRId64 "\n", rev + 1);
        fflush(stdout);
        struct sched_watch *w = NULL;
        int64_t until = c->wait_s > 0 ? sched_now_ms() + (int64_t)(c->wait_s * 1000) : 0;
        int64_t last = rev;
        while (!stop && (!until || sched_now_ms() < until)) {
            if (!w && sched_watch_open(c->s, "/registry/", last + 1, &w)) {
                fprintf(stderr, "kube: check: %s\n", sched_store_errmsg(c->s));
                w = NULL;
                continue;
            }
            struct sched_event *evs = NULL;
            size_t ne = 0;
            int rc = sched_watch_next(w, 200, &evs, &ne, NULL);
            if (rc == SCHED_ECOMPACTED) {
                printf("check: watch compacted: events were missed\n");
                exit_code = 1;
                break;
            }
            if (rc) { /* stream lost (a member went away): resume where we were */
                sched_watch_close(w);
                w = NULL;
                continue;
            }
            for (size_t i = 0; i < ne; i++) {
                apply(&ck, evs[i].kv.key, evs[i].kv.key_len,
                      evs[i].type == SCHED_EV_PUT ? evs[i].kv.value : NULL, evs[i].kv.value_len,
                      evs[i].kv.mod_rev);
                if (evs[i].kv.mod_rev > last) last = evs[i].kv.mod_rev;
                ck.events++;
            }
            sched_events_free(evs, ne);
            fflush(stdout);
        }
        sched_watch_close(w);
    }
    printf("check: %ld violation(s); %ld bind(s), %ld event(s) seen; %zu pods, %zu nodes\n",
           ck.violations, ck.binds, ck.events, json_object_size(ck.pods), json_object_size(ck.nodes));
    json_decref(ck.pods);
    json_decref(ck.nodes);
    json_decref(ck.reported);
    return ck.violations || exit_code ? 1 : 0;
}

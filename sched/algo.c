/* algo — pod placement (filters, scores, pick) and rolling-update planning; pure functions. */
#include "sched/algo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/objects.h"

#define DEFAULT_CPU_FOR_SCORE 100                 /* millicores */
#define DEFAULT_MEM_FOR_SCORE (200LL * 1048576LL) /* bytes */

static const char *const fit_text[SCHED_FIT_COUNT] = {
    [SCHED_FIT_OK] = "fits",
    [SCHED_FIT_NOT_READY] = "node(s) were not ready",
    [SCHED_FIT_UNSCHEDULABLE] = "node(s) were unschedulable",
    [SCHED_FIT_SELECTOR] = "node(s) didn't match Pod's node selector",
    [SCHED_FIT_TAINT] = "node(s) had untolerated taint",
    [SCHED_FIT_PODS] = "Too many pods",
    [SCHED_FIT_CPU] = "Insufficient cpu",
    [SCHED_FIT_MEMORY] = "Insufficient memory",
};

const char *sched_fit_reason(enum sched_fit f)
{
    return (unsigned)f < SCHED_FIT_COUNT ? fit_text[f] : "?";
}

void sched_pod_req_from(const json_t *pod, struct sched_pod_req *out)
{
    size_t i;
    json_t *ct;
    memset(out, 0, sizeof(*out));
    json_t *spec = json_object_get(pod, "spec");
    json_array_foreach(json_object_get(spec, "containers"), i, ct) {
        out->cpu += sched_obj_cpu(ct, "resources.requests.cpu");
        out->mem += sched_obj_int(ct, "resources.requests.memory", 0);
    }
    out->node_selector = json_object_get(spec, "nodeSelector");
    out->tolerations = json_object_get(spec, "tolerations");
}

bool sched_tolerates(const json_t *tols, const json_t *taint)
{
    size_t i;
    json_t *t;
    const char *tk = json_string_value(json_object_get(taint, "key"));
    const char *tv = json_string_value(json_object_get(taint, "value"));
    const char *te = json_string_value(json_object_get(taint, "effect"));
    if (!tk) tk = "";
    if (!tv) tv = "";
    if (!te) te = "";
    json_array_foreach(tols, i, t) {
        const char *k = json_string_value(json_object_get(t, "key"));
        const char *op = json_string_value(json_object_get(t, "operator"));
        const char *v = json_string_value(json_object_get(t, "value"));
        const char *e = json_string_value(json_object_get(t, "effect"));
        bool exists = op && !strcmp(op, "Exists");
        if (e && *e && strcmp(e, te) != 0) continue;
        if (k && *k && strcmp(k, tk) != 0) continue;
        if ((!k || !*k) && !exists) continue;
        if (exists || !strcmp(v ? v : "", tv)) return true;
    }
    return false;
}

enum sched_fit sched_filter(const struct sched_node_info *n, const struct sched_pod_req *p)
{
    size_t i;
    json_t *t;
    if (!n->ready) return SCHED_FIT_NOT_READY;
    if (n->unschedulable) return SCHED_FIT_UNSCHEDULABLE;
    if (json_object_size(p->node_selector) > 0) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)p->node_selector, k, v) {
            const char *have = json_string_value(json_object_get(n->labels, k));
            if (!have || !json_string_value(v) || strcmp(have, json_string_value(v)) != 0)
                return SCHED_FIT_SELECTOR;
        }
    }
    json_array_foreach(n->taints, i, t) {
        const char *e = json_string_value(json_object_get(t, "effect"));
        if (e && !strcmp(e, "PreferNoSchedule")) continue;
        if (!sched_tolerates(p->tolerations, t)) return SCHED_FIT_TAINT;
    }
    if (n->pods_used + 1 > n->pods_cap) return SCHED_FIT_PODS;
    if (n->cpu_used + p->cpu > n->cpu_cap) return SCHED_FIT_CPU;
    if (n->mem_used + p->mem > n->mem_cap) return SCHED_FIT_MEMORY;
    return SCHED_FIT_OK;
}

/* Scores are integer arithmetic in 128 bits so results are exact and reproducible. */
int64_t sched_score(const struct sched_node_info *n, const struct sched_pod_req *p)
{
    int64_t cpu = p->cpu ? p->cpu : DEFAULT_CPU_FOR_SCORE;
    int64_t mem = p->mem ? p->mem : DEFAULT_MEM_FOR_SCORE;
    int64_t cpu_after = n->cpu_used + cpu, mem_after = n->mem_used + mem;
    int64_t cpu_frac = 0, mem_frac = 0; /* used fraction in 1/10000 */
    if (n->cpu_cap > 0)
        cpu_frac = (int64_t)((__int128)(cpu_after > n->cpu_cap ? n->cpu_cap : cpu_after) * 10000 / n->cpu_cap);
    else
        cpu_frac = 10000;
    if (n->mem_cap > 0)
        mem_frac = (int64_t)((__int128)(mem_after > n->mem_cap ? n->mem_cap : mem_after) * 10000 / n->mem_cap);
    else
        mem_frac = 10000;
    int64_t least = ((10000 - cpu_frac) + (10000 - mem_frac)) / 2 / 100;  /* 0..100 */
    int64_t gap = cpu_frac > mem_frac ? cpu_frac - mem_frac : mem_frac - cpu_frac;
    int64_t balanced = (10000 - gap) / 100;                                 /* 0..100 */
    return least + balanced;
}

int sched_pick(const struct sched_node_info *nodes, size_t n, const struct sched_pod_req *p,
               uint64_t tiebreak, char *reason, size_t reasonlen)
{
    size_t counts[SCHED_FIT_COUNT] = {0};
    int best = -1;
    int64_t best_score = -1;
    for (size_t j = 0; j < n; j++) {
        size_t i = (size_t)((j + tiebreak) % n);
        enum sched_fit f = sched_filter(&nodes[i], p);
        counts[f]++;
        if (f != SCHED_FIT_OK) continue;
        int64_t s = sched_score(&nodes[i], p);
        if (s > best_score) {
            best_score = s;
            best = (int)i;
        }
    }
    if (best < 0 && reason && reasonlen) {
        int off = snprintf(reason, reasonlen, "0/%zu nodes are available", n);
        const char *sep = ": ";
        for (int f = 1; f < SCHED_FIT_COUNT && off >= 0 && (size_t)off < reasonlen; f++) {
            if (!counts[f]) continue;
            off += snprintf(reason + off, reasonlen - (size_t)off, "%s%zu %s", sep, counts[f],
                            fit_text[f]);
            sep = ", ";
        }
        if (off >= 0 && (size_t)off < reasonlen) snprintf(reason + off, reasonlen - (size_t)off, ".");
    }
    return best;
}

void sched_node_account(struct sched_node_info *n, const struct sched_pod_req *p, int sign)
{
    n->cpu_used += sign * p->cpu;
    n->mem_used += sign * p->mem;
    n->pods_used += sign;
}

int64_t sched_int_or_percent(const json_t *v, int64_t total, bool round_up)
{
    if (json_is_integer(v)) return json_integer_value(v) < 0 ? 0 : json_integer_value(v);
    const char *s = json_string_value(v);
    if (!s) return 0;
    int64_t pct = strtoll(s, NULL, 10);
    if (pct < 0) pct = 0;
    return round_up ? (pct * total + 99) / 100 : pct * total / 100;
}

bool sched_rollout_step(int64_t replicas, int64_t max_surge, int64_t max_unavailable,
                        struct sched_rs_state newrs, const struct sched_rs_state *old,
                        size_t nold, int64_t *new_out, int64_t *old_out)
{
    bool changed = false;
    /* pods not yet deleted (or not yet created) count as much as desired ones */
    int64_t total = newrs.replicas > newrs.pods ? newrs.replicas : newrs.pods;
    int64_t ready = newrs.ready;
    for (size_t i = 0; i < nold; i++) {
        total += old[i].replicas > old[i].pods ? old[i].replicas : old[i].pods;
        ready += old[i].ready < old[i].replicas ? old[i].ready : old[i].replicas;
        old_out[i] = old[i].replicas;
    }
    *new_out = newrs.replicas;

    /* scale up the new ReplicaSet within the surge budget */
    int64_t max_total = replicas + max_surge;
    if (newrs.replicas > replicas) {
        *new_out = replicas;
    } else if (total < max_total && newrs.replicas < replicas) {
        int64_t up = max_total - total;
        if (up > replicas - newrs.replicas) up = replicas - newrs.replicas;
        *new_out = newrs.replicas + up;
    }
    if (*new_out != newrs.replicas) changed = true;

    /* scale down old ReplicaSets while keeping replicas - maxUnavailable ready */
    int64_t min_available = replicas - max_unavailable;
    if (min_available < 0) min_available = 0;
    /* first: old pods that are not ready cost no availability */
    for (size_t i = 0; i < nold; i++) {
        int64_t unready = old_out[i] - old[i].ready;
        if (unready > 0) {
            old_out[i] -= unready;
            changed = true;
        }
    }
    int64_t budget = ready - min_available;
    /* when the new RS is not yet at full size, the surge counts too: the total desired must
     * not end up below what is needed once the new pods become ready */
    for (size_t i = 0; i < nold && budget > 0; i++) {
        int64_t down = old_out[i] < budget ? old_out[i] : budget;
        if (down > 0) {
            old_out[i] -= down;
            budget -= down;
            changed = true;
        }
    }
    return changed;
}

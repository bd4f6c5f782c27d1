/* algo — the pure parts of the workload layer: pod placement (filters and scores) and
 * rolling-update planning. No I/O, no clocks; tested on random inputs. */
#ifndef PLINTH_SCHED_ALGO_H
#define PLINTH_SCHED_ALGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* What the scheduler knows of a node. Pointers are borrowed from the caller's cache and
 * must stay valid during a call. */
struct sched_node_info {
    const char *name;
    bool ready;               /* Ready condition is True */
    bool unschedulable;       /* spec.unschedulable (cordoned) */
    int64_t cpu_cap, mem_cap, pods_cap;  /* capacity: millicores, bytes, pod count */
    int64_t cpu_used, mem_used, pods_used; /* sum of requests of pods bound to it */
    const json_t *labels;     /* metadata.labels (object) or NULL */
    const json_t *taints;     /* spec.taints (array) or NULL */
};

/* What the scheduler needs of a pod. */
struct sched_pod_req {
    int64_t cpu, mem;              /* summed container requests (0 when none given) */
    const json_t *node_selector;   /* spec.nodeSelector (object) or NULL */
    const json_t *tolerations;     /* spec.tolerations (array) or NULL */
};

/* Filter outcomes; SCHED_FIT_OK means the node can take the pod. */
enum sched_fit {
    SCHED_FIT_OK = 0,
    SCHED_FIT_NOT_READY,
    SCHED_FIT_UNSCHEDULABLE,
    SCHED_FIT_SELECTOR,
    SCHED_FIT_TAINT,
    SCHED_FIT_PODS,
    SCHED_FIT_CPU,
    SCHED_FIT_MEMORY,
    SCHED_FIT_COUNT
};

/* Text of a filter outcome as Kubernetes words it ("Insufficient cpu"). */
const char *sched_fit_reason(enum sched_fit f);

/* Extracts a pod's requirements from a validated Pod (or pod template) document. */
void sched_pod_req_from(const json_t *pod, struct sched_pod_req *out);

/* True when one of tols (a pod's spec.tolerations array, may be NULL) tolerates taint
 * (one of a node's spec.taints), as Kubernetes matches them: same key (an empty key with
 * operator Exists matches every key), equal value unless Exists, same effect or none. */
bool sched_tolerates(const json_t *tols, const json_t *taint);

/* Runs every filter; returns SCHED_FIT_OK or the first that fails. */
enum sched_fit sched_filter(const struct sched_node_info *n, const struct sched_pod_req *p);

/* Score of a feasible node for the pod, 0..200: least allocated (0..100, the mean free
 * fraction of cpu and memory after placing it) plus balanced allocation (0..100, 100
 * minus the gap between cpu and memory utilisation). Pods without requests count as
 * 100m cpu and 200 MiB for scoring only, as kube-scheduler does, so they still spread. */
int64_t sched_score(const struct sched_node_info *n, const struct sched_pod_req *p);

/* Picks the best node: the highest score among the nodes that pass the filters; ties go
 * to the lower index after rotating the start by `tiebreak` (callers pass a counter so
 * equal nodes take turns). Returns the index, or -1 when nothing fits, in which case
 * reason (if not NULL) receives a summary such as
 * "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were not ready". */
int sched_pick(const struct sched_node_info *nodes, size_t n, const struct sched_pod_req *p,
               uint64_t tiebreak, char *reason, size_t reasonlen);

/* Adds (sign +1) or removes (sign -1) a pod's requests to a node's usage. */
void sched_node_account(struct sched_node_info *n, const struct sched_pod_req *p, int sign);

/* ---- rolling update planning ---- */

/* Resolves an int-or-percent (json integer or "25%") against total; percentages round up
 * when round_up (maxSurge) and down otherwise (maxUnavailable), as Kubernetes does. */
int64_t sched_int_or_percent(const json_t *v, int64_t total, bool round_up);

/* The replica counts of one ReplicaSet during a rollout. */
struct sched_rs_state {
    int64_t replicas;  /* spec.replicas (desired count of the ReplicaSet) */
    int64_t ready;     /* pods of it that are Running and Ready */
    int64_t pods;      /* pods of it that exist now (its controller may lag behind
                        * replicas); the surge budget counts max(replicas, pods) */
};

/* One step of a rolling update. Inputs: the deployment's desired replicas, maxSurge and
 * maxUnavailable (resolved), the new ReplicaSet and the old ones. Writes the new desired
 * replica counts (new_out, old_out[i]); never lets the ReplicaSets' total (each counted as
 * the larger of its desired count and its existing pods, so pods an old ReplicaSet has not
 * yet deleted still count) exceed replicas + max_surge, nor scales down so that the ready count could drop below
 * replicas - max_unavailable (old pods that are not ready are removed first, they do not
 * count as available anyway). Returns true when any count changed. */
bool sched_rollout_step(int64_t replicas, int64_t max_surge, int64_t max_unavailable,
                        struct sched_rs_state newrs, const struct sched_rs_state *old,
                        size_t nold, int64_t *new_out, int64_t *old_out);

#endif

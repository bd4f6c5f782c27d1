/* ctrl — private to plinth-controller: the controllers' shared context and the helpers
 * they use (ownership, pod readiness, template hashes). */
#ifndef PLINTH_SCHED_CTRL_H
#define PLINTH_SCHED_CTRL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "sched/daemon.h"
#include "sched/informer.h"

#define SCHED_ANN_REVISION "deployment.kubernetes.io/revision"
#define SCHED_LABEL_HASH "pod-template-hash"

struct ctrl {
    struct sched_common *c;
    struct sched_store *s;
    struct sched_informer *inf;
    struct sched_election *el;
    int eviction_timeout_ms;  /* NotReady this long: the node's pods are deleted */
    json_t *node_seen;        /* node name -> [not_ready_since_ms or 0] (local clock) */
    int64_t leading_since;
    long writes, errors;
    bool uncertain;           /* a write's outcome is unknown: relist before acting again */
    json_t *by_owner;         /* per pass: owner uid -> array of its pods (from the cache) */
};

/* The fence for a write now, or NULL when leadership is gone (callers then stop). */
const struct sched_fence *ctrl_fence(struct ctrl *x);

/* Reports a write result: logs failures other than conflicts. Returns rc. */
int ctrl_wrote(struct ctrl *x, int rc, const char *what, const char *key);

/* True when the pod is bound, Running, its Ready condition is True and its node is Ready. */
bool ctrl_pod_ready(struct ctrl *x, const json_t *pod);
/* True when the pod has not ended (phase is neither Succeeded nor Failed). */
bool ctrl_pod_active(const json_t *pod);
/* True when obj's first controller owner reference is (kind, uid). */
bool ctrl_owned_by(const json_t *obj, const char *kind, const json_t *owner);
/* Sets obj's owner reference to owner (a ReplicaSet, Deployment, ...). */
void ctrl_set_owner(json_t *obj, const json_t *owner);
/* Hash of a pod template: 10 hex digits, stable for equal templates. */
void ctrl_template_hash(const json_t *tmpl, char out[11]);
/* Node Ready condition is True. */
bool ctrl_node_ready(const json_t *node);

/* The controllers; each returns false when it stopped early because leadership is gone. */
bool ctrl_replicasets(struct ctrl *x);
bool ctrl_deployments(struct ctrl *x);
bool ctrl_nodes(struct ctrl *x);
bool ctrl_endpoints(struct ctrl *x);

#endif

/* ctrl_nodes — the Node lifecycle controller (a node whose lease lapsed becomes NotReady;
 * after the eviction timeout its pods are deleted so their owners recreate them elsewhere)
 * and the Endpoints controller (ready pods behind each Service). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/algo.h"
#include "sched/ctrl.h"

#define NODE_LEASE_PREFIX "/registry/leases/"

static bool set_node_not_ready(struct ctrl *x, json_t *node)
{
    const struct sched_fence *f = ctrl_fence(x);
    if (!f) return false;
    json_t *upd = json_deep_copy(node);
    sched_condition_set(upd, "Ready", "Unknown", "NodeStatusUnknown",
                        "the node's lease was not renewed within its grace period");
    char key[SCHED_KEY_MAX];
    sched_obj_key(node, key, sizeof(key));
    int rc = ctrl_wrote(x, sched_store_update_obj(x->s, upd, f), "mark NotReady", key);
    if (rc == 0) sched_log("node %s: NotReady (lease expired)", sched_obj_name(node));
    json_decref(upd);
    return rc != SCHED_ENOTLEADER;
}

static bool evict_pods(struct ctrl *x, const char *node)
{
    const char *key;
    json_t *pod;
    int n = 0;
    json_object_foreach(sched_informer_objects(x->inf, SCHED_POD), key, pod) {
        if (strcmp(sched_obj_str(pod, "spec.nodeName"), node) != 0) continue;
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) return false;
        int rc = ctrl_wrote(x, sched_store_delete_obj(x->s, pod, f), "evict pod", key);
        if (rc == SCHED_ENOTLEADER) return false;
        n += rc == 0;
    }
    if (n) sched_log("node %s: evicted %d pod(s)", node, n);
    return true;
}

bool ctrl_nodes(struct ctrl *x)
{
    const char *key;
    json_t *node;
    json_t *other = sched_informer_other(x->inf);
    int64_t now = sched_now_ms();
    json_object_foreach(sched_informer_objects(x->inf, SCHED_NODE), key, node) {
        const char *name = sched_obj_name(node);
        char lk[SCHED_KEY_MAX];
        snprintf(lk, sizeof(lk), NODE_LEASE_PREFIX "%s", name);
        bool alive = json_object_get(other, lk) != NULL;
        if (alive) {
            json_object_del(x->node_seen, name);
            continue;
        }
        if (ctrl_node_ready(node)) {
            if (!set_node_not_ready(x, node)) return false;
            continue;
        }
        json_t *since = json_object_get(x->node_seen, name);
        if (!since) {
            /* the eviction clock starts when this leader first sees the node NotReady */
            json_object_set_new(x->node_seen, name, json_integer(now));
            continue;
        }
        if (now - json_integer_value(since) >= x->eviction_timeout_ms) {
            if (!evict_pods(x, name)) return false;
        }
    }
    /* a NoExecute taint evicts the pods on its node that do not tolerate it */
    json_t *pod;
    json_object_foreach(sched_informer_objects(x->inf, SCHED_POD), key, pod) {
        const char *nn = sched_obj_str(pod, "spec.nodeName");
        json_t *node = *nn ? sched_informer_get(x->inf, SCHED_NODE, NULL, nn) : NULL;
        size_t i;
        json_t *t;
        bool evict = false;
        json_array_foreach(sched_obj_get(node, "spec.taints"), i, t) {
            const char *eff = json_string_value(json_object_get(t, "effect"));
            if (eff && !strcmp(eff, "NoExecute") &&
                !sched_tolerates(sched_obj_get(pod, "spec.tolerations"), t))
                evict = true;
        }
        if (!evict) continue;
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) return false;
        if (ctrl_wrote(x, sched_store_delete_obj(x->s, pod, f), "evict (NoExecute taint)", key) ==
            SCHED_ENOTLEADER)
            return false;
    }
    /* pods bound to a node that no longer exists are evicted after the same timeout */
    json_t *gone = json_object();
    json_object_foreach(sched_informer_objects(x->inf, SCHED_POD), key, pod) {
        const char *nn = sched_obj_str(pod, "spec.nodeName");
        if (*nn && !sched_informer_get(x->inf, SCHED_NODE, NULL, nn)) json_object_set_new(gone, nn, json_true());
    }
    const char *name;
    json_t *v;
    bool ok = true;
    json_object_foreach(gone, name, v) {
        json_t *since = json_object_get(x->node_seen, name);
        if (!since) json_object_set_new(x->node_seen, name, json_integer(now));
        else if (now - json_integer_value(since) >= x->eviction_timeout_ms && !(ok = evict_pods(x, name)))
            break;
    }
    json_decref(gone);
    return ok;
}

/* The Endpoints a Service should have now. */
static json_t *desired_subsets(struct ctrl *x, const json_t *svc)
{
    json_t *sel = sched_obj_get(svc, "spec.selector");
    json_t *addrs = json_array();
    const char *key;
    json_t *pod;
    json_object_foreach(sched_informer_objects(x->inf, SCHED_POD), key, pod) {
        if (strcmp(sched_obj_namespace(pod), sched_obj_namespace(svc)) != 0) continue;
        if (!sched_labels_match(sel, sched_obj_get(pod, "metadata.labels"))) continue;
        if (!ctrl_pod_active(pod) || !ctrl_pod_ready(x, pod)) continue;
        const char *ip = sched_obj_str(pod, "status.podIP");
        if (!*ip) ip = sched_obj_str(pod, "status.hostIP");
        json_array_append_new(addrs, json_pack("{ss ss s{ss ss}}", "ip", ip, "nodeName",
                                               sched_obj_str(pod, "spec.nodeName"), "targetRef",
                                               "kind", "Pod", "name", sched_obj_name(pod)));
    }
    /* stable order, so an unchanged set is not rewritten */
    size_t n = json_array_size(addrs);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(addrs, j - 1), *b = json_array_get(addrs, j);
            if (strcmp(sched_obj_str(a, "targetRef.name"), sched_obj_str(b, "targetRef.name")) <= 0) break;
            json_incref(a);
            json_array_set(addrs, j - 1, b);
            json_array_set_new(addrs, j, a);
        }
    json_t *ports = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(sched_obj_get(svc, "spec.ports"), i, p) {
        json_t *one = json_pack("{sO}", "port", json_object_get(p, "targetPort"));
        if (json_object_get(p, "name")) json_object_set(one, "name", json_object_get(p, "name"));
        json_array_append_new(ports, one);
    }
    json_t *subsets = json_array();
    if (json_array_size(addrs)) json_array_append_new(subsets, json_pack("{soso}", "addresses", addrs, "ports", ports));
    else {
        json_decref(addrs);
        json_decref(ports);
    }
    return subsets;
}

bool ctrl_endpoints(struct ctrl *x)
{
    const char *key;
    json_t *svc;
    json_object_foreach(sched_informer_objects(x->inf, SCHED_SERVICE), key, svc) {
        json_t *want = desired_subsets(x, svc);
        json_t *ep = sched_informer_get(x->inf, SCHED_ENDPOINTS, sched_obj_namespace(svc), sched_obj_name(svc));
        int rc = 0;
        char ek[SCHED_KEY_MAX];
        sched_key(SCHED_ENDPOINTS, sched_obj_namespace(svc), sched_obj_name(svc), ek, sizeof(ek));
        if (!ep || !json_equal(json_object_get(ep, "subsets"), want)) {
            const struct sched_fence *f = ctrl_fence(x);
            if (!f) {
                json_decref(want);
                return false;
            }
            json_t *obj = ep ? json_deep_copy(ep)
                             : json_pack("{ss s{ssss}}", "kind", "Endpoints", "metadata", "name",
                                         sched_obj_name(svc), "namespace", sched_obj_namespace(svc));
            json_object_set(obj, "subsets", want);
            if (!ep) ctrl_set_owner(obj, svc);
            rc = ep ? sched_store_update_obj(x->s, obj, f) : sched_store_create_obj(x->s, obj, f);
            ctrl_wrote(x, rc, "endpoints", ek);
            json_decref(obj);
        }
        json_decref(want);
        if (rc == SCHED_ENOTLEADER) return false;
    }
    json_t *ep;
    json_object_foreach(sched_informer_objects(x->inf, SCHED_ENDPOINTS), key, ep) {
        if (sched_informer_get(x->inf, SCHED_SERVICE, sched_obj_namespace(ep), sched_obj_name(ep)))
            continue;
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) return false;
        if (ctrl_wrote(x, sched_store_delete_obj(x->s, ep, f), "delete endpoints", key) ==
            SCHED_ENOTLEADER)
            return false;
    }
    return true;
}

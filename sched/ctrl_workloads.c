/* ctrl_workloads — the ReplicaSet controller (pods to match replicas) and the Deployment
 * controller (ReplicaSet per template, rolling update, revisions, history limit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/algo.h"
#include "sched/ctrl.h"

#define MAX_CREATES_PER_PASS 200

/* ---- ReplicaSet ---- */

struct owned_pod {
    json_t *pod;
    int rank; /* lower is deleted first */
    const char *created;
};

static int cmp_owned(const void *a, const void *b)
{
    const struct owned_pod *x = a, *y = b;
    if (x->rank != y->rank) return x->rank - y->rank;
    return -strcmp(x->created, y->created); /* newest first */
}

static void random_suffix(char out[6])
{
    char uid[33];
    static const char alnum[] = "bcdfghjklmnpqrstvwxz2456789";
    sched_new_uid(uid);
    for (int i = 0; i < 5; i++) out[i] = alnum[(unsigned char)uid[i * 2] * 7 % (sizeof(alnum) - 1)];
    out[5] = '\0';
}

/* Creates `count` pods from the ReplicaSet's template, all in flight at once. Returns
 * SCHED_ENOTLEADER when leadership is gone, else 0 (failures are logged; the next pass
 * tries again). A name taken already (27^5 suffixes) fails with EEXIST, also retried. */
static int create_pods(struct ctrl *x, const json_t *rs, int64_t count)
{
    const struct sched_fence *f = ctrl_fence(x);
    if (!f) return SCHED_ENOTLEADER;
    json_t *tmpl = sched_obj_get(rs, "spec.template");
    json_t *labels = sched_obj_get(tmpl, "metadata.labels");
    struct sched_write *w = calloc((size_t)count, sizeof(*w));
    char **text = calloc((size_t)count, sizeof(*text));
    char (*keys)[SCHED_KEY_MAX] = calloc((size_t)count, sizeof(*keys));
    int rc = 0;
    if (!w || !text || !keys) {
        rc = SCHED_ENOMEM;
        goto out;
    }
    char now[32];
    sched_now_rfc3339(now, sizeof(now));
    for (int64_t i = 0; i < count; i++) {
        char suf[6], uid[33], name[SCHED_NAME_MAX + 1];
        random_suffix(suf);
        sched_new_uid(uid);
        snprintf(name, sizeof(name), "%.240s-%s", sched_obj_name(rs), suf);
        json_t *pod = json_pack("{ss s{ss ss so ss ss} so s{ss}}", "kind", "Pod", "metadata",
                                "name", name, "namespace", sched_obj_namespace(rs), "labels",
                                labels ? json_deep_copy(labels) : json_object(), "uid", uid,
                                "creationTimestamp", now, "spec",
                                json_deep_copy(json_object_get(tmpl, "spec")), "status", "phase",
                                "Pending");
        if (!pod) {
            rc = SCHED_ENOMEM;
            goto out;
        }
        json_object_del(json_object_get(pod, "spec"), "nodeName");
        ctrl_set_owner(pod, rs);
        sched_key(SCHED_POD, sched_obj_namespace(rs), name, keys[i], sizeof(keys[i]));
        text[i] = sched_obj_encode(pod);
        json_decref(pod);
        w[i] = (struct sched_write){.key = keys[i], .value = text[i],
                                    .len = text[i] ? strlen(text[i]) : 0, .expect_mod = 0};
    }
    sched_store_write_batch(x->s, w, (size_t)count, f);
    for (int64_t i = 0; i < count; i++) {
        if (ctrl_wrote(x, w[i].rc, "create pod", keys[i]) == SCHED_ENOTLEADER) rc = SCHED_ENOTLEADER;
    }
out:
    if (text)
        for (int64_t i = 0; i < count; i++) free(text[i]);
    free(text);
    free(keys);
    free(w);
    return rc;
}

/* The pods whose owner has rs's uid (an array, borrowed; empty when none). */
static json_t *owned_pods(struct ctrl *x, const json_t *rs)
{
    static json_t *none;
    json_t *a = json_object_get(x->by_owner, sched_obj_str(rs, "metadata.uid"));
    if (a) return a;
    if (!none) none = json_array();
    return none;
}

/* creating: false = delete surplus pods and report status; true = create missing pods */
static bool reconcile_rs(struct ctrl *x, json_t *rs, bool creating)
{
    json_t *pods = owned_pods(x, rs);
    const char *ns = sched_obj_namespace(rs);
    size_t cap = json_array_size(pods), n = 0, idx;
    struct owned_pod *own = calloc(cap ? cap : 1, sizeof(*own));
    json_t *pod;
    int64_t ready = 0;
    if (!own) return true;
    json_array_foreach(pods, idx, pod) {
        if (strcmp(sched_obj_namespace(pod), ns) != 0 || !ctrl_owned_by(pod, "ReplicaSet", rs))
            continue;
        if (!ctrl_pod_active(pod)) continue;
        bool r = ctrl_pod_ready(x, pod);
        ready += r;
        own[n].pod = pod;
        own[n].created = sched_obj_str(pod, "metadata.creationTimestamp");
        own[n].rank = !*sched_obj_str(pod, "spec.nodeName") ? 0 : !r ? 1 : 2;
        n++;
    }
    int64_t want = sched_obj_int(rs, "spec.replicas", 1);
    bool ok = true;
    if (creating) {
        if ((int64_t)n < want) {
            int64_t todo = want - (int64_t)n;
            if (todo > MAX_CREATES_PER_PASS) todo = MAX_CREATES_PER_PASS;
            ok = create_pods(x, rs, todo) != SCHED_ENOTLEADER;
        }
        free(own);
        return ok;
    }
    if ((int64_t)n > want) {
        qsort(own, n, sizeof(*own), cmp_owned);
        for (size_t i = 0; i < n - (size_t)want && ok; i++) {
            const struct sched_fence *f = ctrl_fence(x);
            if (!f) {
                ok = false;
                break;
            }
            char pk[SCHED_KEY_MAX];
            sched_obj_key(own[i].pod, pk, sizeof(pk));
            ok = ctrl_wrote(x, sched_store_delete_obj(x->s, own[i].pod, f), "delete pod", pk) !=
                 SCHED_ENOTLEADER;
        }
    }
    /* status */
    if (ok && (sched_obj_int(rs, "status.replicas", -1) != (int64_t)n ||
               sched_obj_int(rs, "status.readyReplicas", -1) != ready)) {
        const struct sched_fence *f = ctrl_fence(x);
        if (f) {
            json_t *upd = json_deep_copy(rs);
            sched_obj_set(upd, "status.replicas", json_integer((json_int_t)n));
            sched_obj_set(upd, "status.readyReplicas", json_integer(ready));
            sched_obj_set(upd, "status.availableReplicas", json_integer(ready));
            char rk[SCHED_KEY_MAX];
            sched_obj_key(rs, rk, sizeof(rk));
            ok = ctrl_wrote(x, sched_store_update_obj(x->s, upd, f), "status", rk) != SCHED_ENOTLEADER;
            json_decref(upd);
        } else {
            ok = false;
        }
    }
    free(own);
    return ok;
}

bool ctrl_replicasets(struct ctrl *x)
{
    const char *key;
    json_t *rs;
    /* every ReplicaSet deletes its surplus before any creates: during a rollout the old
     * ones shrink before the new one grows, so the pod count stays within the surge */
    json_object_foreach(sched_informer_objects(x->inf, SCHED_REPLICASET), key, rs) {
        if (!reconcile_rs(x, rs, false)) return false;
    }
    json_object_foreach(sched_informer_objects(x->inf, SCHED_REPLICASET), key, rs) {
        if (!reconcile_rs(x, rs, true)) return false;
    }
    return true;
}

/* ---- Deployment ---- */

static int64_t rs_revision(const json_t *rs)
{
    json_t *ann = sched_obj_get(rs, "metadata.annotations");
    const char *v = json_string_value(json_object_get(ann, SCHED_ANN_REVISION));
    return v ? strtoll(v, NULL, 10) : 0;
}

static void set_revision(json_t *obj, int64_t rev)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)rev);
    json_t *ann = sched_obj_get(obj, "metadata.annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        sched_obj_set(obj, "metadata.annotations", ann);
    }
    json_object_set_new(ann, SCHED_ANN_REVISION, json_string(buf));
}

static int new_rs(struct ctrl *x, const json_t *d, const char *hash, int64_t revision)
{
    const struct sched_fence *f = ctrl_fence(x);
    if (!f) return SCHED_ENOTLEADER;
    char name[SCHED_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%.230s-%s", sched_obj_name(d), hash);
    json_t *tmpl = json_deep_copy(sched_obj_get(d, "spec.template"));
    json_t *sel = json_deep_copy(sched_obj_get(d, "spec.selector.matchLabels"));
    json_object_set_new(sel, SCHED_LABEL_HASH, json_string(hash));
    sched_obj_set(tmpl, "metadata.labels." SCHED_LABEL_HASH, json_string(hash));
    json_t *labels = json_deep_copy(sched_obj_get(tmpl, "metadata.labels"));
    json_t *rs = json_pack("{ss s{ss ss so} s{si s{so} so} s{}}", "kind", "ReplicaSet", "metadata",
                           "name", name, "namespace", sched_obj_namespace(d), "labels", labels,
                           "spec", "replicas", 0, "selector", "matchLabels", sel, "template", tmpl,
                           "status");
    if (!rs) return SCHED_ENOMEM;
    ctrl_set_owner(rs, d);
    set_revision(rs, revision);
    char key[SCHED_KEY_MAX];
    sched_key(SCHED_REPLICASET, sched_obj_namespace(d), name, key, sizeof(key));
    int rc = ctrl_wrote(x, sched_store_create_obj(x->s, rs, f), "create replicaset", key);
    json_decref(rs);
    return rc;
}

static int set_rs_replicas(struct ctrl *x, json_t *rs, int64_t replicas, int64_t revision)
{
    const struct sched_fence *f = ctrl_fence(x);
    if (!f) return SCHED_ENOTLEADER;
    json_t *upd = json_deep_copy(rs);
    sched_obj_set(upd, "spec.replicas", json_integer(replicas));
    if (revision > 0) set_revision(upd, revision);
    char key[SCHED_KEY_MAX], what[64];
    sched_obj_key(rs, key, sizeof(key));
    snprintf(what, sizeof(what), "scale to %lld", (long long)replicas);
    int rc = ctrl_wrote(x, sched_store_update_obj(x->s, upd, f), what, key);
    json_decref(upd);
    return rc;
}

static int64_t rs_ready(struct ctrl *x, const json_t *rs)
{
    int64_t ready = 0;
    size_t i;
    json_t *pod;
    json_array_foreach(owned_pods(x, rs), i, pod) {
        if (ctrl_owned_by(pod, "ReplicaSet", rs) && ctrl_pod_active(pod) && ctrl_pod_ready(x, pod))
            ready++;
    }
    return ready;
}

static int64_t rs_pods(struct ctrl *x, const json_t *rs)
{
    int64_t n = 0;
    size_t i;
    json_t *pod;
    json_array_foreach(owned_pods(x, rs), i, pod) {
        if (ctrl_owned_by(pod, "ReplicaSet", rs)) n++;
    }
    return n;
}

/* Pods of the ReplicaSet that have not ended. */
static int64_t rs_active(struct ctrl *x, const json_t *rs)
{
    int64_t n = 0;
    size_t i;
    json_t *pod;
    json_array_foreach(owned_pods(x, rs), i, pod) {
        if (ctrl_owned_by(pod, "ReplicaSet", rs) && ctrl_pod_active(pod)) n++;
    }
    return n;
}

static int cmp_rev(const void *a, const void *b)
{
    int64_t x = rs_revision(*(json_t *const *)a), y = rs_revision(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

/* Returns false when leadership is gone. Writes at most one step per pass. */
static bool reconcile_deployment(struct ctrl *x, json_t *d)
{
    char hash[11];
    ctrl_template_hash(sched_obj_get(d, "spec.template"), hash);
    json_t *all = sched_informer_objects(x->inf, SCHED_REPLICASET);
    size_t cap = json_object_size(all), nold = 0;
    json_t **old = calloc(cap ? cap : 1, sizeof(*old));
    json_t *newrs = NULL;
    int64_t maxrev = 0;
    const char *key;
    json_t *rs;
    int rc = 0;
    if (!old) return true;
    json_object_foreach(all, key, rs) {
        if (!ctrl_owned_by(rs, "Deployment", d)) continue;
        int64_t r = rs_revision(rs);
        if (r > maxrev) maxrev = r;
        if (!strcmp(sched_obj_str(rs, "metadata.labels." SCHED_LABEL_HASH), hash)) newrs = rs;
        else old[nold++] = rs;
    }
    int64_t replicas = sched_obj_int(d, "spec.replicas", 1);
    if (!newrs) {
        rc = new_rs(x, d, hash, maxrev + 1);
        goto out;
    }
    /* rollout undo brings back an old template: its ReplicaSet becomes the newest revision */
    if (rs_revision(newrs) < maxrev) {
        rc = set_rs_replicas(x, newrs, sched_obj_int(newrs, "spec.replicas", 0), maxrev + 1);
        goto out;
    }
    char revbuf[32];
    snprintf(revbuf, sizeof(revbuf), "%lld", (long long)rs_revision(newrs));
    struct sched_rs_state ns = {sched_obj_int(newrs, "spec.replicas", 0), rs_ready(x, newrs),
                                rs_active(x, newrs)};
    struct sched_rs_state *os = calloc(nold ? nold : 1, sizeof(*os));
    int64_t *oout = calloc(nold ? nold : 1, sizeof(*oout));
    int64_t nout = ns.replicas;
    bool changed = false;
    if (!os || !oout) {
        free(os);
        free(oout);
        goto out;
    }
    for (size_t i = 0; i < nold; i++) {
        os[i].replicas = sched_obj_int(old[i], "spec.replicas", 0);
        os[i].ready = rs_ready(x, old[i]);
        os[i].pods = rs_active(x, old[i]);
    }
    const char *type = sched_obj_str(d, "spec.strategy.type");
    if (!strcmp(type, "Recreate")) {
        int64_t oldpods = 0;
        for (size_t i = 0; i < nold; i++) {
            oout[i] = 0;
            changed |= os[i].replicas != 0;
            oldpods += rs_pods(x, old[i]);
        }
        nout = oldpods == 0 ? replicas : ns.replicas;
        changed |= nout != ns.replicas;
    } else {
        json_t *ru = sched_obj_get(d, "spec.strategy.rollingUpdate");
        int64_t surge = sched_int_or_percent(json_object_get(ru, "maxSurge"), replicas, true);
        int64_t unavail = sched_int_or_percent(json_object_get(ru, "maxUnavailable"), replicas, false);
        if (surge == 0 && unavail == 0) unavail = 1;
        changed = sched_rollout_step(replicas, surge, unavail, ns, os, nold, &nout, oout);
    }
    if (changed) {
        if (nout != ns.replicas) rc = set_rs_replicas(x, newrs, nout, 0);
        for (size_t i = 0; i < nold && rc != SCHED_ENOTLEADER; i++)
            if (oout[i] != os[i].replicas) rc = set_rs_replicas(x, old[i], oout[i], 0);
    }
    free(os);
    free(oout);
    if (changed) goto out;

    /* history limit: drop the oldest empty ReplicaSets beyond it */
    int64_t limit = sched_obj_int(d, "spec.revisionHistoryLimit", 10);
    qsort(old, nold, sizeof(*old), cmp_rev);
    size_t empty = 0;
    for (size_t i = 0; i < nold; i++)
        if (sched_obj_int(old[i], "spec.replicas", 0) == 0 && rs_pods(x, old[i]) == 0) empty++;
    for (size_t i = 0; i < nold && (int64_t)empty > limit && rc != SCHED_ENOTLEADER; i++) {
        if (sched_obj_int(old[i], "spec.replicas", 0) != 0 || rs_pods(x, old[i]) != 0) continue;
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) {
            rc = SCHED_ENOTLEADER;
            break;
        }
        char rk[SCHED_KEY_MAX];
        sched_obj_key(old[i], rk, sizeof(rk));
        rc = ctrl_wrote(x, sched_store_delete_obj(x->s, old[i], f), "delete old replicaset", rk);
        empty--;
    }
    if (rc == SCHED_ENOTLEADER) goto out;

    /* status and revision annotation of the deployment */
    int64_t total = sched_obj_int(newrs, "spec.replicas", 0), ready = rs_ready(x, newrs);
    for (size_t i = 0; i < nold; i++) {
        total += sched_obj_int(old[i], "spec.replicas", 0);
        ready += rs_ready(x, old[i]);
    }
    int64_t updated = rs_ready(x, newrs);
    json_t *ann = sched_obj_get(d, "metadata.annotations");
    const char *cur_rev = json_string_value(json_object_get(ann, SCHED_ANN_REVISION));
    if (sched_obj_int(d, "status.replicas", -1) != total ||
        sched_obj_int(d, "status.readyReplicas", -1) != ready ||
        sched_obj_int(d, "status.updatedReplicas", -1) != updated || !cur_rev ||
        strcmp(cur_rev, revbuf) != 0) {
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) {
            rc = SCHED_ENOTLEADER;
            goto out;
        }
        json_t *upd = json_deep_copy(d);
        sched_obj_set(upd, "status.replicas", json_integer(total));
        sched_obj_set(upd, "status.readyReplicas", json_integer(ready));
        sched_obj_set(upd, "status.availableReplicas", json_integer(ready));
        sched_obj_set(upd, "status.updatedReplicas", json_integer(updated));
        set_revision(upd, rs_revision(newrs));
        char dk[SCHED_KEY_MAX];
        sched_obj_key(d, dk, sizeof(dk));
        rc = ctrl_wrote(x, sched_store_update_obj(x->s, upd, f), "status", dk);
        json_decref(upd);
    }
out:
    free(old);
    return rc != SCHED_ENOTLEADER;
}

bool ctrl_deployments(struct ctrl *x)
{
    const char *key;
    json_t *d;
    json_object_foreach(sched_informer_objects(x->inf, SCHED_DEPLOYMENT), key, d) {
        if (!reconcile_deployment(x, d)) return false;
    }
    /* ReplicaSets whose Deployment is gone are deleted (their pods follow) */
    json_object_foreach(sched_informer_objects(x->inf, SCHED_REPLICASET), key, d) {
        json_t *ref = json_array_get(sched_obj_get(d, "metadata.ownerReferences"), 0);
        const char *kind = json_string_value(json_object_get(ref, "kind"));
        if (!kind || strcmp(kind, "Deployment") != 0) continue;
        json_t *owner = sched_informer_get(x->inf, SCHED_DEPLOYMENT, sched_obj_namespace(d),
                                           json_string_value(json_object_get(ref, "name")));
        if (owner && ctrl_owned_by(d, "Deployment", owner)) continue;
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) return false;
        if (ctrl_wrote(x, sched_store_delete_obj(x->s, d, f), "delete orphan replicaset", key) ==
            SCHED_ENOTLEADER)
            return false;
    }
    json_object_foreach(sched_informer_objects(x->inf, SCHED_POD), key, d) {
        json_t *ref = json_array_get(sched_obj_get(d, "metadata.ownerReferences"), 0);
        const char *kind = json_string_value(json_object_get(ref, "kind"));
        if (!kind || strcmp(kind, "ReplicaSet") != 0) continue;
        json_t *owner = sched_informer_get(x->inf, SCHED_REPLICASET, sched_obj_namespace(d),
                                           json_string_value(json_object_get(ref, "name")));
        if (owner && ctrl_owned_by(d, "ReplicaSet", owner)) continue;
        const struct sched_fence *f = ctrl_fence(x);
        if (!f) return false;
        if (ctrl_wrote(x, sched_store_delete_obj(x->s, d, f), "delete orphan pod", key) ==
            SCHED_ENOTLEADER)
            return false;
    }
    return true;
}

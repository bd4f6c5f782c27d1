/* ctl_rollout — `plinthctl kube rollout status|history|undo deployment/NAME`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/ctl_int.h"
#include "sched/ctrl.h"

static int64_t revision_of(const json_t *o)
{
    const char *v = json_string_value(json_object_get(sched_obj_get(o, "metadata.annotations"),
                                                      SCHED_ANN_REVISION));
    return v ? strtoll(v, NULL, 10) : 0;
}

static int cmp_rev(const void *a, const void *b)
{
    int64_t x = revision_of(*(json_t *const *)a), y = revision_of(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

/* The deployment and its ReplicaSets sorted by revision (caller frees both). */
static int load(struct ctl *c, const char *name, json_t **dep, json_t ***rss, size_t *nrs)
{
    char key[SCHED_KEY_MAX], prefix[SCHED_KEY_MAX];
    sched_key(SCHED_DEPLOYMENT, ctl_ns(c), name, key, sizeof(key));
    int rc = sched_store_get_obj(c->s, key, dep);
    if (rc) {
        fprintf(stderr, "kube: rollout: deployment \"%s\": %s\n", name,
                rc == SCHED_ENOTFOUND ? "not found" : sched_store_errmsg(c->s));
        return 1;
    }
    sched_key_prefix(SCHED_REPLICASET, ctl_ns(c), prefix, sizeof(prefix));
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    if (sched_store_list(c->s, prefix, 0, false, &kvs, &n, NULL)) {
        fprintf(stderr, "kube: rollout: %s\n", sched_store_errmsg(c->s));
        json_decref(*dep);
        return 1;
    }
    *rss = calloc(n ? n : 1, sizeof(**rss));
    *nrs = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *o = sched_obj_from_kv(kvs[i].value, kvs[i].value_len, kvs[i].mod_rev);
        if (o && ctrl_owned_by(o, "Deployment", *dep)) (*rss)[(*nrs)++] = o;
        else json_decref(o);
    }
    sched_kvs_free(kvs, n);
    qsort(*rss, *nrs, sizeof(**rss), cmp_rev);
    return 0;
}

static void unload(json_t *dep, json_t **rss, size_t n)
{
    for (size_t i = 0; i < n; i++) json_decref(rss[i]);
    free(rss);
    json_decref(dep);
}

static int status(struct ctl *c, const char *name)
{
    double wait_s = c->wait_s > 0 ? c->wait_s : 300;
    int64_t until = sched_now_ms() + (int64_t)(wait_s * 1000);
    char last[256] = "";
    for (;;) {
        json_t *d, **rss;
        size_t n;
        if (load(c, name, &d, &rss, &n)) return 1;
        char hash[11];
        ctrl_template_hash(sched_obj_get(d, "spec.template"), hash);
        int64_t want = sched_obj_int(d, "spec.replicas", 1), updated = 0, ready_new = 0, old_pods = 0;
        bool have_new = false;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(sched_obj_str(rss[i], "metadata.labels." SCHED_LABEL_HASH), hash)) {
                have_new = true;
                updated = sched_obj_int(rss[i], "status.replicas", 0);
                ready_new = sched_obj_int(rss[i], "status.readyReplicas", 0);
                if (sched_obj_int(rss[i], "spec.replicas", 0) != want) updated = updated < want ? updated : want - 1;
            } else {
                old_pods += sched_obj_int(rss[i], "status.replicas", 0) + sched_obj_int(rss[i], "spec.replicas", 0);
            }
        }
        unload(d, rss, n);
        char msg[256];
        bool done = have_new && updated == want && ready_new == want && old_pods == 0;
        if (done) {
            printf("deployment \"%s\" successfully rolled out\n", name);
            return 0;
        }
        if (!have_new || updated < want)
            snprintf(msg, sizeof(msg), "Waiting for deployment \"%s\" rollout to finish: %lld out of %lld new replicas have been updated...",
                     name, (long long)updated, (long long)want);
        else if (old_pods > 0)
            snprintf(msg, sizeof(msg), "Waiting for deployment \"%s\" rollout to finish: %lld old replicas are pending termination...",
                     name, (long long)old_pods);
        else
            snprintf(msg, sizeof(msg), "Waiting for deployment \"%s\" rollout to finish: %lld of %lld updated replicas are available...",
                     name, (long long)ready_new, (long long)want);
        if (strcmp(msg, last) != 0) {
            puts(msg);
            fflush(stdout);
            snprintf(last, sizeof(last), "%s", msg);
        }
        if (sched_now_ms() > until) {
            fprintf(stderr, "kube: rollout status: timed out after %.0f s\n", wait_s);
            return 1;
        }
        usleep(200 * 1000);
    }
}

static int history(struct ctl *c, const char *name)
{
    json_t *d, **rss;
    size_t n;
    if (load(c, name, &d, &rss, &n)) return 1;
    printf("deployment \"%s\"\n%-10s %-40s %s\n", name, "REVISION", "REPLICASET", "IMAGES / COMMAND");
    for (size_t i = 0; i < n; i++) {
        char imgs[512] = "";
        size_t off = 0, j;
        json_t *ct;
        json_array_foreach(sched_obj_get(rss[i], "spec.template.spec.containers"), j, ct) {
            char *cmd = json_dumps(json_object_get(ct, "command"), JSON_COMPACT | JSON_ENCODE_ANY);
            int w = snprintf(imgs + off, sizeof(imgs) - off, "%s%s %s", off ? ", " : "",
                             sched_obj_str(ct, "image"), cmd && strcmp(cmd, "null") ? cmd : "");
            free(cmd);
            if (w < 0 || (size_t)w >= sizeof(imgs) - off) break;
            off += (size_t)w;
        }
        printf("%-10lld %-40s %s\n", (long long)revision_of(rss[i]), sched_obj_name(rss[i]), imgs);
    }
    unload(d, rss, n);
    return 0;
}

struct undo_ctx {
    json_t *tmpl;
};

static int set_template(json_t *obj, void *ud)
{
    struct undo_ctx *u = ud;
    json_t *t = json_deep_copy(u->tmpl);
    json_object_del(sched_obj_get(t, "metadata.labels"), SCHED_LABEL_HASH);
    if (json_equal(t, sched_obj_get(obj, "spec.template"))) {
        json_decref(t);
        return 1;
    }
    sched_obj_set(obj, "spec.template", t);
    return 0;
}

static int undo(struct ctl *c, const char *name)
{
    json_t *d, **rss;
    size_t n;
    if (load(c, name, &d, &rss, &n)) return 1;
    char hash[11];
    ctrl_template_hash(sched_obj_get(d, "spec.template"), hash);
    int64_t cur = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(sched_obj_str(rss[i], "metadata.labels." SCHED_LABEL_HASH), hash)) cur = revision_of(rss[i]);
    json_t *target = NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t r = revision_of(rss[i]);
        if (c->to_revision > 0 ? r == c->to_revision : r < cur || (cur == 0 && i + 1 < n)) target = rss[i];
    }
    int rc = 1;
    if (!target) {
        if (c->to_revision > 0) fprintf(stderr, "kube: rollout undo: revision %d not found\n", c->to_revision);
        else fprintf(stderr, "kube: rollout undo: no previous revision of deployment \"%s\"\n", name);
    } else {
        struct undo_ctx u = {sched_obj_get(target, "spec.template")};
        char key[SCHED_KEY_MAX];
        sched_key(SCHED_DEPLOYMENT, ctl_ns(c), name, key, sizeof(key));
        rc = ctl_update(c, key, set_template, &u);
        if (rc == 0)
            printf("deployment/%s rolled back (to the template of revision %lld)\n", name,
                   (long long)revision_of(target));
    }
    unload(d, rss, n);
    return rc;
}

int ctl_rollout(struct ctl *c)
{
    if (c->nargs < 2) {
        fprintf(stderr, "kube: rollout status|history|undo deployment/NAME\n");
        return 2;
    }
    const char *sub = c->args[0];
    int i = 1;
    enum sched_kind k;
    const char *name;
    if (ctl_kind_name(c, &i, &k, &name)) return 2;
    if (k != SCHED_DEPLOYMENT) {
        fprintf(stderr, "kube: rollout: only deployments roll out\n");
        return 2;
    }
    if (!strcmp(sub, "status")) return status(c, name);
    if (!strcmp(sub, "history")) return history(c, name);
    if (!strcmp(sub, "undo")) return undo(c, name);
    fprintf(stderr, "kube: rollout: unknown subcommand \"%s\" (status, history, undo)\n", sub);
    return 2;
}

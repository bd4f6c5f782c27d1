/* controller — plinth-controller: the leader-elected loop that runs the ReplicaSet,
 * Deployment, Node lifecycle and Endpoints controllers over the informer cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/ctrl.h"

#define RESYNC_MS 500

const struct sched_fence *ctrl_fence(struct ctrl *x)
{
    return sched_election_fence(x->el);
}

int ctrl_wrote(struct ctrl *x, int rc, const char *what, const char *key)
{
    if (rc == 0) {
        x->writes++;
        if (x->c->verbose) sched_log("%s %s", what, key);
    } else if (rc != SCHED_ECONFLICT && rc != SCHED_ENOTFOUND && rc != SCHED_EEXIST) {
        x->errors++;
        if (rc == SCHED_ESTORE) x->uncertain = true;
        if (rc == SCHED_ENOTLEADER) sched_election_lost(x->el);
        sched_log("%s %s: %s", what, key, sched_store_errmsg(x->s));
    }
    return rc;
}

bool ctrl_node_ready(const json_t *node)
{
    json_t *c = sched_condition_get(node, "Ready");
    const char *st = json_string_value(json_object_get(c, "status"));
    return st && !strcmp(st, "True");
}

bool ctrl_pod_active(const json_t *pod)
{
    const char *ph = sched_obj_str(pod, "status.phase");
    return strcmp(ph, "Succeeded") != 0 && strcmp(ph, "Failed") != 0;
}

bool ctrl_pod_ready(struct ctrl *x, const json_t *pod)
{
    const char *nn = sched_obj_str(pod, "spec.nodeName");
    if (!*nn || strcmp(sched_obj_str(pod, "status.phase"), "Running") != 0) return false;
    json_t *c = sched_condition_get(pod, "Ready");
    const char *st = json_string_value(json_object_get(c, "status"));
    if (!st || strcmp(st, "True") != 0) return false;
    json_t *node = sched_informer_get(x->inf, SCHED_NODE, NULL, nn);
    return node && ctrl_node_ready(node);
}

bool ctrl_owned_by(const json_t *obj, const char *kind, const json_t *owner)
{
    json_t *ref = json_array_get(sched_obj_get(obj, "metadata.ownerReferences"), 0);
    const char *k = json_string_value(json_object_get(ref, "kind"));
    const char *uid = json_string_value(json_object_get(ref, "uid"));
    return k && uid && !strcmp(k, kind) && !strcmp(uid, sched_obj_str(owner, "metadata.uid"));
}

void ctrl_set_owner(json_t *obj, const json_t *owner)
{
    sched_obj_set(obj, "metadata.ownerReferences",
                  json_pack("[{sssssssb}]", "kind", json_string_value(json_object_get(owner, "kind")),
                            "name", sched_obj_name(owner), "uid", sched_obj_str(owner, "metadata.uid"),
                            "controller", 1));
}

void ctrl_template_hash(const json_t *tmpl, char out[11])
{
    json_t *copy = json_deep_copy(tmpl);
    /* the hash label itself is not part of what is hashed */
    json_object_del(sched_obj_get(copy, "metadata.labels"), SCHED_LABEL_HASH);
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = text ? text : ""; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    snprintf(out, 11, "%010llx", (unsigned long long)(h & 0xffffffffffULL));
    free(text);
    json_decref(copy);
}

/* Groups the cached pods by their owner's uid, once per pass: the ReplicaSet and
 * Deployment controllers then look up a ReplicaSet's pods instead of scanning them all. */
static void index_owners(struct ctrl *x)
{
    const char *key;
    json_t *pod;
    json_decref(x->by_owner);
    x->by_owner = json_object();
    json_object_foreach(sched_informer_objects(x->inf, SCHED_POD), key, pod) {
        json_t *ref = json_array_get(sched_obj_get(pod, "metadata.ownerReferences"), 0);
        const char *uid = json_string_value(json_object_get(ref, "uid"));
        if (!uid) continue;
        json_t *a = json_object_get(x->by_owner, uid);
        if (!a) {
            a = json_array();
            json_object_set_new(x->by_owner, uid, a);
        }
        json_array_append(a, pod);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: plinth-controller [flags]\n"
               "Runs the ReplicaSet, Deployment, Node lifecycle and Endpoints controllers.\n"
               "Several may run; one leads (election prefix /plinth/election/controller/).\n\n"
               "flags:\n%s"
               "  --eviction-timeout S a node NotReady this long has its pods deleted (and\n"
               "                       recreated elsewhere by their ReplicaSets); default 30.\n"
               "                       A node becomes NotReady when its agent's node lease\n"
               "                       (the agent's --node-lease-ttl) is not renewed.\n"
               "  -h, --help           this text\n", sched_common_help);
}

int sched_controller_main(int argc, char **argv)
{
    struct sched_common c;
    struct ctrl x = {.c = &c, .eviction_timeout_ms = 30000};
    sched_log_set_name("plinth-controller");
    sched_common_init(&c, "controller");
    for (int i = 1; i < argc; i++) {
        int r = sched_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strncmp(argv[i], "--eviction-timeout", 18)) {
            const char *v = argv[i][18] == '=' ? argv[i] + 19 : (i + 1 < argc ? argv[++i] : NULL);
            double sec = v ? atof(v) : -1;
            if (sec < 0) {
                fprintf(stderr, "plinth-controller: --eviction-timeout needs seconds\n");
                return 2;
            }
            x.eviction_timeout_ms = (int)(sec * 1000);
            continue;
        }
        fprintf(stderr, "plinth-controller: unknown flag %s\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (sched_common_store(&c, &x.s)) return 1;
    sched_informer_new(x.s, "/registry/", NULL, NULL, &x.inf);
    struct sched_election_opts eo = {.prefix = "/plinth/election/controller/", .id = c.name,
                                     .ttl = c.lease_ttl};
    sched_election_new(x.s, &eo, &x.el);
    x.node_seen = json_object();
    sched_signals_install();
    sched_log("%s starting (endpoints %s, lease ttl %d s, eviction timeout %d ms)", c.name,
              c.endpoints, c.lease_ttl, x.eviction_timeout_ms);
    bool was_leader = false;
    int lists = 0, compactions = 0;
    int64_t next_resync = 0;
    while (!sched_stopping()) {
        bool leader = sched_election_step(x.el);
        if (leader != was_leader) {
            sched_log("%s", leader ? "acting as leader" : "standing by");
            was_leader = leader;
            x.leading_since = sched_now_ms();
            json_object_clear(x.node_seen);
            /* start from a cache that shows every write of the previous leader */
            if (leader) sched_informer_resync(x.inf);
        }
        if (x.uncertain) {
            sched_informer_resync(x.inf);
            x.uncertain = false;
        }
        int changed = sched_informer_poll(x.inf, leader ? 20 : 100);
        if (sched_informer_lists(x.inf) != lists) {
            lists = sched_informer_lists(x.inf);
            sched_log("cache listed at revision %lld%s", (long long)sched_informer_rev(x.inf),
                      sched_informer_compactions(x.inf) != compactions
                          ? " (relist: the watch fell behind a compaction)"
                          : lists > 1 ? " (relist)" : "");
            compactions = sched_informer_compactions(x.inf);
        }
        if (!leader || !sched_informer_synced(x.inf)) continue;
        /* never act on a cache that does not yet show our own last write */
        if (sched_informer_rev(x.inf) < sched_store_last_write_rev(x.s)) continue;
        int64_t now = sched_now_ms();
        if (changed <= 0 && now < next_resync) continue;
        next_resync = now + RESYNC_MS;
        /* a controller that wrote ends the pass: the next one starts from a cache that
         * shows those writes */
        long w0 = x.writes;
        index_owners(&x);
        if (!ctrl_nodes(&x) || x.writes != w0) continue;
        if (!ctrl_deployments(&x) || x.writes != w0) continue;
        if (!ctrl_replicasets(&x) || x.writes != w0) continue;
        ctrl_endpoints(&x);
    }
    sched_log("stopping: resigning (writes %ld)", x.writes);
    sched_election_resign(x.el);
    sched_election_free(x.el);
    sched_informer_free(x.inf);
    json_decref(x.node_seen);
    json_decref(x.by_owner);
    sched_store_close(x.s);
    return 0;
}

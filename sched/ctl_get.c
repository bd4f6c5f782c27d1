/* ctl_get — `plinthctl kube get` (tables, -o json|yaml|name|wide, -l, -w) and `describe`. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/ctl_int.h"

#define MAX_COLS 10

static const char *const headers[SCHED_KIND_COUNT][MAX_COLS] = {
    [SCHED_NODE] = {"NAME", "STATUS", "CPU", "MEMORY", "PODS", "AGE", NULL},
    [SCHED_POD] = {"NAME", "READY", "STATUS", "RESTARTS", "NODE", "AGE", NULL},
    [SCHED_REPLICASET] = {"NAME", "DESIRED", "CURRENT", "READY", "AGE", NULL},
    [SCHED_DEPLOYMENT] = {"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", NULL},
    [SCHED_SERVICE] = {"NAME", "SELECTOR", "PORTS", "AGE", NULL},
    [SCHED_ENDPOINTS] = {"NAME", "ENDPOINTS", "AGE", NULL},
};

static void age(const json_t *obj, char *buf, size_t len)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *ts = sched_obj_str(obj, "metadata.creationTimestamp");
    if (!*ts || !strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        snprintf(buf, len, "<unknown>");
        return;
    }
    long s = (long)difftime(time(NULL), timegm(&tm));
    if (s < 0) s = 0;
    if (s < 120) snprintf(buf, len, "%lds", s);
    else if (s < 7200) snprintf(buf, len, "%ldm", s / 60);
    else if (s < 172800) snprintf(buf, len, "%ldh", s / 3600);
    else snprintf(buf, len, "%ldd", s / 86400);
}

static void join_map(const json_t *m, char *buf, size_t len)
{
    const char *k;
    json_t *v;
    size_t off = 0;
    buf[0] = '\0';
    json_object_foreach((json_t *)m, k, v) {
        int n = snprintf(buf + off, len - off, "%s%s=%s", off ? "," : "", k, json_string_value(v) ? json_string_value(v) : "");
        if (n < 0 || (size_t)n >= len - off) break;
        off += (size_t)n;
    }
    if (!off) snprintf(buf, len, "<none>");
}

/* One table row for an object: strings into cols (each 256 bytes). */
static void row(enum sched_kind k, const json_t *o, char cols[MAX_COLS][256])
{
    size_t i;
    json_t *v;
    snprintf(cols[0], 256, "%s", sched_obj_name(o));
    switch (k) {
    case SCHED_NODE: {
        json_t *c = sched_condition_get(o, "Ready");
        const char *st = json_string_value(json_object_get(c, "status"));
        snprintf(cols[1], 256, "%s%s", st && !strcmp(st, "True") ? "Ready" : "NotReady",
                 json_is_true(sched_obj_get(o, "spec.unschedulable")) ? ",SchedulingDisabled" : "");
        snprintf(cols[2], 256, "%" PRId64 "m", sched_obj_cpu(o, "status.capacity.cpu"));
        snprintf(cols[3], 256, "%" PRId64 "Mi", sched_obj_int(o, "status.capacity.memory", 0) / 1048576);
        snprintf(cols[4], 256, "%" PRId64, sched_obj_int(o, "status.capacity.pods", 0));
        age(o, cols[5], 256);
        break;
    }
    case SCHED_POD: {
        int ready = 0, total = 0, restarts = 0;
        json_array_foreach(sched_obj_get(o, "status.containerStatuses"), i, v) {
            ready += json_is_true(json_object_get(v, "ready"));
            restarts += (int)json_integer_value(json_object_get(v, "restartCount"));
        }
        total = (int)json_array_size(sched_obj_get(o, "spec.containers"));
        snprintf(cols[1], 256, "%d/%d", ready, total);
        const char *phase = sched_obj_str(o, "status.phase");
        json_t *ps = sched_condition_get(o, "PodScheduled");
        const char *reason = json_string_value(json_object_get(ps, "reason"));
        const char *waiting = NULL;
        json_array_foreach(sched_obj_get(o, "status.containerStatuses"), i, v) {
            const char *r = sched_obj_str(v, "state.waiting.reason");
            if (*r) waiting = r;
        }
        snprintf(cols[2], 256, "%s", waiting ? waiting : (!strcmp(phase, "Pending") && reason) ? reason : phase);
        snprintf(cols[3], 256, "%d", restarts);
        snprintf(cols[4], 256, "%s", *sched_obj_str(o, "spec.nodeName") ? sched_obj_str(o, "spec.nodeName") : "<none>");
        age(o, cols[5], 256);
        break;
    }
    case SCHED_REPLICASET:
        snprintf(cols[1], 256, "%" PRId64, sched_obj_int(o, "spec.replicas", 0));
        snprintf(cols[2], 256, "%" PRId64, sched_obj_int(o, "status.replicas", 0));
        snprintf(cols[3], 256, "%" PRId64, sched_obj_int(o, "status.readyReplicas", 0));
        age(o, cols[4], 256);
        break;
    case SCHED_DEPLOYMENT:
        snprintf(cols[1], 256, "%" PRId64 "/%" PRId64, sched_obj_int(o, "status.readyReplicas", 0),
                 sched_obj_int(o, "spec.replicas", 0));
        snprintf(cols[2], 256, "%" PRId64, sched_obj_int(o, "status.updatedReplicas", 0));
        snprintf(cols[3], 256, "%" PRId64, sched_obj_int(o, "status.availableReplicas", 0));
        age(o, cols[4], 256);
        break;
    case SCHED_SERVICE: {
        join_map(sched_obj_get(o, "spec.selector"), cols[1], 256);
        size_t off = 0;
        cols[2][0] = '\0';
        json_array_foreach(sched_obj_get(o, "spec.ports"), i, v) {
            int n = snprintf(cols[2] + off, 256 - off, "%s%" PRId64, off ? "," : "",
                             sched_obj_int(v, "port", 0));
            if (n < 0 || (size_t)n >= 256 - off) break;
            off += (size_t)n;
        }
        age(o, cols[3], 256);
        break;
    }
    case SCHED_ENDPOINTS: {
        size_t off = 0, j;
        json_t *sub, *a;
        cols[1][0] = '\0';
        json_array_foreach(json_object_get(o, "subsets"), i, sub) {
            json_t *port = json_array_get(json_object_get(sub, "ports"), 0);
            json_array_foreach(json_object_get(sub, "addresses"), j, a) {
                int n = snprintf(cols[1] + off, 256 - off, "%s%s:%" PRId64, off ? "," : "",
                                 sched_obj_str(a, "ip"), sched_obj_int(port, "port", 0));
                if (n < 0 || (size_t)n >= 256 - off) break;
                off += (size_t)n;
            }
        }
        if (!off) snprintf(cols[1], 256, "<none>");
        age(o, cols[2], 256);
        break;
    }
    default:
        break;
    }
}

static int ncols(enum sched_kind k)
{
    int n = 0;
    while (n < MAX_COLS && headers[k][n]) n++;
    return n;
}

static void print_table(enum sched_kind k, bool with_ns, json_t **objs, size_t n, bool header)
{
    int nc = ncols(k);
    char (*cells)[MAX_COLS][256] = calloc(n ? n : 1, sizeof(*cells));
    int w[MAX_COLS + 1] = {0};
    if (!cells) return;
    for (int j = 0; j < nc; j++) w[j + 1] = (int)strlen(headers[k][j]);
    w[0] = 9;
    for (size_t i = 0; i < n; i++) {
        row(k, objs[i], cells[i]);
        if ((int)strlen(sched_obj_namespace(objs[i])) > w[0]) w[0] = (int)strlen(sched_obj_namespace(objs[i]));
        for (int j = 0; j < nc; j++)
            if ((int)strlen(cells[i][j]) > w[j + 1]) w[j + 1] = (int)strlen(cells[i][j]);
    }
    if (header) {
        if (with_ns) printf("%-*s   ", w[0], "NAMESPACE");
        for (int j = 0; j < nc; j++) {
            if (j + 1 < nc) printf("%-*s   ", w[j + 1], headers[k][j]);
            else printf("%s\n", headers[k][j]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (with_ns) printf("%-*s   ", w[0], sched_obj_namespace(objs[i]));
        for (int j = 0; j < nc; j++) {
            if (j + 1 < nc) printf("%-*s   ", w[j + 1], cells[i][j]);
            else printf("%s\n", cells[i][j]);
        }
    }
    free(cells);
    fflush(stdout);
}

static bool selected(const struct ctl *c, const json_t *obj)
{
    if (!c->selector) return true;
    json_t *sel = json_object();
    char *copy = strdup(c->selector), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (eq) {
            *eq = '\0';
            json_object_set_new(sel, t, json_string(eq + 1 + (eq[1] == '=')));
        }
    }
    free(copy);
    bool ok = sched_labels_match(sel, sched_obj_get(obj, "metadata.labels"));
    json_decref(sel);
    return ok;
}

/* single: one named object (printed bare with -o json|yaml) rather than a List */
static void emit(const struct ctl *c, enum sched_kind k, json_t **objs, size_t n, bool header,
                 bool single)
{
    const char *o = c->output;
    if (!strcmp(o, "json") || !strcmp(o, "yaml")) {
        if (n == 1 && single) {
            ctl_print_obj(c, objs[0]);
            return;
        }
        json_t *list = json_pack("{sss[]}", "kind", "List", "items");
        for (size_t i = 0; i < n; i++) json_array_append(json_object_get(list, "items"), objs[i]);
        ctl_print_obj(c, list);
        json_decref(list);
    } else if (!strcmp(o, "name")) {
        for (size_t i = 0; i < n; i++) printf("%s/%s\n", sched_kind_resource(k), sched_obj_name(objs[i]));
    } else {
        print_table(k, c->all_ns && sched_kind_namespaced(k), objs, n, header);
    }
}

static volatile sig_atomic_t interrupted;
static void on_int(int sig)
{
    (void)sig;
    interrupted = 1;
}

int ctl_get(struct ctl *c)
{
    enum sched_kind k;
    if (c->nargs < 1) {
        fprintf(stderr, "kube: get: KIND required (pods, nodes, deployments, replicasets, services, endpoints)\n");
        return 2;
    }
    const char *name = NULL;
    char kind[64];
    const char *slash = strchr(c->args[0], '/');
    snprintf(kind, sizeof(kind), "%.*s", slash ? (int)(slash - c->args[0]) : 63, c->args[0]);
    if (slash) name = slash + 1;
    else if (c->nargs >= 2) name = c->args[1];
    if (sched_kind_parse(kind, &k)) {
        fprintf(stderr, "kube: get: unknown kind \"%s\"\n", kind);
        return 2;
    }
    if (c->output && *c->output && strcmp(c->output, "json") && strcmp(c->output, "yaml") &&
        strcmp(c->output, "name") && strcmp(c->output, "wide")) {
        fprintf(stderr, "kube: get: -o must be json, yaml, name or wide\n");
        return 2;
    }
    char prefix[SCHED_KEY_MAX];
    if (name) sched_key(k, ctl_ns(c), name, prefix, sizeof(prefix));
    else sched_key_prefix(k, c->all_ns ? NULL : ctl_ns(c), prefix, sizeof(prefix));
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    int64_t rev = 0;
    int rc = sched_store_list(c->s, prefix, 0, false, &kvs, &n, &rev);
    if (rc) {
        fprintf(stderr, "kube: get: %s\n", sched_store_errmsg(c->s));
        return 1;
    }
    json_t **objs = calloc(n ? n : 1, sizeof(*objs));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (name && strcmp(kvs[i].key, prefix) != 0) continue;
        json_t *o = sched_obj_from_kv(kvs[i].value, kvs[i].value_len, kvs[i].mod_rev);
        if (o && selected(c, o)) objs[m++] = o;
        else json_decref(o);
    }
    sched_kvs_free(kvs, n);
    int exit_code = 0;
    if (name && m == 0 && !c->watch) {
        fprintf(stderr, "kube: get: %s \"%s\" not found\n", sched_kind_resource(k), name);
        exit_code = 1;
    } else if (m == 0 && !c->watch && !*c->output) {
        printf("No resources found.\n");
    } else {
        emit(c, k, objs, m, true, name != NULL);
    }
    for (size_t i = 0; i < m; i++) json_decref(objs[i]);
    free(objs);
    if (!c->watch || exit_code) return exit_code;

    /* -w: print each change as it happens, until interrupted or --timeout */
    signal(SIGINT, on_int);
    signal(SIGTERM, on_int);
    struct sched_watch *w = NULL;
    if (sched_watch_open(c->s, prefix, rev + 1, &w)) {
        fprintf(stderr, "kube: get -w: %s\n", sched_store_errmsg(c->s));
        return 1;
    }
    int64_t until = c->wait_s > 0 ? sched_now_ms() + (int64_t)(c->wait_s * 1000) : 0;
    while (!interrupted && (!until || sched_now_ms() < until)) {
        struct sched_event *evs = NULL;
        size_t ne = 0;
        rc = sched_watch_next(w, 200, &evs, &ne, NULL);
        if (rc) {
            fprintf(stderr, "kube: get -w: %s\n", sched_store_errmsg(c->s));
            exit_code = 1;
            break;
        }
        for (size_t i = 0; i < ne; i++) {
            if (name && strcmp(evs[i].kv.key, prefix) != 0) continue;
            if (evs[i].type == SCHED_EV_DELETE) {
                enum sched_kind kk;
                char ns[SCHED_NAME_MAX + 1], nm[SCHED_NAME_MAX + 1];
                if (!sched_key_parse(evs[i].kv.key, evs[i].kv.key_len, &kk, ns, nm))
                    printf("%s\tdeleted\n", nm);
                continue;
            }
            json_t *o = sched_obj_from_kv(evs[i].kv.value, evs[i].kv.value_len, evs[i].kv.mod_rev);
            if (o && selected(c, o)) emit(c, k, &o, 1, false, true);
            json_decref(o);
        }
        fflush(stdout);
        sched_events_free(evs, ne);
    }
    sched_watch_close(w);
    return exit_code;
}

int ctl_describe(struct ctl *c)
{
    int i = 0;
    enum sched_kind k;
    const char *name;
    if (ctl_kind_name(c, &i, &k, &name)) return 2;
    char key[SCHED_KEY_MAX];
    sched_key(k, ctl_ns(c), name, key, sizeof(key));
    json_t *obj = NULL;
    int rc = sched_store_get_obj(c->s, key, &obj);
    if (rc) {
        fprintf(stderr, "kube: describe: %s \"%s\": %s\n", sched_kind_resource(k), name,
                rc == SCHED_ENOTFOUND ? "not found" : sched_store_errmsg(c->s));
        return 1;
    }
    printf("Key:  %s\n", key);
    sched_yaml_dump(stdout, obj, 0);
    /* what relates to it: a node's pods, a deployment's replicasets, a service's endpoints */
    enum sched_kind rel = k == SCHED_NODE ? SCHED_POD : k == SCHED_DEPLOYMENT ? SCHED_REPLICASET
                        : k == SCHED_REPLICASET ? SCHED_POD : SCHED_KIND_COUNT;
    if (rel != SCHED_KIND_COUNT) {
        char prefix[SCHED_KEY_MAX];
        sched_key_prefix(rel, k == SCHED_NODE ? NULL : ctl_ns(c), prefix, sizeof(prefix));
        struct sched_kv *kvs = NULL;
        size_t n = 0;
        if (sched_store_list(c->s, prefix, 0, false, &kvs, &n, NULL) == 0) {
            json_t **objs = calloc(n ? n : 1, sizeof(*objs));
            size_t m = 0;
            for (size_t j = 0; j < n; j++) {
                json_t *o = sched_obj_from_kv(kvs[j].value, kvs[j].value_len, kvs[j].mod_rev);
                if (!o) continue;
                bool mine = k == SCHED_NODE ? !strcmp(sched_obj_str(o, "spec.nodeName"), name)
                                            : !strcmp(sched_obj_str(json_array_get(sched_obj_get(o, "metadata.ownerReferences"), 0), "uid"),
                                                      sched_obj_str(obj, "metadata.uid"));
                if (mine) objs[m++] = o;
                else json_decref(o);
            }
            printf("\n%s:\n", rel == SCHED_POD ? "Pods" : "ReplicaSets");
            if (m) print_table(rel, false, objs, m, true);
            else printf("  <none>\n");
            for (size_t j = 0; j < m; j++) json_decref(objs[j]);
            free(objs);
            sched_kvs_free(kvs, n);
        }
    }
    json_decref(obj);
    return 0;
}

/* ctl — plinthctl's workload verbs ("plinthctl kube VERB ..."): flags, dispatch, and the
 * verbs that write: apply, create, delete, run, scale, cordon, uncordon. */
#include "sched/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/ctl_int.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plinthctl kube VERB [args] [flags]\n"
            "Workload verbs (objects are JSON under /registry/ in the store):\n"
            "  apply -f FILE            create or update the objects in FILE (YAML or JSON,\n"
            "                           several documents; - reads stdin)\n"
            "  create -f FILE           create the objects; fails for one that exists\n"
            "  get KIND [NAME]          KIND: pods, nodes, deployments, replicasets, services,\n"
            "                           endpoints (-o json|yaml|wide|name, -w to watch, -l k=v)\n"
            "  describe KIND NAME       the object and what relates to it\n"
            "  delete KIND NAME...      delete objects (a Deployment takes its pods with it)\n"
            "  run NAME --image I [--replicas N] [--restart Always|OnFailure|Never]\n"
            "      [--requests cpu=100m,memory=64Mi] [--labels k=v] [-- CMD ARGS...]\n"
            "                           a Pod, or with --replicas a Deployment\n"
            "  scale KIND/NAME --replicas N\n"
            "  rollout status|history|undo deployment/NAME [--to-revision N] [--timeout S]\n"
            "  cordon NODE / uncordon NODE\n"
            "  check [-w] [--timeout S]  audit placement: no pod bound twice, no node over\n"
            "                           capacity (-w: watch every change); exit 1 on a violation\n"
            "flags: -n NS (default \"default\"), -A (all namespaces), --endpoints URLS,\n"
            "       --cacert FILE, --cert FILE, --key FILE, --command-timeout MS\n");
}

const char *ctl_ns(const struct ctl *c)
{
    return c->ns ? c->ns : "default";
}

void ctl_print_obj(const struct ctl *c, const json_t *obj)
{
    if (c->output && !strcmp(c->output, "yaml")) {
        sched_yaml_dump(stdout, obj, 0);
    } else {
        char *t = json_dumps(obj, JSON_INDENT(2));
        if (t) puts(t);
        free(t);
    }
}

int ctl_kind_name(struct ctl *c, int *i, enum sched_kind *k, const char **name)
{
    if (*i >= c->nargs) {
        fprintf(stderr, "kube: missing KIND/NAME\n");
        return 2;
    }
    const char *a = c->args[*i];
    const char *slash = strchr(a, '/');
    char kind[64];
    if (slash) {
        snprintf(kind, sizeof(kind), "%.*s", (int)(slash - a), a);
        *name = slash + 1;
    } else {
        snprintf(kind, sizeof(kind), "%s", a);
        if (*i + 1 >= c->nargs) {
            fprintf(stderr, "kube: missing NAME after %s\n", a);
            return 2;
        }
        *name = c->args[*i + 1];
        (*i)++;
    }
    if (sched_kind_parse(kind, k)) {
        fprintf(stderr, "kube: unknown kind \"%s\"\n", kind);
        return 2;
    }
    (*i)++;
    return 0;
}

int ctl_update(struct ctl *c, const char *key, int (*fn)(json_t *obj, void *ud), void *ud)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        json_t *obj = NULL;
        int rc = sched_store_get_obj(c->s, key, &obj);
        if (rc == SCHED_ENOTFOUND) {
            fprintf(stderr, "kube: %s not found\n", key);
            return 1;
        }
        if (rc) {
            fprintf(stderr, "kube: %s\n", sched_store_errmsg(c->s));
            return 1;
        }
        int r = fn(obj, ud);
        if (r == 1) {
            json_decref(obj);
            return 0;
        }
        if (r > 1) {
            json_decref(obj);
            return r;
        }
        char err[512];
        if (sched_obj_validate(obj, err, sizeof(err))) {
            fprintf(stderr, "kube: %s\n", err);
            json_decref(obj);
            return 1;
        }
        rc = sched_store_update_obj(c->s, obj, NULL);
        json_decref(obj);
        if (rc == 0) return 0;
        if (rc != SCHED_ECONFLICT) {
            fprintf(stderr, "kube: %s\n", sched_store_errmsg(c->s));
            return 1;
        }
    }
    fprintf(stderr, "kube: %s: too many conflicting updates, try again\n", key);
    return 1;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (f != stdin) fclose(f);
    *len = n;
    return buf;
}

/* apply: the applied document replaces spec and labels; the store keeps identity
 * (uid, creation time), status, and annotations the document does not set. */
static json_t *merge_for_apply(const json_t *cur, const json_t *doc)
{
    json_t *out = json_deep_copy(doc);
    json_t *md = json_object_get(out, "metadata");
    const char *keep[] = {"uid", "creationTimestamp", "resourceVersion", "ownerReferences"};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        json_t *v = sched_obj_get(cur, "metadata");
        v = json_object_get(v, keep[i]);
        if (v) json_object_set(md, keep[i], v);
    }
    json_t *ann = json_deep_copy(sched_obj_get(cur, "metadata.annotations"));
    if (ann) {
        json_object_update(ann, json_object_get(md, "annotations"));
        json_object_set_new(md, "annotations", ann);
    }
    json_t *st = json_object_get(cur, "status");
    if (st && !json_object_get(doc, "status")) json_object_set(out, "status", st);
    else if (st && json_object_size(json_object_get(doc, "status")) == 0) json_object_set(out, "status", st);
    /* nodes keep what their agent reports */
    enum sched_kind k;
    if (!sched_obj_kind(cur, &k) && (k == SCHED_NODE || k == SCHED_POD)) json_object_set(out, "status", st);
    /* a pod's binding is not the manifest's to change */
    if (!sched_obj_kind(cur, &k) && k == SCHED_POD && *sched_obj_str(cur, "spec.nodeName"))
        sched_obj_set(out, "spec.nodeName", json_string(sched_obj_str(cur, "spec.nodeName")));
    return out;
}

static int apply_or_create(struct ctl *c, bool create_only)
{
    if (!c->file) {
        fprintf(stderr, "kube: %s: -f FILE is required\n", create_only ? "create" : "apply");
        return 2;
    }
    size_t len = 0;
    char *text = read_all(c->file, &len);
    if (!text) {
        fprintf(stderr, "kube: %s: %s\n", c->file, strerror(errno));
        return 1;
    }
    json_t *docs = NULL;
    char err[512];
    int rc = sched_parse_documents(text, len, &docs, err, sizeof(err));
    free(text);
    if (rc) {
        fprintf(stderr, "kube: %s: %s\n", c->file, err);
        return 1;
    }
    /* validate everything first: a bad document refuses the whole file */
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
        if (c->ns && !json_object_get(json_object_get(doc, "metadata"), "namespace") &&
            json_is_object(json_object_get(doc, "metadata")))
            json_object_set_new(json_object_get(doc, "metadata"), "namespace", json_string(c->ns));
        if (sched_obj_validate(doc, err, sizeof(err))) {
            fprintf(stderr, "kube: %s: document %zu: %s\n", c->file, i + 1, err);
            json_decref(docs);
            return 1;
        }
    }
    int exit_code = 0;
    json_array_foreach(docs, i, doc) {
        enum sched_kind k;
        sched_obj_kind(doc, &k);
        char key[SCHED_KEY_MAX];
        sched_obj_key(doc, key, sizeof(key));
        const char *what = NULL;
        for (int attempt = 0; attempt < 10 && !what; attempt++) {
            json_t *cur = NULL;
            rc = create_only ? SCHED_ENOTFOUND : sched_store_get_obj(c->s, key, &cur);
            if (rc == SCHED_ENOTFOUND) {
                json_t *obj = json_deep_copy(doc);
                rc = sched_store_create_obj(c->s, obj, NULL);
                json_decref(obj);
                if (rc == 0) what = "created";
                else if (rc == SCHED_EEXIST && !create_only) continue;
            } else if (rc == 0) {
                json_t *obj = merge_for_apply(cur, doc);
                json_t *a = json_deep_copy(obj), *b = json_deep_copy(cur);
                json_object_del(json_object_get(a, "metadata"), "resourceVersion");
                json_object_del(json_object_get(b, "metadata"), "resourceVersion");
                if (json_equal(a, b)) {
                    what = "unchanged";
                } else {
                    rc = sched_store_update_obj(c->s, obj, NULL);
                    if (rc == 0) what = "configured";
                }
                json_decref(a);
                json_decref(b);
                json_decref(obj);
                json_decref(cur);
                if (rc == SCHED_ECONFLICT || rc == SCHED_ENOTFOUND) continue;
            }
            if (rc && !what) break;
        }
        if (what) {
            printf("%s/%s %s\n", sched_kind_resource(k), sched_obj_name(doc), what);
        } else {
            fprintf(stderr, "kube: %s/%s: %s\n", sched_kind_resource(k), sched_obj_name(doc),
                    rc == SCHED_EEXIST ? "already exists" : sched_store_errmsg(c->s));
            exit_code = 1;
        }
    }
    json_decref(docs);
    return exit_code;
}

static int do_delete(struct ctl *c)
{
    int i = 0, exit_code = 0;
    if (c->nargs == 0) {
        fprintf(stderr, "kube: delete: KIND NAME... required\n");
        return 2;
    }
    enum sched_kind k;
    const char *first = c->args[0];
    bool slash_form = strchr(first, '/') != NULL;
    if (!slash_form) {
        if (sched_kind_parse(first, &k)) {
            fprintf(stderr, "kube: unknown kind \"%s\"\n", first);
            return 2;
        }
        i = 1;
        if (i >= c->nargs) {
            fprintf(stderr, "kube: delete: NAME required\n");
            return 2;
        }
    }
    for (; i < c->nargs; i++) {
        const char *name = c->args[i];
        if (slash_form) {
            int j = i;
            if (ctl_kind_name(c, &j, &k, &name)) return 2;
        }
        char key[SCHED_KEY_MAX];
        sched_key(k, ctl_ns(c), name, key, sizeof(key));
        int rc = sched_store_delete(c->s, key, -1, NULL);
        if (rc == 0) {
            printf("%s \"%s\" deleted\n", sched_kind_resource(k), name);
        } else {
            fprintf(stderr, "kube: delete %s \"%s\": %s\n", sched_kind_resource(k), name,
                    rc == SCHED_ENOTFOUND ? "not found" : sched_store_errmsg(c->s));
            exit_code = 1;
        }
    }
    return exit_code;
}

static json_t *kv_map(const char *s)
{
    json_t *m = json_object();
    char *copy = strdup(s ? s : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) continue;
        *eq = '\0';
        json_object_set_new(m, t, json_string(eq + 1));
    }
    free(copy);
    return m;
}

static int do_run(struct ctl *c)
{
    if (c->nargs < 1 || !c->image) {
        fprintf(stderr, "kube: run: NAME and --image are required\n");
        return 2;
    }
    const char *name = c->args[0];
    json_t *labels = c->labels ? kv_map(c->labels) : json_pack("{ss}", "run", name);
    json_t *ct = json_pack("{ssss}", "name", name, "image", c->image);
    if (c->ncmd > 0) {
        json_t *cmd = json_array();
        for (int i = 0; i < c->ncmd; i++) json_array_append_new(cmd, json_string(c->cmd[i]));
        json_object_set_new(ct, "command", cmd);
    }
    if (c->requests) json_object_set_new(ct, "resources", json_pack("{so}", "requests", kv_map(c->requests)));
    json_t *spec = json_pack("{s[o]}", "containers", ct);
    if (c->restart) json_object_set_new(spec, "restartPolicy", json_string(c->restart));
    json_t *obj;
    if (c->replicas >= 0) {
        obj = json_pack("{ss s{ssss} s{si s{sO} s{s{sO} so}}}", "kind", "Deployment", "metadata",
                        "name", name, "namespace", ctl_ns(c), "spec", "replicas", c->replicas,
                        "selector", "matchLabels", labels, "template", "metadata", "labels", labels,
                        "spec", spec);
    } else {
        obj = json_pack("{ss s{sssssO} so}", "kind", "Pod", "metadata", "name", name, "namespace",
                        ctl_ns(c), "labels", labels, "spec", spec);
    }
    json_decref(labels);
    char err[512];
    if (!obj || sched_obj_validate(obj, err, sizeof(err))) {
        fprintf(stderr, "kube: run: %s\n", obj ? err : "out of memory");
        json_decref(obj);
        return 1;
    }
    int rc = sched_store_create_obj(c->s, obj, NULL);
    if (rc) fprintf(stderr, "kube: run: %s\n", rc == SCHED_EEXIST ? "already exists" : sched_store_errmsg(c->s));
    else printf("%s/%s created\n", c->replicas >= 0 ? "deployment" : "pod", name);
    json_decref(obj);
    return rc ? 1 : 0;
}

static int set_replicas(json_t *obj, void *ud)
{
    int n = *(int *)ud;
    if (sched_obj_int(obj, "spec.replicas", -1) == n) return 1;
    sched_obj_set(obj, "spec.replicas", json_integer(n));
    return 0;
}

static int do_scale(struct ctl *c)
{
    int i = 0;
    enum sched_kind k;
    const char *name;
    if (ctl_kind_name(c, &i, &k, &name)) return 2;
    if (c->replicas < 0 || (k != SCHED_DEPLOYMENT && k != SCHED_REPLICASET)) {
        fprintf(stderr, "kube: scale: deployment/NAME or replicaset/NAME and --replicas N required\n");
        return 2;
    }
    char key[SCHED_KEY_MAX];
    sched_key(k, ctl_ns(c), name, key, sizeof(key));
    int rc = ctl_update(c, key, set_replicas, &c->replicas);
    if (rc == 0) printf("%s/%s scaled\n", sched_kind_resource(k), name);
    return rc;
}

static int set_unschedulable(json_t *obj, void *ud)
{
    bool v = *(bool *)ud;
    if (json_is_true(sched_obj_get(obj, "spec.unschedulable")) == v) return 1;
    sched_obj_set(obj, "spec.unschedulable", json_boolean(v));
    return 0;
}

static int do_cordon(struct ctl *c, bool cordon)
{
    if (c->nargs != 1) {
        fprintf(stderr, "kube: %s NODE\n", cordon ? "cordon" : "uncordon");
        return 2;
    }
    char key[SCHED_KEY_MAX];
    sched_key(SCHED_NODE, NULL, c->args[0], key, sizeof(key));
    int rc = ctl_update(c, key, set_unschedulable, &cordon);
    if (rc == 0) printf("node/%s %s\n", c->args[0], cordon ? "cordoned" : "uncordoned");
    return rc;
}

/* Parses the command line into c. Returns 0, or 2 on a usage error. */
static int parse(struct ctl *c, int argc, char **argv, const char **verb)
{
    static const char *const valued[] = {"--endpoints", "--cacert", "--cert", "--key", "-n",
                                         "--namespace", "-o", "--output", "-f", "--filename",
                                         "-l", "--selector", "--image", "--replicas",
                                         "--to-revision", "--restart", "--requests", "--labels",
                                         "--timeout", "--command-timeout", "--dial-timeout",
                                         "--write-out"};
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--")) {
            c->cmd = argv + i + 1;
            c->ncmd = argc - i - 1;
            break;
        }
        if (!strcmp(a, "-A") || !strcmp(a, "--all-namespaces")) { c->all_ns = true; continue; }
        if (!strcmp(a, "-w") || !strcmp(a, "--watch")) {
            /* plinthctl's global "-w FORMAT" (etcdctl's --write-out) may come through too */
            const char *nx = i + 1 < argc ? argv[i + 1] : "";
            if (!strcmp(a, "-w") && (!strcmp(nx, "json") || !strcmp(nx, "yaml") ||
                                     !strcmp(nx, "table") || !strcmp(nx, "simple"))) {
                c->output = strcmp(nx, "json") && strcmp(nx, "yaml") ? "" : nx;
                i++;
            } else {
                c->watch = true;
            }
            continue;
        }
        if (!strcmp(a, "--hex")) continue; /* a plinthctl global without meaning here */
        if (!strcmp(a, "--command")) continue; /* kubectl's "--command -- CMD" */
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        int which = -1;
        const char *val = NULL;
        for (size_t f = 0; f < sizeof(valued) / sizeof(valued[0]); f++) {
            size_t n = strlen(valued[f]);
            if (!strncmp(a, valued[f], n) && (a[n] == '=' || a[n] == '\0')) {
                which = (int)f;
                val = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
                break;
            }
        }
        if (which >= 0) {
            if (!val) {
                fprintf(stderr, "kube: flag %s needs a value\n", a);
                return 2;
            }
            switch (which) {
            case 0: c->endpoints = val; break;
            case 1: c->cacert = val; break;
            case 2: c->cert = val; break;
            case 3: c->key = val; break;
            case 4: case 5: c->ns = val; break;
            case 6: case 7: c->output = val; break;
            case 8: case 9: c->file = val; break;
            case 10: case 11: c->selector = val; break;
            case 12: c->image = val; break;
            case 13: c->replicas = atoi(val); break;
            case 14: c->to_revision = atoi(val); break;
            case 15: c->restart = val; break;
            case 16: c->requests = val; break;
            case 17: c->labels = val; break;
            case 18: c->wait_s = atof(val); break;
            case 21:
                c->output = strcmp(val, "json") && strcmp(val, "yaml") ? "" : val;
                break;
            case 19: case 20: {
                /* etcdctl style "5s" or plain milliseconds */
                char *end;
                double d = strtod(val, &end);
                c->timeout_ms = !strcmp(end, "s") ? (int)(d * 1000) : (int)d;
                break;
            }
            }
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kube: unknown flag %s\n", a);
            return 2;
        }
        if (!*verb) *verb = a;
        else if (c->nargs < CTL_MAX_ARGS) c->args[c->nargs++] = a;
    }
    return 0;
}

int sched_ctl_main(int argc, char **argv)
{
    struct ctl c = {.replicas = -1, .output = "", .endpoints = "http://127.0.0.1:2379"};
    const char *verb = NULL;
    const char *env = getenv("PLINTHCTL_ENDPOINTS");
    if (!env) env = getenv("ETCDCTL_ENDPOINTS");
    if (env && *env) c.endpoints = env;
    /* the same environment plinthctl and etcdctl read */
    if ((env = getenv("ETCDCTL_CACERT")) && *env) c.cacert = env;
    if ((env = getenv("ETCDCTL_CERT")) && *env) c.cert = env;
    if ((env = getenv("ETCDCTL_KEY")) && *env) c.key = env;
    if (parse(&c, argc, argv, &verb)) return 2;
    if (!verb) {
        usage(stderr);
        return 2;
    }
    static const char *const verbs[] = {"apply", "create", "get", "describe", "delete", "run",
                                        "scale", "rollout", "cordon", "uncordon", "check"};
    bool known = false;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) known |= !strcmp(verb, verbs[i]);
    if (!known) {
        fprintf(stderr, "kube: unknown verb \"%s\"\n", verb);
        usage(stderr);
        return 2;
    }
    char err[512];
    struct sched_store_opts o = {.endpoints = c.endpoints, .ca_file = c.cacert,
                                 .cert_file = c.cert, .key_file = c.key,
                                 .timeout_ms = c.timeout_ms, .retry_ms = 10000};
    if (sched_store_open(&o, &c.s, err, sizeof(err))) {
        fprintf(stderr, "kube: %s\n", err);
        return 1;
    }
    int rc;
    if (!strcmp(verb, "apply")) rc = apply_or_create(&c, false);
    else if (!strcmp(verb, "create")) rc = apply_or_create(&c, true);
    else if (!strcmp(verb, "get")) rc = ctl_get(&c);
    else if (!strcmp(verb, "describe")) rc = ctl_describe(&c);
    else if (!strcmp(verb, "delete")) rc = do_delete(&c);
    else if (!strcmp(verb, "run")) rc = do_run(&c);
    else if (!strcmp(verb, "scale")) rc = do_scale(&c);
    else if (!strcmp(verb, "rollout")) rc = ctl_rollout(&c);
    else if (!strcmp(verb, "check")) rc = ctl_check(&c);
    else if (!strcmp(verb, "cordon")) rc = do_cordon(&c, true);
    else rc = do_cordon(&c, false);
    sched_store_close(c.s);
    fflush(stdout);
    return rc;
}

/* validate — checks workload objects field by field, names the first bad field, and fills
 * defaults (namespace, quantities as integers, restart policy, rollout strategy). */
#include "sched/objects.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vctx {
    char *err;
    size_t errlen;
    char who[2 * SCHED_NAME_MAX + 64];
};

static int fail(struct vctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct vctx *c, const char *field, const char *fmt, ...)
{
    if (c->err && c->errlen) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "%s: %s: %s", c->who, field, msg);
    }
    return SCHED_EINVAL;
}

/* DNS-1123 subdomain (names) or label (namespaces, container names) as Kubernetes checks. */
static bool valid_name(const char *s, size_t max, bool dots)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = islower(ch) || isdigit(ch) || ch == '-' || (dots && ch == '.');
        if (!ok) return false;
    }
    return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[n - 1]);
}

static int check_string_map(struct vctx *c, json_t *m, const char *field)
{
    const char *k;
    json_t *v;
    if (!m || json_is_null(m)) return 0;
    if (!json_is_object(m)) return fail(c, field, "must be a map of strings");
    json_object_foreach(m, k, v) {
        if (!*k || strlen(k) > 253) return fail(c, field, "bad key \"%s\"", k);
        if (!json_is_string(v)) return fail(c, field, "value of \"%s\" must be a string", k);
    }
    return 0;
}

static int check_string_array(struct vctx *c, json_t *a, const char *field)
{
    size_t i;
    json_t *v;
    if (!a || json_is_null(a)) return 0;
    if (!json_is_array(a)) return fail(c, field, "must be a list of strings");
    json_array_foreach(a, i, v) if (!json_is_string(v))
        return fail(c, field, "item %zu must be a string", i);
    return 0;
}

int sched_parse_cpu(const json_t *v, int64_t *milli)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > INT64_MAX / 1000)
            return SCHED_EINVAL;
        *milli = (int64_t)json_integer_value(v) * 1000;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v) * 1000.0;
        if (!(d >= 0 && d < 9e15)) return SCHED_EINVAL;
        *milli = (int64_t)llround(d);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s) return SCHED_EINVAL;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || d < 0 || d > 9e12) return SCHED_EINVAL;
    if (!strcmp(end, "m")) *milli = (int64_t)llround(d);
    else if (!*end) *milli = (int64_t)llround(d * 1000.0);
    else return SCHED_EINVAL;
    return 0;
}

int sched_parse_memory(const json_t *v, int64_t *bytes)
{
    static const struct { const char *suf; double mul; } sufs[] = {
        {"", 1}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
        {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    };
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) return SCHED_EINVAL;
        *bytes = (int64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s) return SCHED_EINVAL;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || d < 0) return SCHED_EINVAL;
    for (size_t i = 0; i < sizeof(sufs) / sizeof(sufs[0]); i++)
        if (!strcmp(end, sufs[i].suf)) {
            double b = d * sufs[i].mul;
            if (b > 9e18) return SCHED_EINVAL;
            *bytes = (int64_t)llround(b);
            return 0;
        }
    return SCHED_EINVAL;
}

/* Normalises a map of quantities (requests, limits, capacity) in place. */
static int check_quantities(struct vctx *c, json_t *m, const char *field)
{
    char f[160];
    const char *k;
    json_t *v;
    if (!m || json_is_null(m)) return 0;
    if (!json_is_object(m)) return fail(c, field, "must be a map");
    json_object_foreach(m, k, v) {
        int64_t q;
        snprintf(f, sizeof(f), "%s.%s", field, k);
        if (!strcmp(k, "cpu")) {
            if (sched_parse_cpu(v, &q)) return fail(c, f, "bad cpu quantity (e.g. 500m or 2)");
        } else if (!strcmp(k, "memory")) {
            if (sched_parse_memory(v, &q)) return fail(c, f, "bad memory quantity (e.g. 128Mi)");
        } else if (!strcmp(k, "pods")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return fail(c, f, "must be a non-negative integer");
            q = json_integer_value(v);
        } else {
            return fail(c, f, "unknown resource (cpu, memory, pods)");
        }
        /* cpu is kept as "<n>m" so that a second validation reads the same amount */
        if (!strcmp(k, "cpu")) {
            char mbuf[32];
            snprintf(mbuf, sizeof(mbuf), "%lldm", (long long)q);
            json_object_set_new(m, k, json_string(mbuf));
        } else {
            json_object_set_new(m, k, json_integer(q));
        }
    }
    return 0;
}

static int check_effect(struct vctx *c, json_t *e, const char *field, bool empty_ok)
{
    const char *s = json_string_value(e);
    if (!e && empty_ok) return 0;
    if (!s) return fail(c, field, "required");
    if ((empty_ok && !*s) || !strcmp(s, "NoSchedule") || !strcmp(s, "PreferNoSchedule") ||
        !strcmp(s, "NoExecute"))
        return 0;
    return fail(c, field, "must be NoSchedule, PreferNoSchedule or NoExecute");
}

static int check_pod_spec(struct vctx *c, json_t *spec, const char *pre)
{
    char f[256];
    size_t i, j;
    json_t *ct, *v;
    int rc;
    if (!json_is_object(spec)) return fail(c, pre, "required");
    json_t *cts = json_object_get(spec, "containers");
    snprintf(f, sizeof(f), "%s.containers", pre);
    if (!json_is_array(cts) || json_array_size(cts) == 0) return fail(c, f, "at least one container is required");
    json_array_foreach(cts, i, ct) {
        char cf[200];
        snprintf(cf, sizeof(cf), "%s.containers[%zu]", pre, i);
        if (!json_is_object(ct)) return fail(c, cf, "must be an object");
        const char *name = json_string_value(json_object_get(ct, "name"));
        snprintf(f, sizeof(f), "%s.name", cf);
        if (!name) return fail(c, f, "required");
        if (!valid_name(name, 63, false)) return fail(c, f, "\"%s\" is not a valid name (lower-case letters, digits, '-')", name);
        for (j = 0; j < i; j++)
            if (!strcmp(name, json_string_value(json_object_get(json_array_get(cts, j), "name"))))
                return fail(c, f, "duplicate name \"%s\"", name);
        snprintf(f, sizeof(f), "%s.image", cf);
        v = json_object_get(ct, "image");
        if (!json_is_string(v) || !*json_string_value(v)) return fail(c, f, "required");
        snprintf(f, sizeof(f), "%s.command", cf);
        if ((rc = check_string_array(c, json_object_get(ct, "command"), f))) return rc;
        snprintf(f, sizeof(f), "%s.args", cf);
        if ((rc = check_string_array(c, json_object_get(ct, "args"), f))) return rc;
        json_t *env = json_object_get(ct, "env");
        if (env && !json_is_array(env)) {
            snprintf(f, sizeof(f), "%s.env", cf);
            return fail(c, f, "must be a list");
        }
        json_array_foreach(env, j, v) {
            snprintf(f, sizeof(f), "%s.env[%zu].name", cf, j);
            if (!json_is_string(json_object_get(v, "name"))) return fail(c, f, "required");
            json_t *val = json_object_get(v, "value");
            snprintf(f, sizeof(f), "%s.env[%zu].value", cf, j);
            if (val && !json_is_string(val)) return fail(c, f, "must be a string");
        }
        json_t *res = json_object_get(ct, "resources");
        if (res) {
            snprintf(f, sizeof(f), "%s.resources", cf);
            if (!json_is_object(res)) return fail(c, f, "must be an object");
            snprintf(f, sizeof(f), "%s.resources.requests", cf);
            if ((rc = check_quantities(c, json_object_get(res, "requests"), f))) return rc;
            snprintf(f, sizeof(f), "%s.resources.limits", cf);
            if ((rc = check_quantities(c, json_object_get(res, "limits"), f))) return rc;
        }
    }
    snprintf(f, sizeof(f), "%s.nodeSelector", pre);
    if ((rc = check_string_map(c, json_object_get(spec, "nodeSelector"), f))) return rc;
    json_t *tols = json_object_get(spec, "tolerations");
    snprintf(f, sizeof(f), "%s.tolerations", pre);
    if (tols && !json_is_array(tols)) return fail(c, f, "must be a list");
    json_array_foreach(tols, i, v) {
        const char *op = json_string_value(json_object_get(v, "operator"));
        snprintf(f, sizeof(f), "%s.tolerations[%zu].operator", pre, i);
        if (json_object_get(v, "operator") && (!op || (strcmp(op, "Equal") && strcmp(op, "Exists"))))
            return fail(c, f, "must be Equal or Exists");
        json_t *key = json_object_get(v, "key");
        snprintf(f, sizeof(f), "%s.tolerations[%zu].key", pre, i);
        if (key && !json_is_string(key)) return fail(c, f, "must be a string");
        if (!key && (!op || strcmp(op, "Exists"))) return fail(c, f, "required unless operator is Exists");
        snprintf(f, sizeof(f), "%s.tolerations[%zu].effect", pre, i);
        if ((rc = check_effect(c, json_object_get(v, "effect"), f, true))) return rc;
    }
    json_t *rp = json_object_get(spec, "restartPolicy");
    snprintf(f, sizeof(f), "%s.restartPolicy", pre);
    if (!rp) json_object_set_new(spec, "restartPolicy", json_string("Always"));
    else if (!json_is_string(rp) || (strcmp(json_string_value(rp), "Always") &&
                                     strcmp(json_string_value(rp), "OnFailure") &&
                                     strcmp(json_string_value(rp), "Never")))
        return fail(c, f, "must be Always, OnFailure or Never");
    json_t *nn = json_object_get(spec, "nodeName");
    snprintf(f, sizeof(f), "%s.nodeName", pre);
    if (nn && !json_is_null(nn) && !json_is_string(nn)) return fail(c, f, "must be a string");
    return 0;
}

static int check_node(struct vctx *c, json_t *o)
{
    size_t i;
    json_t *t;
    int rc;
    json_t *spec = json_object_get(o, "spec");
    if (!spec) json_object_set_new(o, "spec", spec = json_object());
    if (!json_is_object(spec)) return fail(c, "spec", "must be an object");
    json_t *u = json_object_get(spec, "unschedulable");
    if (u && !json_is_boolean(u)) return fail(c, "spec.unschedulable", "must be true or false");
    json_t *taints = json_object_get(spec, "taints");
    if (taints && !json_is_array(taints)) return fail(c, "spec.taints", "must be a list");
    json_array_foreach(taints, i, t) {
        char f[64];
        snprintf(f, sizeof(f), "spec.taints[%zu].key", i);
        if (!json_is_string(json_object_get(t, "key"))) return fail(c, f, "required");
        snprintf(f, sizeof(f), "spec.taints[%zu].value", i);
        json_t *v = json_object_get(t, "value");
        if (v && !json_is_string(v)) return fail(c, f, "must be a string");
        snprintf(f, sizeof(f), "spec.taints[%zu].effect", i);
        if ((rc = check_effect(c, json_object_get(t, "effect"), f, false))) return rc;
    }
    json_t *cap = sched_obj_get(o, "status.capacity");
    if (!json_is_object(cap)) return fail(c, "status.capacity", "required (cpu, memory, pods)");
    if ((rc = check_quantities(c, cap, "status.capacity"))) return rc;
    if (!json_object_get(cap, "cpu")) return fail(c, "status.capacity.cpu", "required");
    if (!json_object_get(cap, "memory")) return fail(c, "status.capacity.memory", "required");
    if (!json_object_get(cap, "pods")) json_object_set_new(cap, "pods", json_integer(110));
    return 0;
}

static int check_selector_template(struct vctx *c, json_t *spec)
{
    int rc;
    json_t *r = json_object_get(spec, "replicas");
    if (!r) json_object_set_new(spec, "replicas", json_integer(1));
    else if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > 100000)
        return fail(c, "spec.replicas", "must be an integer from 0 to 100000");
    json_t *ml = sched_obj_get(spec, "selector.matchLabels");
    if (!json_is_object(ml) || json_object_size(ml) == 0)
        return fail(c, "spec.selector.matchLabels", "required (a non-empty map)");
    if ((rc = check_string_map(c, ml, "spec.selector.matchLabels"))) return rc;
    json_t *tmpl = json_object_get(spec, "template");
    if (!json_is_object(tmpl)) return fail(c, "spec.template", "required");
    json_t *labels = sched_obj_get(tmpl, "metadata.labels");
    if ((rc = check_string_map(c, labels, "spec.template.metadata.labels"))) return rc;
    if (!sched_labels_match(ml, labels))
        return fail(c, "spec.template.metadata.labels", "must match spec.selector.matchLabels");
    return check_pod_spec(c, json_object_get(tmpl, "spec"), "spec.template.spec");
}

static int check_int_or_percent(struct vctx *c, json_t *v, const char *field)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) return fail(c, field, "must not be negative");
        return 0;
    }
    const char *s = json_string_value(v);
    char *end;
    if (s) {
        long p = strtol(s, &end, 10);
        if (end != s && !strcmp(end, "%") && p >= 0 && p <= 100) return 0;
    }
    return fail(c, field, "must be an integer or a percentage such as 25%%");
}

static int check_deployment(struct vctx *c, json_t *spec)
{
    int rc;
    if ((rc = check_selector_template(c, spec))) return rc;
    json_t *st = json_object_get(spec, "strategy");
    if (!st) json_object_set_new(spec, "strategy", st = json_object());
    if (!json_is_object(st)) return fail(c, "spec.strategy", "must be an object");
    json_t *type = json_object_get(st, "type");
    if (!type) json_object_set_new(st, "type", type = json_string("RollingUpdate"));
    if (!json_is_string(type) || (strcmp(json_string_value(type), "RollingUpdate") &&
                                  strcmp(json_string_value(type), "Recreate")))
        return fail(c, "spec.strategy.type", "must be RollingUpdate or Recreate");
    if (!strcmp(json_string_value(type), "RollingUpdate")) {
        json_t *ru = json_object_get(st, "rollingUpdate");
        if (!ru) json_object_set_new(st, "rollingUpdate", ru = json_object());
        if (!json_is_object(ru)) return fail(c, "spec.strategy.rollingUpdate", "must be an object");
        if (!json_object_get(ru, "maxSurge")) json_object_set_new(ru, "maxSurge", json_string("25%"));
        if (!json_object_get(ru, "maxUnavailable"))
            json_object_set_new(ru, "maxUnavailable", json_string("25%"));
        json_t *ms = json_object_get(ru, "maxSurge"), *mu = json_object_get(ru, "maxUnavailable");
        if ((rc = check_int_or_percent(c, ms, "spec.strategy.rollingUpdate.maxSurge"))) return rc;
        if ((rc = check_int_or_percent(c, mu, "spec.strategy.rollingUpdate.maxUnavailable")))
            return rc;
        bool ms0 = json_is_integer(ms) ? json_integer_value(ms) == 0 : atoi(json_string_value(ms)) == 0;
        bool mu0 = json_is_integer(mu) ? json_integer_value(mu) == 0 : atoi(json_string_value(mu)) == 0;
        if (ms0 && mu0)
            return fail(c, "spec.strategy.rollingUpdate.maxUnavailable",
                        "may not be 0 when maxSurge is 0");
    }
    json_t *h = json_object_get(spec, "revisionHistoryLimit");
    if (!h) json_object_set_new(spec, "revisionHistoryLimit", json_integer(10));
    else if (!json_is_integer(h) || json_integer_value(h) < 0)
        return fail(c, "spec.revisionHistoryLimit", "must be a non-negative integer");
    return 0;
}

static int check_service(struct vctx *c, json_t *o, json_t *spec)
{
    size_t i;
    json_t *p;
    int rc;
    (void)o;
    if ((rc = check_string_map(c, json_object_get(spec, "selector"), "spec.selector"))) return rc;
    json_t *ports = json_object_get(spec, "ports");
    json_t *port = json_object_get(spec, "port");
    if (!ports && port) {
        /* shorthand: spec.port: 80 */
        ports = json_pack("[{sO}]", "port", port);
        json_object_set_new(spec, "ports", ports);
        json_object_del(spec, "port");
    }
    if (!json_is_array(ports) || json_array_size(ports) == 0)
        return fail(c, "spec.ports", "at least one port is required");
    json_array_foreach(ports, i, p) {
        char f[64];
        snprintf(f, sizeof(f), "spec.ports[%zu].port", i);
        json_t *n = json_object_get(p, "port");
        if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > 65535)
            return fail(c, f, "must be an integer from 1 to 65535");
        json_t *tp = json_object_get(p, "targetPort");
        snprintf(f, sizeof(f), "spec.ports[%zu].targetPort", i);
        if (!tp) json_object_set_new(p, "targetPort", json_integer(json_integer_value(n)));
        else if (!json_is_integer(tp) || json_integer_value(tp) < 1 || json_integer_value(tp) > 65535)
            return fail(c, f, "must be an integer from 1 to 65535");
    }
    return 0;
}

int sched_obj_validate(json_t *obj, char *err, size_t errlen)
{
    struct vctx c = {.err = err, .errlen = errlen};
    enum sched_kind k;
    int rc;
    snprintf(c.who, sizeof(c.who), "object");
    if (!json_is_object(obj)) return fail(&c, "(document)", "must be an object");
    const char *ks = json_string_value(json_object_get(obj, "kind"));
    if (!ks) return fail(&c, "kind", "required");
    if (sched_obj_kind(obj, &k))
        return fail(&c, "kind", "unknown kind \"%s\" (Node, Pod, ReplicaSet, Deployment, Service, Endpoints)", ks);
    json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    snprintf(c.who, sizeof(c.who), "%s", ks);
    if (!json_is_object(md)) return fail(&c, "metadata", "required");
    if (!name) return fail(&c, "metadata.name", "required");
    if (!valid_name(name, SCHED_NAME_MAX, true))
        return fail(&c, "metadata.name", "\"%.80s\" is not a valid name (lower-case letters, digits, '-', '.')", name);
    if (sched_kind_namespaced(k)) {
        json_t *ns = json_object_get(md, "namespace");
        if (!ns || (json_is_string(ns) && !*json_string_value(ns)))
            json_object_set_new(md, "namespace", ns = json_string("default"));
        snprintf(c.who, sizeof(c.who), "%s %s/%s", ks,
                 json_is_string(ns) ? json_string_value(ns) : "?", name);
        if (!json_is_string(ns) || !valid_name(json_string_value(ns), 63, false))
            return fail(&c, "metadata.namespace", "not a valid namespace name");
    } else {
        snprintf(c.who, sizeof(c.who), "%s %s", ks, name);
        json_object_del(md, "namespace");
    }
    if ((rc = check_string_map(&c, json_object_get(md, "labels"), "metadata.labels"))) return rc;
    if ((rc = check_string_map(&c, json_object_get(md, "annotations"), "metadata.annotations")))
        return rc;
    json_t *spec = json_object_get(obj, "spec");
    if (k != SCHED_NODE && k != SCHED_ENDPOINTS && !json_is_object(spec))
        return fail(&c, "spec", "required");
    json_t *status = json_object_get(obj, "status");
    if (status && !json_is_object(status)) return fail(&c, "status", "must be an object");
    if (!status && k != SCHED_ENDPOINTS) json_object_set_new(obj, "status", json_object());
    switch (k) {
    case SCHED_NODE:
        return check_node(&c, obj);
    case SCHED_POD:
        if ((rc = check_pod_spec(&c, spec, "spec"))) return rc;
        if (!json_is_string(sched_obj_get(obj, "status.phase")))
            sched_obj_set(obj, "status.phase", json_string("Pending"));
        return 0;
    case SCHED_REPLICASET:
        return check_selector_template(&c, spec);
    case SCHED_DEPLOYMENT:
        return check_deployment(&c, spec);
    case SCHED_SERVICE:
        return check_service(&c, obj, spec);
    case SCHED_ENDPOINTS: {
        json_t *subsets = json_object_get(obj, "subsets");
        if (subsets && !json_is_array(subsets)) return fail(&c, "subsets", "must be a list");
        if (!subsets) json_object_set_new(obj, "subsets", json_array());
        return 0;
    }
    default:
        return fail(&c, "kind", "unknown");
    }
}

/* objects — kinds, store keys, dotted-path accessors and conditions of workload objects. */
#include "sched/objects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static const char *const err_text[SCHED__ECOUNT] = {
    [SCHED_OK] = "sched: ok",
    [SCHED_EINVAL] = "sched: invalid",
    [SCHED_ENOMEM] = "sched: out of memory",
    [SCHED_ENOTFOUND] = "sched: not found",
    [SCHED_EEXIST] = "sched: already exists",
    [SCHED_ECONFLICT] = "sched: conflict (object changed)",
    [SCHED_ENOTLEADER] = "sched: not the leader",
    [SCHED_ESTORE] = "sched: store unavailable",
    [SCHED_ECOMPACTED] = "sched: revision compacted",
    [SCHED_EPARSE] = "sched: parse error",
};

const char *sched_strerror(int err)
{
    if (err < 0 || err >= SCHED__ECOUNT) return "sched: unknown error";
    return err_text[err];
}

static const struct {
    const char *kind, *resource, *aliases[4];
} kinds[SCHED_KIND_COUNT] = {
    [SCHED_NODE] = {"Node", "nodes", {"node", "no", NULL, NULL}},
    [SCHED_POD] = {"Pod", "pods", {"pod", "po", NULL, NULL}},
    [SCHED_REPLICASET] = {"ReplicaSet", "replicasets", {"replicaset", "rs", NULL, NULL}},
    [SCHED_DEPLOYMENT] = {"Deployment", "deployments", {"deployment", "deploy", NULL, NULL}},
    [SCHED_SERVICE] = {"Service", "services", {"service", "svc", NULL, NULL}},
    [SCHED_ENDPOINTS] = {"Endpoints", "endpoints", {"ep", NULL, NULL, NULL}},
};

const char *sched_kind_name(enum sched_kind k)
{
    return (unsigned)k < SCHED_KIND_COUNT ? kinds[k].kind : "?";
}

const char *sched_kind_resource(enum sched_kind k)
{
    return (unsigned)k < SCHED_KIND_COUNT ? kinds[k].resource : "?";
}

bool sched_kind_namespaced(enum sched_kind k)
{
    return k != SCHED_NODE;
}

int sched_kind_parse(const char *s, enum sched_kind *out)
{
    if (!s) return SCHED_EINVAL;
    for (int k = 0; k < SCHED_KIND_COUNT; k++) {
        bool hit = !strcasecmp(s, kinds[k].kind) || !strcasecmp(s, kinds[k].resource);
        for (int a = 0; !hit && a < 4 && kinds[k].aliases[a]; a++)
            hit = !strcasecmp(s, kinds[k].aliases[a]);
        if (hit) {
            *out = (enum sched_kind)k;
            return 0;
        }
    }
    return SCHED_EINVAL;
}

int sched_key(enum sched_kind k, const char *ns, const char *name, char *buf, size_t len)
{
    int n;
    if ((unsigned)k >= SCHED_KIND_COUNT || !name || !*name) return SCHED_EINVAL;
    if (sched_kind_namespaced(k))
        n = snprintf(buf, len, "/registry/%s/%s/%s", kinds[k].resource,
                     ns && *ns ? ns : "default", name);
    else
        n = snprintf(buf, len, "/registry/%s/%s", kinds[k].resource, name);
    return n < 0 || (size_t)n >= len ? SCHED_EINVAL : 0;
}

int sched_key_prefix(enum sched_kind k, const char *ns, char *buf, size_t len)
{
    int n;
    if ((unsigned)k >= SCHED_KIND_COUNT) return SCHED_EINVAL;
    if (ns && *ns && sched_kind_namespaced(k))
        n = snprintf(buf, len, "/registry/%s/%s/", kinds[k].resource, ns);
    else
        n = snprintf(buf, len, "/registry/%s/", kinds[k].resource);
    return n < 0 || (size_t)n >= len ? SCHED_EINVAL : 0;
}

int sched_key_parse(const char *key, size_t keylen, enum sched_kind *k, char *ns, char *name)
{
    static const char pre[] = "/registry/";
    char tmp[SCHED_KEY_MAX];
    if (keylen >= sizeof(tmp) || keylen <= sizeof(pre) - 1 ||
        memcmp(key, pre, sizeof(pre) - 1) != 0)
        return SCHED_EINVAL;
    memcpy(tmp, key + sizeof(pre) - 1, keylen - (sizeof(pre) - 1));
    tmp[keylen - (sizeof(pre) - 1)] = '\0';
    char *slash = strchr(tmp, '/');
    if (!slash) return SCHED_EINVAL;
    *slash = '\0';
    int kk = -1;
    for (int i = 0; i < SCHED_KIND_COUNT; i++)
        if (!strcmp(tmp, kinds[i].resource)) kk = i;
    if (kk < 0) return SCHED_EINVAL;
    char *rest = slash + 1;
    if (kk == SCHED_NODE) {
        if (!*rest || strchr(rest, '/') || strlen(rest) > SCHED_NAME_MAX) return SCHED_EINVAL;
        ns[0] = '\0';
        strcpy(name, rest);
    } else {
        char *s2 = strchr(rest, '/');
        if (!s2 || s2 == rest || !s2[1] || strchr(s2 + 1, '/')) return SCHED_EINVAL;
        *s2 = '\0';
        if (strlen(rest) > SCHED_NAME_MAX || strlen(s2 + 1) > SCHED_NAME_MAX)
            return SCHED_EINVAL;
        strcpy(ns, rest);
        strcpy(name, s2 + 1);
    }
    *k = (enum sched_kind)kk;
    return 0;
}

int sched_obj_kind(const json_t *obj, enum sched_kind *out)
{
    const char *s = json_string_value(json_object_get(obj, "kind"));
    if (!s) return SCHED_EINVAL;
    for (int k = 0; k < SCHED_KIND_COUNT; k++)
        if (!strcmp(s, kinds[k].kind)) {
            *out = (enum sched_kind)k;
            return 0;
        }
    return SCHED_EINVAL;
}

int sched_obj_key(const json_t *obj, char *buf, size_t len)
{
    enum sched_kind k;
    if (sched_obj_kind(obj, &k)) return SCHED_EINVAL;
    return sched_key(k, sched_obj_namespace(obj), sched_obj_name(obj), buf, len);
}

json_t *sched_obj_get(const json_t *obj, const char *path)
{
    char seg[128];
    const json_t *cur = obj;
    while (cur && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(seg)) return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
        path += n + (dot ? 1 : 0);
    }
    return (json_t *)cur;
}

const char *sched_obj_str(const json_t *obj, const char *path)
{
    const char *s = json_string_value(sched_obj_get(obj, path));
    return s ? s : "";
}

int64_t sched_obj_int(const json_t *obj, const char *path, int64_t def)
{
    json_t *v = sched_obj_get(obj, path);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int64_t sched_obj_cpu(const json_t *obj, const char *path)
{
    int64_t m = 0;
    json_t *v = sched_obj_get(obj, path);
    return v && sched_parse_cpu(v, &m) == 0 ? m : 0;
}

const char *sched_obj_name(const json_t *obj)
{
    return sched_obj_str(obj, "metadata.name");
}

const char *sched_obj_namespace(const json_t *obj)
{
    return sched_obj_str(obj, "metadata.namespace");
}

int sched_obj_set(json_t *obj, const char *path, json_t *val)
{
    char seg[128];
    json_t *cur = obj;
    if (!val) return SCHED_ENOMEM;
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(seg) || !json_is_object(cur)) {
            json_decref(val);
            return SCHED_EINVAL;
        }
        memcpy(seg, path, n);
        seg[n] = '\0';
        if (!dot) return json_object_set_new(cur, seg, val) ? SCHED_ENOMEM : 0;
        json_t *next = json_object_get(cur, seg);
        if (!next || json_is_null(next)) {
            next = json_object();
            if (!next || json_object_set_new(cur, seg, next)) {
                json_decref(val);
                return SCHED_ENOMEM;
            }
        }
        cur = next;
        path = dot + 1;
    }
}

bool sched_labels_match(const json_t *sel, const json_t *labels)
{
    const char *k;
    json_t *v;
    if (!json_is_object(sel) || json_object_size(sel) == 0) return false;
    json_object_foreach((json_t *)sel, k, v) {
        const char *have = json_string_value(json_object_get(labels, k));
        const char *want = json_string_value(v);
        if (!have || !want || strcmp(have, want) != 0) return false;
    }
    return true;
}

json_t *sched_condition_get(const json_t *obj, const char *type)
{
    json_t *conds = sched_obj_get(obj, "status.conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && !strcmp(t, type)) return c;
    }
    return NULL;
}

bool sched_condition_set(json_t *obj, const char *type, const char *status,
                         const char *reason, const char *message)
{
    char now[32];
    json_t *c = sched_condition_get(obj, type);
    bool changed = false;
    if (!c) {
        json_t *conds = sched_obj_get(obj, "status.conditions");
        if (!json_is_array(conds)) {
            conds = json_array();
            sched_obj_set(obj, "status.conditions", conds);
        }
        c = json_pack("{ss}", "type", type);
        json_array_append_new(conds, c);
        changed = true;
    }
    const char *old = json_string_value(json_object_get(c, "status"));
    if (!old || strcmp(old, status) != 0) {
        sched_now_rfc3339(now, sizeof(now));
        json_object_set_new(c, "status", json_string(status));
        json_object_set_new(c, "lastTransitionTime", json_string(now));
        changed = true;
    }
    const char *fields[2][2] = {{"reason", reason}, {"message", message}};
    for (int i = 0; i < 2; i++) {
        const char *cur = json_string_value(json_object_get(c, fields[i][0]));
        const char *want = fields[i][1];
        if (want && (!cur || strcmp(cur, want) != 0)) {
            json_object_set_new(c, fields[i][0], json_string(want));
            changed = true;
        } else if (!want && cur) {
            json_object_del(c, fields[i][0]);
            changed = true;
        }
    }
    return changed;
}

void sched_now_rfc3339(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void sched_new_uid(char *buf)
{
    unsigned char r[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r)) {
        /* urandom missing is not worth failing over: uniqueness then rests on the clock */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (getpid() >> (i % 2 * 8)) ^ (int)i * 37);
    }
    if (fd >= 0) close(fd);
    for (size_t i = 0; i < sizeof(r); i++) sprintf(buf + 2 * i, "%02x", r[i]);
}

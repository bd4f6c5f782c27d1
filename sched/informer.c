/* informer — list + watch cache of workload objects, with relist on compaction. */
#include "sched/informer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sched_informer {
    struct sched_store *s;
    char prefix[SCHED_KEY_MAX];
    sched_informer_cb cb;
    void *ud;
    json_t *objs[SCHED_KIND_COUNT]; /* key -> document */
    json_t *other;                  /* key -> {"value","mod"} */
    struct sched_watch *w;
    int64_t rev;
    bool synced, must_list;
    int lists, compactions;
    int64_t retry_at;
};

int sched_informer_new(struct sched_store *s, const char *prefix, sched_informer_cb cb,
                       void *ud, struct sched_informer **out)
{
    struct sched_informer *inf = calloc(1, sizeof(*inf));
    if (!inf) return SCHED_ENOMEM;
    inf->s = s;
    snprintf(inf->prefix, sizeof(inf->prefix), "%s", prefix);
    inf->cb = cb;
    inf->ud = ud;
    for (int k = 0; k < SCHED_KIND_COUNT; k++) inf->objs[k] = json_object();
    inf->other = json_object();
    inf->must_list = true;
    *out = inf;
    return 0;
}

void sched_informer_free(struct sched_informer *inf)
{
    if (!inf) return;
    sched_watch_close(inf->w);
    for (int k = 0; k < SCHED_KIND_COUNT; k++) json_decref(inf->objs[k]);
    json_decref(inf->other);
    free(inf);
}

/* Applies one key's new state (value NULL: deleted). Returns 1 when the cache changed. */
static int apply(struct sched_informer *inf, const char *key, size_t keylen, const char *value,
                 size_t vlen, int64_t mod_rev)
{
    enum sched_kind k;
    char ns[SCHED_NAME_MAX + 1], name[SCHED_NAME_MAX + 1];
    if (sched_key_parse(key, keylen, &k, ns, name) != 0) {
        if (value)
            json_object_set_new(inf->other, key, json_pack("{s:s%,s:I}", "value", value, vlen,
                                                           "mod", (json_int_t)mod_rev));
        else
            json_object_del(inf->other, key);
        return 1;
    }
    json_t *old = json_incref(json_object_get(inf->objs[k], key));
    json_t *cur = NULL;
    if (value) {
        cur = sched_obj_from_kv(value, vlen, mod_rev);
        if (!cur) { /* not a document: keep it out of the typed cache */
            json_decref(old);
            return 0;
        }
        json_object_set(inf->objs[k], key, cur);
    } else {
        json_object_del(inf->objs[k], key);
    }
    if (inf->cb && (old || cur)) inf->cb(inf->ud, k, key, old, cur);
    json_decref(old);
    json_decref(cur);
    return 1;
}

static int relist(struct sched_informer *inf)
{
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    int64_t rev = 0;
    int rc = sched_store_list(inf->s, inf->prefix, 0, false, &kvs, &n, &rev);
    if (rc) return -rc;
    /* objects that vanished while we were not watching are reported as deletes */
    for (int k = 0; k < SCHED_KIND_COUNT; k++) {
        json_t *fresh = json_object();
        for (size_t i = 0; i < n; i++) {
            enum sched_kind kk;
            char ns[SCHED_NAME_MAX + 1], name[SCHED_NAME_MAX + 1];
            if (!sched_key_parse(kvs[i].key, kvs[i].key_len, &kk, ns, name) && kk == (enum sched_kind)k)
                json_object_set_new(fresh, kvs[i].key, json_true());
        }
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(inf->objs[k], tmp, key, v) {
            if (!json_object_get(fresh, key)) {
                json_t *old = json_incref(v);
                char *kc = strdup(key);
                json_object_del(inf->objs[k], kc);
                if (inf->cb) inf->cb(inf->ud, (enum sched_kind)k, kc, old, NULL);
                free(kc);
                json_decref(old);
            }
        }
        json_decref(fresh);
    }
    json_object_clear(inf->other);
    for (size_t i = 0; i < n; i++)
        apply(inf, kvs[i].key, kvs[i].key_len, kvs[i].value, kvs[i].value_len, kvs[i].mod_rev);
    sched_kvs_free(kvs, n);
    inf->rev = rev;
    inf->synced = true;
    inf->must_list = false;
    inf->lists++;
    return (int)n;
}

int sched_informer_poll(struct sched_informer *inf, int timeout_ms)
{
    int changed = 0;
    int64_t now = sched_now_ms();
    if (inf->retry_at > now) {
        /* the store was unreachable a moment ago: do not spin on it */
        return 0;
    }
    if (inf->must_list) {
        sched_watch_close(inf->w);
        inf->w = NULL;
        int rc = relist(inf);
        if (rc < 0) {
            inf->retry_at = now + 200;
            return rc;
        }
        changed += rc;
    }
    if (!inf->w) {
        int rc = sched_watch_open(inf->s, inf->prefix, inf->rev + 1, &inf->w);
        if (rc) {
            inf->retry_at = now + 200;
            return -rc;
        }
    }
    int64_t deadline = now + timeout_ms;
    for (;;) {
        struct sched_event *evs = NULL;
        size_t n = 0;
        int64_t left = deadline - sched_now_ms();
        /* once something arrived, only drain what is already there */
        int rc = sched_watch_next(inf->w, changed ? 0 : (int)(left > 0 ? left : 0), &evs, &n, NULL);
        if (rc == SCHED_ECOMPACTED) {
            inf->compactions++;
            inf->must_list = true;
            sched_watch_close(inf->w);
            inf->w = NULL;
            return changed;
        }
        if (rc) {
            /* stream lost: resume from the last revision on the next poll */
            sched_watch_close(inf->w);
            inf->w = NULL;
            inf->retry_at = sched_now_ms() + 100;
            return changed;
        }
        if (n == 0) break;
        for (size_t i = 0; i < n; i++) {
            struct sched_event *e = &evs[i];
            if (!e->kv.key) continue;
            changed += apply(inf, e->kv.key, e->kv.key_len,
                             e->type == SCHED_EV_PUT ? e->kv.value : NULL, e->kv.value_len,
                             e->kv.mod_rev);
            if (e->kv.mod_rev > inf->rev) inf->rev = e->kv.mod_rev;
        }
        sched_events_free(evs, n);
        if (changed > 5000) break; /* let the caller act on big bursts in pieces */
    }
    return changed;
}

void sched_informer_resync(struct sched_informer *inf)
{
    inf->must_list = true;
}

bool sched_informer_synced(const struct sched_informer *inf)
{
    return inf->synced && !inf->must_list;
}

int64_t sched_informer_rev(const struct sched_informer *inf)
{
    return inf->rev;
}

int sched_informer_lists(const struct sched_informer *inf)
{
    return inf->lists;
}

int sched_informer_compactions(const struct sched_informer *inf)
{
    return inf->compactions;
}

json_t *sched_informer_objects(const struct sched_informer *inf, enum sched_kind k)
{
    return inf->objs[k];
}

json_t *sched_informer_get(const struct sched_informer *inf, enum sched_kind k, const char *ns,
                           const char *name)
{
    char key[SCHED_KEY_MAX];
    if (sched_key(k, ns, name, key, sizeof(key))) return NULL;
    return json_object_get(inf->objs[k], key);
}

json_t *sched_informer_other(const struct sched_informer *inf)
{
    return inf->other;
}

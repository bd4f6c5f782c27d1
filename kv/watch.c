/* watch.c — the watch hub. Synced watchers get the events of each commit as it is
 * fanned out; a watcher whose owner is busy, or one that starts in the past, is
 * unsynced and catches up by reading kv_rev from its next revision in bounded batches,
 * then rejoins. The hub never buffers events for a slow watcher, so its memory does not
 * grow with one (etcd's synced/unsynced watcher groups). */
#include <errno.h>
#include <stdlib.h>

#include "kv/kv_int.h"

#define CATCHUP_BUDGET 8

static void batch_free(ev_batch *b)
{
    arena_free(b->arena);
    free(b->evs);
    free(b);
}

/* Events kept for fan-out across commits that kv_watch_notify has not seen yet. Past
 * this the batches forget their events and watchers read them from the store instead. */
#define MAX_PENDING_EVENTS 200000

static void forget_events(ev_batch *b)
{
    arena_free(b->arena);
    b->arena = NULL;
    free(b->evs);
    b->evs = NULL;
    b->n = b->cap = 0;
    b->recorded = false;
}

void watch_commit(kv_store *s, ev_batch *b)
{
    size_t total = b->n;
    for (ev_batch *p = s->pending; p; p = p->next)
        total += p->n;
    if (total > MAX_PENDING_EVENTS) {
        for (ev_batch *p = s->pending; p; p = p->next)
            forget_events(p);
        forget_events(b);
    }
    if (s->pending_tail)
        s->pending_tail->next = b;
    else
        s->pending = b;
    s->pending_tail = b;
}

static void free_pending(kv_store *s)
{
    while (s->pending) {
        ev_batch *n = s->pending->next;
        batch_free(s->pending);
        s->pending = n;
    }
    s->pending_tail = NULL;
}

static void watcher_free(struct kv_watcher *w)
{
    free(w->key);
    free(w->end);
    free(w);
}

void watch_free_all(kv_store *s)
{
    struct kv_watcher *w = s->watchers;
    while (w) {
        struct kv_watcher *n = w->next;
        watcher_free(w);
        w = n;
    }
    s->watchers = NULL;
    s->n_watchers = 0;
    free_pending(s);
}

void watch_reset_after_restore(kv_store *s)
{
    free_pending(s);
    for (struct kv_watcher *w = s->watchers; w; w = w->next)
        w->synced = false;
}

int kv_watch_create(kv_store *s, const kv_watch_opts *o, kv_watcher **out)
{
    *out = NULL;
    if (!o->fn)
        return kv_seterr(s, KV_EINVAL, "kv: watch: no callback");
    if (o->start_revision > 0 && o->start_revision < s->compact_rev)
        return KV_ECOMPACTED;
    struct kv_watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return KV_ENOMEM;
    w->s = s;
    w->key = malloc(o->key_len ? o->key_len : 1);
    w->key_len = o->key_len;
    if (w->key && o->key_len)
        memcpy(w->key, o->key, o->key_len);
    if (o->range_end_len) {
        w->end = malloc(o->range_end_len);
        if (w->end)
            memcpy(w->end, o->range_end, o->range_end_len);
        w->end_len = o->range_end_len;
    }
    if (!w->key || (o->range_end_len && !w->end)) {
        watcher_free(w);
        return KV_ENOMEM;
    }
    w->no_put = o->no_put;
    w->no_delete = o->no_delete;
    w->prev_kv = o->prev_kv;
    w->progress_notify = o->progress_notify;
    w->watch_id = o->watch_id;
    w->owner = o->owner;
    w->fn = o->fn;
    w->next_rev = o->start_revision > 0 ? o->start_revision : s->rev + 1;
    w->synced = w->next_rev > s->rev;
    w->next = s->watchers;
    s->watchers = w;
    s->n_watchers++;
    *out = w;
    return 0;
}

void kv_watch_cancel(kv_watcher *w)
{
    if (!w || w->canceled)
        return;
    kv_store *s = w->s;
    w->canceled = true;
    s->n_watchers--;
    if (s->in_notify) {
        s->need_reap = true; /* freed when the hub is done with it */
        return;
    }
    for (struct kv_watcher **pp = &s->watchers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    watcher_free(w);
}

void kv_watch_resume(kv_watcher *w)
{
    if (w)
        w->blocked = false;
}

bool kv_watch_synced(const kv_watcher *w)
{
    return w && w->synced && !w->canceled;
}

static void reap(kv_store *s)
{
    struct kv_watcher **pp = &s->watchers;
    while (*pp) {
        struct kv_watcher *w = *pp;
        if (w->canceled) {
            *pp = w->next;
            watcher_free(w);
        } else {
            pp = &w->next;
        }
    }
    s->need_reap = false;
}

static bool wants(const struct kv_watcher *w, bool del, const uint8_t *k, size_t kl)
{
    if (del ? w->no_delete : w->no_put)
        return false;
    return in_range(k, kl, w->key, w->key_len, w->end, w->end_len);
}

static int deliver(struct kv_watcher *w, Mvccpb__Event **evs, size_t n, bool progress,
                   kv_rev_t compact)
{
    kv_watch_event_batch b = {.w = w, .owner = w->owner, .watch_id = w->watch_id,
                              .revision = w->s->rev, .compact_revision = compact,
                              .progress = progress, .n_events = n, .events = evs};
    int rc = w->fn(&b);
    if (rc == KV_WATCH_TAKEN)
        w->last_ms = -1; /* delivered since the last progress tick */
    return rc;
}

static Mvccpb__KeyValue *mkkv(kv_arena *a, const uint8_t *k, size_t kl, kv_rev_t create,
                              kv_rev_t mod, kv_rev_t ver, const uint8_t *v, size_t vl,
                              kv_lease_id_t lease)
{
    Mvccpb__KeyValue *kv = arena_alloc(a, sizeof(*kv));
    if (!kv)
        return NULL;
    mvccpb__key_value__init(kv);
    kv->key.data = (uint8_t *)k;
    kv->key.len = kl;
    kv->create_revision = create;
    kv->mod_revision = mod;
    kv->version = ver;
    kv->value.data = (uint8_t *)v;
    kv->value.len = vl;
    kv->lease = lease;
    return kv;
}

static Mvccpb__Event *event_from_ev(kv_arena *a, const ev *e, bool want_prev)
{
    Mvccpb__Event *x = arena_alloc(a, sizeof(*x));
    if (!x)
        return NULL;
    mvccpb__event__init(x);
    if (e->del) {
        x->type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
        x->kv = mkkv(a, e->key, e->key_len, 0, e->rev, 0, NULL, 0, 0);
    } else {
        x->type = MVCCPB__EVENT__EVENT_TYPE__PUT;
        x->kv = mkkv(a, e->key, e->key_len, e->create, e->rev, e->version, e->value,
                     e->value_len, e->lease);
    }
    if (want_prev && e->has_prev)
        x->prev_kv = mkkv(a, e->key, e->key_len, e->pcreate, e->pmod, e->pversion, e->pvalue,
                          e->pvalue_len, e->please);
    return x->kv ? x : NULL;
}

static int bcmp3(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (al < bl ? -1 : al > bl);
}

/* Could the watcher's range hold a key between the batch's smallest and largest? */
static bool may_overlap(const struct kv_watcher *w, const ev_batch *b)
{
    const ev *lo = &b->evs[b->imin], *hi = &b->evs[b->imax];
    if (bcmp3(w->key, w->key_len, hi->key, hi->key_len) > 0)
        return false; /* starts after the largest key */
    if (!w->end_len) /* single key */
        return bcmp3(w->key, w->key_len, lo->key, lo->key_len) >= 0;
    if (w->end_len == 1 && w->end[0] == 0)
        return true; /* every key from w->key on */
    return bcmp3(w->end, w->end_len, lo->key, lo->key_len) > 0;
}

/* live fan-out of one committed batch */
static void fan_out(kv_store *s, ev_batch *b)
{
    Mvccpb__Event **evs = NULL;
    size_t cap = 0;
    for (struct kv_watcher *w = s->watchers; w; w = w->next) {
        if (w->canceled || !w->synced || w->next_rev > b->last_rev)
            continue;
        if (!b->recorded) {
            w->synced = false; /* the events were not kept: read them from the store */
            continue;
        }
        if (b->n == 0 || !may_overlap(w, b)) {
            w->next_rev = b->last_rev + 1;
            continue;
        }
        kv_arena *a = arena_new();
        size_t n = 0;
        bool oom = !a;
        for (size_t i = 0; i < b->n && !oom; i++) {
            const ev *e = &b->evs[i];
            if (e->rev < w->next_rev || !wants(w, e->del, e->key, e->key_len))
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                Mvccpb__Event **nv = realloc(evs, nc * sizeof(*nv));
                if (!nv) {
                    oom = true;
                    break;
                }
                evs = nv;
                cap = nc;
            }
            if (!(evs[n] = event_from_ev(a, e, w->prev_kv)))
                oom = true;
            else
                n++;
        }
        if (oom) {
            w->synced = false;
        } else if (n == 0) {
            w->next_rev = b->last_rev + 1;
        } else if (deliver(w, evs, n, false, 0) == KV_WATCH_TAKEN) {
            w->next_rev = b->last_rev + 1;
        } else {
            w->synced = false;
            w->blocked = true;
        }
        arena_free(a);
    }
    free(evs);
}

typedef struct evlist {
    kv_arena *a;
    Mvccpb__Event **v;
    size_t n, cap;
} evlist;

/* Appends the event of stored record r (with its previous version if asked). */
static int add_rec_event(kv_store *s, struct kv_watcher *w, MDB_txn *txn, MDB_cursor *kc,
                         const rec *r, evlist *l)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        Mvccpb__Event **nv = realloc(l->v, nc * sizeof(*nv));
        if (!nv)
            return ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    kv_arena *a = l->a;
    Mvccpb__Event *x = arena_alloc(a, sizeof(*x));
    uint8_t *key = arena_dup(a, r->key, r->key_len);
    if (!x || !key)
        return ENOMEM;
    mvccpb__event__init(x);
    if (r->tomb) {
        x->type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
        x->kv = mkkv(a, key, r->key_len, 0, r->mod, 0, NULL, 0, 0);
    } else {
        x->type = MVCCPB__EVENT__EVENT_TYPE__PUT;
        x->kv = mkkv(a, key, r->key_len, r->create, r->mod, r->version,
                     arena_dup(a, r->value, r->value_len), r->value_len, r->lease);
    }
    if (!x->kv)
        return ENOMEM;
    if (w->prev_kv) {
        /* the key's revision just below this one, if live and still stored */
        uint8_t d[DUP_LEN];
        dup_encode(d, r->mod, r->sub, false);
        MDB_val kk = {r->key_len, (void *)r->key}, dv = {DUP_LEN, d};
        if (mdb_cursor_get(kc, &kk, &dv, MDB_GET_BOTH_RANGE) == 0 &&
            mdb_cursor_get(kc, &kk, &dv, MDB_PREV_DUP) == 0 &&
            !(((uint8_t *)dv.mv_data)[16] & REC_TOMB)) {
            uint8_t pk[16];
            memcpy(pk, dv.mv_data, 16);
            MDB_val pkv = {16, pk}, pv;
            rec pr;
            if (mdb_get(txn, s->dbi_rev, &pkv, &pv) == 0 && rec_decode(&pkv, &pv, &pr) == 0)
                x->prev_kv = mkkv(a, key, r->key_len, pr.create, pr.mod, pr.version,
                                  arena_dup(a, pr.value, pr.value_len), pr.value_len, pr.lease);
        }
    }
    l->v[l->n++] = x;
    return 0;
}

/* Reads whole revisions from next_rev: the revision log for a range, or the key's own
 * revision list for a single-key watcher (cheap however busy the rest of the store is).
 * Sets *upto to the last revision read completely. */
static int read_history(kv_store *s, struct kv_watcher *w, MDB_txn *txn, evlist *l,
                        kv_rev_t *upto)
{
    MDB_cursor *c = NULL, *kc = NULL;
    size_t max_ev = s->opt.watch_batch_events, max_scan = max_ev * 10, scanned = 0;
    kv_rev_t cur_rev = 0;
    bool early = false, single = w->end_len == 0;
    int rc = mdb_cursor_open(txn, s->dbi_rev, &c);
    if (!rc)
        rc = mdb_cursor_open(txn, s->dbi_key, &kc);
    MDB_cursor *sc = NULL; /* walks the single key's duplicates */
    if (!rc && single)
        rc = mdb_cursor_open(txn, s->dbi_key, &sc);
    if (rc)
        goto out;
    uint8_t kb[16], db[DUP_LEN];
    MDB_val k, v;
    if (single) {
        if (w->key_len == 0 || w->key_len > KV_MAX_KEY) {
            rc = MDB_NOTFOUND;
            goto out;
        }
        dup_encode(db, w->next_rev, 0, false);
        k = (MDB_val){w->key_len, w->key};
        v = (MDB_val){DUP_LEN, db};
        rc = mdb_cursor_get(sc, &k, &v, MDB_GET_BOTH_RANGE);
    } else {
        rev_key(kb, w->next_rev, 0);
        k = (MDB_val){16, kb};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    while (rc == 0) {
        rec r;
        if (single) {
            /* the duplicate names the revision; its record holds the rest */
            if (v.mv_size != DUP_LEN) {
                rc = MDB_CORRUPTED;
                break;
            }
            memcpy(kb, v.mv_data, 16);
            MDB_val rk = {16, kb}, rv;
            if ((rc = mdb_get(txn, s->dbi_rev, &rk, &rv)))
                break;
            if (rec_decode(&rk, &rv, &r)) {
                rc = MDB_CORRUPTED;
                break;
            }
        } else if (rec_decode(&k, &v, &r)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (r.mod > s->rev)
            break;
        if (r.mod != cur_rev) {
            /* a revision boundary: stop here if the batch is full */
            if (cur_rev && (l->n >= max_ev || scanned >= max_scan)) {
                early = true;
                break;
            }
            cur_rev = r.mod;
        }
        scanned++;
        if (wants(w, r.tomb, r.key, r.key_len) && (rc = add_rec_event(s, w, txn, kc, &r, l)))
            break;
        rc = single ? mdb_cursor_get(sc, &k, &v, MDB_NEXT_DUP) : mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
out:
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        *upto = early ? cur_rev : s->rev;
    if (sc)
        mdb_cursor_close(sc);
    if (kc)
        mdb_cursor_close(kc);
    if (c)
        mdb_cursor_close(c);
    return rc;
}

/* one catch-up batch for an unsynced watcher: whole revisions from next_rev */
static int catch_up(kv_store *s, struct kv_watcher *w)
{
    if (w->next_rev < s->compact_rev) {
        if (deliver(w, NULL, 0, false, s->compact_rev) == KV_WATCH_TAKEN)
            w->compacted = true;
        else
            w->blocked = true;
        return 0;
    }
    if (w->next_rev > s->rev) {
        w->synced = true;
        return 0;
    }
    MDB_txn *txn;
    bool cached;
    int err = rtxn_get(s, &txn, &cached);
    if (err)
        return err;
    evlist l = {arena_new(), NULL, 0, 0};
    kv_rev_t upto = w->next_rev - 1;
    int rc = l.a ? read_history(s, w, txn, &l, &upto) : ENOMEM;
    rtxn_put(s, txn, cached);
    if (rc) {
        arena_free(l.a);
        free(l.v);
        return rc == ENOMEM ? KV_ENOMEM : lmdb_err(s, rc, "watch catch-up");
    }
    if (l.n == 0 || deliver(w, l.v, l.n, false, 0) == KV_WATCH_TAKEN) {
        w->next_rev = upto + 1;
        if (w->next_rev > s->rev)
            w->synced = true;
    } else {
        w->blocked = true;
    }
    arena_free(l.a);
    free(l.v);
    return 0;
}

size_t kv_watch_notify(kv_store *s)
{
    s->in_notify = true;
    while (s->pending) {
        ev_batch *b = s->pending;
        s->pending = b->next;
        if (!s->pending)
            s->pending_tail = NULL;
        fan_out(s, b);
        batch_free(b);
    }
    /* Catch-up batches, fairly: each waiting watcher gets one per round (the round
     * number advances once every waiting watcher has had its batch). */
    int budget = CATCHUP_BUDGET;
    bool trouble = false;
    for (int pass = 0; pass < 2 && budget > 0 && !trouble; pass++) {
        bool any = false;
        for (struct kv_watcher *w = s->watchers; w && budget > 0; w = w->next) {
            if (w->canceled || w->synced || w->blocked || w->compacted)
                continue;
            any = true;
            if (w->round == s->round)
                continue;
            w->round = s->round;
            if (catch_up(s, w)) {
                trouble = true; /* storage trouble: try again on the next call */
                break;
            }
            budget--;
        }
        if (budget > 0 && any)
            s->round++;
    }
    size_t left = 0;
    for (struct kv_watcher *w = s->watchers; w; w = w->next)
        if (!w->canceled && !w->synced && !w->blocked && !w->compacted)
            left++;
    s->in_notify = false;
    if (s->need_reap)
        reap(s);
    return left;
}

void kv_watch_progress_tick(kv_store *s, int64_t now_ms, int64_t interval_ms)
{
    s->in_notify = true;
    for (struct kv_watcher *w = s->watchers; w; w = w->next) {
        if (w->canceled || !w->progress_notify)
            continue;
        if (w->last_ms <= 0) { /* first tick, or delivered since the last one */
            w->last_ms = now_ms;
            continue;
        }
        if (!w->synced || now_ms - w->last_ms < interval_ms)
            continue;
        if (deliver(w, NULL, 0, true, 0) == KV_WATCH_TAKEN)
            w->last_ms = now_ms;
    }
    s->in_notify = false;
    if (s->need_reap)
        reap(s);
}

/* mvcc.c — the MVCC key space: kv_rev holds every revision's record, kv_key holds each
 * key's revisions as sorted duplicates, so "the latest revision of K at or below R" is
 * one cursor seek. Put, delete and the live-key scan that Range, DeleteRange and Txn
 * compares are built on. */
#include <stdlib.h>

#include "kv/kv_int.h"

/* kv_rev record: flags(1) key_len(4) key create(8) version(8) lease(8) value */
#define REC_FIXED (1 + 4 + 8 + 8 + 8)

void dup_encode(uint8_t *d, kv_rev_t main, kv_rev_t sub, bool tomb)
{
    put_be64(d, (uint64_t)main);
    put_be64(d + 8, (uint64_t)sub);
    d[16] = tomb ? REC_TOMB : 0;
}

void rev_key(uint8_t *k, kv_rev_t main, kv_rev_t sub)
{
    put_be64(k, (uint64_t)main);
    put_be64(k + 8, (uint64_t)sub);
}

int rec_decode(const MDB_val *k, const MDB_val *v, rec *r)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != 16 || v->mv_size < REC_FIXED)
        return KV_ECORRUPT;
    uint32_t kl = get_be32(p + 1);
    if (v->mv_size < REC_FIXED + (size_t)kl)
        return KV_ECORRUPT;
    r->mod = (kv_rev_t)get_be64(k->mv_data);
    r->sub = (kv_rev_t)get_be64((const uint8_t *)k->mv_data + 8);
    r->tomb = p[0] & REC_TOMB;
    r->key = p + 5;
    r->key_len = kl;
    const uint8_t *q = p + 5 + kl;
    r->create = (kv_rev_t)get_be64(q);
    r->version = (kv_rev_t)get_be64(q + 8);
    r->lease = (kv_lease_id_t)get_be64(q + 16);
    r->value = q + 24;
    r->value_len = v->mv_size - REC_FIXED - kl;
    return 0;
}

static int load_rec(kv_store *s, MDB_txn *txn, kv_rev_t main, kv_rev_t sub, rec *r)
{
    uint8_t kb[16];
    rev_key(kb, main, sub);
    MDB_val k = {16, kb}, v;
    int rc = mdb_get(txn, s->dbi_rev, &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND
                   ? kv_seterr(s, KV_ECORRUPT, "kv: revision %lld.%lld missing", (long long)main,
                               (long long)sub)
                   : lmdb_err(s, rc, "read revision");
    k.mv_data = kb;
    if (rec_decode(&k, &v, r))
        return kv_seterr(s, KV_ECORRUPT, "kv: revision %lld.%lld does not decode",
                         (long long)main, (long long)sub);
    return 0;
}

/* The same through a cursor kept on kv_rev: LMDB skips the descent from the root when the
 * revision is on the page the cursor already sits on, which is the common case when a
 * range reads keys written together. */
static int load_rec_c(kv_store *s, MDB_cursor *c, kv_rev_t main, kv_rev_t sub, rec *r)
{
    uint8_t kb[16];
    rev_key(kb, main, sub);
    MDB_val k = {16, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc)
        return rc == MDB_NOTFOUND
                   ? kv_seterr(s, KV_ECORRUPT, "kv: revision %lld.%lld missing", (long long)main,
                               (long long)sub)
                   : lmdb_err(s, rc, "read revision");
    if (rec_decode(&k, &v, r))
        return kv_seterr(s, KV_ECORRUPT, "kv: revision %lld.%lld does not decode",
                         (long long)main, (long long)sub);
    return 0;
}

/* Positions nothing in particular; returns the newest dup of the cursor's current key
 * that is <= at. The cursor must sit on the key. */
static int latest_here(MDB_cursor *kc, MDB_val *k, kv_rev_t at, kv_rev_t *main, kv_rev_t *sub,
                       bool *tomb)
{
    MDB_val d;
    int rc = mdb_cursor_get(kc, k, &d, MDB_LAST_DUP);
    if (rc)
        return rc;
    if ((kv_rev_t)get_be64(d.mv_data) > at) {
        uint8_t t[DUP_LEN];
        dup_encode(t, at + 1, 0, false);
        d.mv_size = DUP_LEN;
        d.mv_data = t;
        rc = mdb_cursor_get(kc, k, &d, MDB_GET_BOTH_RANGE);
        if (rc)
            return rc;
        rc = mdb_cursor_get(kc, k, &d, MDB_PREV_DUP);
        if (rc)
            return rc;
    }
    if (d.mv_size != DUP_LEN)
        return MDB_CORRUPTED;
    const uint8_t *p = d.mv_data;
    *main = (kv_rev_t)get_be64(p);
    *sub = (kv_rev_t)get_be64(p + 8);
    *tomb = p[16] & REC_TOMB;
    return 0;
}

int key_latest(MDB_cursor *kc, const uint8_t *key, size_t klen, kv_rev_t at, kv_rev_t *main,
               kv_rev_t *sub, bool *tomb)
{
    MDB_val k = {klen, (void *)key}, d;
    if (klen == 0 || klen > KV_MAX_KEY)
        return MDB_NOTFOUND; /* such keys are never stored */
    int rc = mdb_cursor_get(kc, &k, &d, MDB_SET_KEY);
    if (rc)
        return rc;
    return latest_here(kc, &k, at, main, sub, tomb);
}

int get_live(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t klen, kv_rev_t at, rec *r)
{
    MDB_cursor *kc;
    kv_rev_t m, sb;
    bool tomb;
    int rc = mdb_cursor_open(txn, s->dbi_key, &kc);
    if (rc)
        return lmdb_err(s, rc, "cursor");
    rc = key_latest(kc, key, klen, at, &m, &sb, &tomb);
    mdb_cursor_close(kc);
    if (rc == MDB_NOTFOUND || (rc == 0 && tomb))
        return MDB_NOTFOUND;
    if (rc)
        return lmdb_err(s, rc, "key lookup");
    return load_rec(s, txn, m, sb, r);
}

int check_key(kv_store *s, const uint8_t *key, size_t len)
{
    (void)s;
    (void)key;
    if (len == 0)
        return KV_EEMPTYKEY;
    if (len > KV_MAX_KEY)
        return KV_EKEYTOOLONG;
    return 0;
}

bool in_range(const uint8_t *k, size_t kl, const uint8_t *key, size_t klen, const uint8_t *end,
              size_t elen)
{
    size_t m = kl < klen ? kl : klen;
    int c = memcmp(k, key, m);
    if (c < 0 || (c == 0 && kl < klen))
        return false;
    if (elen == 0)
        return kl == klen && c == 0;
    if (elen == 1 && end[0] == 0)
        return true;
    m = kl < elen ? kl : elen;
    c = memcmp(k, end, m);
    return c < 0 || (c == 0 && kl < elen);
}

static int cmp_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

Mvccpb__KeyValue *kv_from_rec(kv_arena *a, const rec *r, bool keys_only)
{
    Mvccpb__KeyValue *kv = arena_alloc(a, sizeof(*kv));
    if (!kv)
        return NULL;
    mvccpb__key_value__init(kv);
    kv->key.data = arena_dup(a, r->key, r->key_len);
    kv->key.len = r->key_len;
    kv->create_revision = r->create;
    kv->mod_revision = r->mod;
    kv->version = r->version;
    kv->lease = r->lease;
    if (!keys_only && r->value_len) {
        kv->value.data = arena_dup(a, r->value, r->value_len);
        kv->value.len = r->value_len;
        if (!kv->value.data)
            return NULL;
    }
    if (!kv->key.data)
        return NULL;
    return kv;
}

/* Visits every key of [key, end) live at `at`, in key order. fn returns 0 to go on, 1 to
 * stop, or an error. */
typedef int (*scan_fn)(void *arg, MDB_txn *txn, const uint8_t *k, size_t kl, kv_rev_t main,
                       kv_rev_t sub);

static int scan_keys(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t klen,
                     const uint8_t *end, size_t elen, kv_rev_t at, scan_fn fn, void *arg)
{
    MDB_cursor *kc;
    kv_rev_t m, sb;
    bool tomb;
    int rc = mdb_cursor_open(txn, s->dbi_key, &kc), err = 0;
    if (rc)
        return lmdb_err(s, rc, "cursor");
    if (elen == 0) {
        rc = key_latest(kc, key, klen, at, &m, &sb, &tomb);
        if (rc == 0 && !tomb)
            err = fn(arg, txn, key, klen, m, sb);
        else if (rc && rc != MDB_NOTFOUND)
            err = lmdb_err(s, rc, "scan");
        mdb_cursor_close(kc);
        return err == 1 ? 0 : err;
    }
    /* a start key longer than any stored key: seek by its stored-length prefix and let
     * in_range drop what sorts before it */
    MDB_val k = {klen > KV_MAX_KEY ? KV_MAX_KEY : klen, (void *)key}, d;
    rc = mdb_cursor_get(kc, &k, &d, MDB_SET_RANGE);
    while (rc == 0) {
        if (cmp_bytes(k.mv_data, k.mv_size, key, klen) < 0) {
            rc = mdb_cursor_get(kc, &k, &d, MDB_NEXT_NODUP);
            continue;
        }
        if (!in_range(k.mv_data, k.mv_size, key, klen, end, elen))
            break;
        MDB_val kk = k;
        rc = latest_here(kc, &kk, at, &m, &sb, &tomb);
        if (rc == 0 && !tomb) {
            if ((err = fn(arg, txn, k.mv_data, k.mv_size, m, sb)))
                break;
        } else if (rc && rc != MDB_NOTFOUND) {
            break;
        }
        rc = mdb_cursor_get(kc, &k, &d, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(kc);
    if (err)
        return err == 1 ? 0 : err;
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(s, rc, "scan");
    return 0;
}

/* ---- writes ---------------------------------------------------------------------- */

void ev_add(kv_wtxn *w, const ev *e)
{
    ev_batch *b = w->batch;
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return; /* watchers will catch up from the store */
        b->arena = arena_new();
        b->recorded = b->arena != NULL;
        b->first_rev = e->rev;
        w->batch = b;
    }
    b->last_rev = e->rev;
    if (!b->recorded)
        return;
    if (w->s->n_watchers == 0) {
        b->recorded = false;
        return;
    }
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        ev *ne = realloc(b->evs, nc * sizeof(ev));
        if (!ne) {
            b->recorded = false;
            return;
        }
        b->evs = ne;
        b->cap = nc;
    }
    ev *d = &b->evs[b->n];
    *d = *e;
    d->key = arena_dup(b->arena, e->key, e->key_len);
    d->value = e->value_len ? arena_dup(b->arena, e->value, e->value_len) : NULL;
    d->pvalue = e->has_prev && e->pvalue_len ? arena_dup(b->arena, e->pvalue, e->pvalue_len) : NULL;
    if (!d->key || (e->value_len && !d->value) || (e->has_prev && e->pvalue_len && !d->pvalue)) {
        b->recorded = false;
        return;
    }
    b->n++;
    if (b->n == 1) {
        b->imin = b->imax = 0;
    } else {
        if (cmp_bytes(d->key, d->key_len, b->evs[b->imin].key, b->evs[b->imin].key_len) < 0)
            b->imin = b->n - 1;
        if (cmp_bytes(d->key, d->key_len, b->evs[b->imax].key, b->evs[b->imax].key_len) > 0)
            b->imax = b->n - 1;
    }
}

static int write_rec(wctx *c, const uint8_t *key, size_t klen, bool tomb, kv_rev_t create,
                     kv_rev_t version, kv_lease_id_t lease, const uint8_t *val, size_t vlen)
{
    kv_store *s = c->w->s;
    uint8_t kb[16], d[DUP_LEN];
    rev_key(kb, c->rev, c->sub);
    MDB_val k = {16, kb}, v = {REC_FIXED + klen + vlen, NULL};
    int rc = mdb_put(c->w->txn, s->dbi_rev, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return lmdb_err(s, rc, "put revision");
    uint8_t *p = v.mv_data;
    p[0] = tomb ? REC_TOMB : 0;
    put_be32(p + 1, (uint32_t)klen);
    memcpy(p + 5, key, klen);
    uint8_t *q = p + 5 + klen;
    put_be64(q, (uint64_t)create);
    put_be64(q + 8, (uint64_t)version);
    put_be64(q + 16, (uint64_t)lease);
    if (vlen)
        memcpy(q + 24, val, vlen);
    dup_encode(d, c->rev, c->sub, tomb);
    MDB_val kk = {klen, (void *)key}, dv = {DUP_LEN, d};
    rc = mdb_put(c->w->txn, s->dbi_key, &kk, &dv, MDB_APPENDDUP);
    if (rc)
        return lmdb_err(s, rc, "put key");
    return 0;
}

/* a copy of a live record, stable across writes */
typedef struct prevkv {
    bool live;
    kv_rev_t create, mod, version;
    kv_lease_id_t lease;
    uint8_t *value;
    size_t value_len;
} prevkv;

static int read_prev(kv_wtxn *w, const uint8_t *key, size_t klen, kv_arena *a, prevkv *pv)
{
    rec r;
    memset(pv, 0, sizeof(*pv));
    int err = get_live(w->s, w->txn, key, klen, INT64_MAX, &r);
    if (err == MDB_NOTFOUND)
        return 0;
    if (err)
        return err;
    pv->live = true;
    pv->create = r.create;
    pv->mod = r.mod;
    pv->version = r.version;
    pv->lease = r.lease;
    pv->value_len = r.value_len;
    pv->value = arena_dup(a, r.value, r.value_len);
    return pv->value ? 0 : KV_ENOMEM;
}

static Mvccpb__KeyValue *kv_from_prev(kv_arena *a, const uint8_t *key, size_t klen,
                                      const prevkv *pv)
{
    Mvccpb__KeyValue *kv = arena_alloc(a, sizeof(*kv));
    if (!kv)
        return NULL;
    mvccpb__key_value__init(kv);
    kv->key.data = arena_dup(a, key, klen);
    kv->key.len = klen;
    kv->create_revision = pv->create;
    kv->mod_revision = pv->mod;
    kv->version = pv->version;
    kv->lease = pv->lease;
    kv->value.data = pv->value_len ? pv->value : NULL;
    kv->value.len = pv->value_len;
    return kv->key.data ? kv : NULL;
}

int mvcc_put(wctx *c, const Etcdserverpb__PutRequest *p, kv_arena *a,
             Etcdserverpb__PutResponse *resp)
{
    kv_wtxn *w = c->w;
    prevkv pv;
    int err = read_prev(w, p->key.data, p->key.len, a, &pv);
    if (err)
        return err;
    /* inside a txn the check ran on the pre-txn state; a from-key delete earlier in the
     * same txn (which etcd's overlap check lets through) may have removed the key since:
     * then the put keeps nothing, as etcd's does */
    if ((p->ignore_value || p->ignore_lease) && !pv.live && !c->in_txn)
        return KV_EKEYNOTFOUND;
    kv_lease_id_t lease = p->ignore_lease ? pv.lease : p->lease;
    if (lease && !p->ignore_lease && !c->in_txn) {
        int e = lease_exists_txn(w->s, w->txn, lease);
        if (e == MDB_NOTFOUND)
            return KV_ELEASENOTFOUND;
        if (e)
            return e;
    }
    const uint8_t *val = p->ignore_value ? pv.value : p->value.data;
    size_t vlen = p->ignore_value ? pv.value_len : p->value.len;
    kv_rev_t create = pv.live ? pv.create : c->rev;
    kv_rev_t version = pv.live ? pv.version + 1 : 1;
    if ((err = write_rec(c, p->key.data, p->key.len, false, create, version, lease, val, vlen)))
        return err;
    if (pv.live && pv.lease && pv.lease != lease &&
        (err = lease_detach(w, pv.lease, p->key.data, p->key.len)))
        return err;
    if (lease && (!pv.live || pv.lease != lease) &&
        (err = lease_attach(w, lease, p->key.data, p->key.len)))
        return err;
    ev e = {.del = false, .rev = c->rev, .sub = c->sub, .key = p->key.data,
            .key_len = p->key.len, .value = (uint8_t *)val, .value_len = vlen,
            .create = create, .version = version, .lease = lease, .has_prev = pv.live,
            .pvalue = pv.value, .pvalue_len = pv.value_len, .pcreate = pv.create,
            .pmod = pv.mod, .pversion = pv.version, .please = pv.lease};
    ev_add(w, &e);
    c->sub++;
    if (!pv.live)
        w->live_keys++;
    if (resp && p->prev_kv && pv.live) {
        resp->prev_kv = kv_from_prev(a, p->key.data, p->key.len, &pv);
        if (!resp->prev_kv)
            return KV_ENOMEM;
    }
    return 0;
}

/* collected keys for a delete */
typedef struct delset {
    kv_arena *a;
    struct delkey {
        uint8_t *key;
        size_t klen;
        prevkv pv;
    } *v;
    size_t n, cap;
    kv_store *s;
} delset;

static int collect_del(void *arg, MDB_txn *txn, const uint8_t *k, size_t kl, kv_rev_t main,
                       kv_rev_t sub)
{
    delset *ds = arg;
    rec r;
    int err = load_rec(ds->s, txn, main, sub, &r);
    if (err)
        return err;
    if (ds->n == ds->cap) {
        size_t nc = ds->cap ? ds->cap * 2 : 16;
        struct delkey *nv = realloc(ds->v, nc * sizeof(*nv));
        if (!nv)
            return KV_ENOMEM;
        ds->v = nv;
        ds->cap = nc;
    }
    struct delkey *d = &ds->v[ds->n++];
    d->key = arena_dup(ds->a, k, kl);
    d->klen = kl;
    d->pv.live = true;
    d->pv.create = r.create;
    d->pv.mod = r.mod;
    d->pv.version = r.version;
    d->pv.lease = r.lease;
    d->pv.value_len = r.value_len;
    d->pv.value = arena_dup(ds->a, r.value, r.value_len);
    return d->key && d->pv.value ? 0 : KV_ENOMEM;
}

int mvcc_delete_range(wctx *c, const uint8_t *key, size_t klen, const uint8_t *end,
                      size_t elen, bool want_prev, kv_arena *a,
                      Etcdserverpb__DeleteRangeResponse *resp)
{
    kv_wtxn *w = c->w;
    delset ds = {.a = a, .s = w->s};
    int err = scan_keys(w->s, w->txn, key, klen, end, elen, INT64_MAX, collect_del, &ds);
    if (err)
        goto out;
    if (resp && want_prev && ds.n) {
        resp->prev_kvs = arena_alloc(a, ds.n * sizeof(Mvccpb__KeyValue *));
        if (!resp->prev_kvs) {
            err = KV_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < ds.n; i++) {
        struct delkey *d = &ds.v[i];
        if ((err = write_rec(c, d->key, d->klen, true, 0, 0, 0, NULL, 0)))
            goto out;
        if (d->pv.lease && (err = lease_detach(w, d->pv.lease, d->key, d->klen)))
            goto out;
        ev e = {.del = true, .rev = c->rev, .sub = c->sub, .key = d->key, .key_len = d->klen,
                .has_prev = true, .pvalue = d->pv.value, .pvalue_len = d->pv.value_len,
                .pcreate = d->pv.create, .pmod = d->pv.mod, .pversion = d->pv.version,
                .please = d->pv.lease};
        ev_add(w, &e);
        c->sub++;
        w->live_keys--;
        if (resp && want_prev) {
            resp->prev_kvs[i] = kv_from_prev(a, d->key, d->klen, &d->pv);
            if (!resp->prev_kvs[i]) {
                err = KV_ENOMEM;
                goto out;
            }
        }
    }
    if (resp) {
        resp->deleted = (int64_t)ds.n;
        if (want_prev)
            resp->n_prev_kvs = ds.n;
    }
out:
    free(ds.v);
    return err;
}

/* ---- range ----------------------------------------------------------------------- */

int range_check_rev(kv_rev_t req, kv_rev_t cur, kv_rev_t compact)
{
    if (req <= 0)
        return 0;
    if (req > cur)
        return KV_EFUTUREREV;
    if (req < compact)
        return KV_ECOMPACTED;
    return 0;
}

typedef struct rangectx {
    kv_store *s;
    kv_arena *a;
    const Etcdserverpb__RangeRequest *r;
    bool fetch_all;
    int64_t count;
    Mvccpb__KeyValue **kvs;
    size_t n, cap;
    MDB_cursor *revc;
} rangectx;

static int range_visit(void *arg, MDB_txn *txn, const uint8_t *k, size_t kl, kv_rev_t main,
                       kv_rev_t sub)
{
    rangectx *rc = arg;
    (void)k;
    (void)kl;
    rc->count++;
    if (rc->r->count_only)
        return 0;
    if (!rc->fetch_all && rc->r->limit > 0 && (int64_t)rc->n >= rc->r->limit + 1)
        return 0;
    rec r;
    int err;
    if (!rc->revc && (err = mdb_cursor_open(txn, rc->s->dbi_rev, &rc->revc)))
        return lmdb_err(rc->s, err, "range cursor");
    if ((err = load_rec_c(rc->s, rc->revc, main, sub, &r)))
        return err;
    if (rc->n == rc->cap) {
        size_t nc = rc->cap ? rc->cap * 2 : 16;
        Mvccpb__KeyValue **nv = realloc(rc->kvs, nc * sizeof(*nv));
        if (!nv)
            return KV_ENOMEM;
        rc->kvs = nv;
        rc->cap = nc;
    }
    /* etcd sorts before it drops values, so a value sort still needs them */
    Mvccpb__KeyValue *kv = kv_from_rec(
        rc->a, &r,
        rc->r->keys_only && rc->r->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE);
    if (!kv)
        return KV_ENOMEM;
    rc->kvs[rc->n++] = kv;
    return 0;
}

static int sort_target;
static int sort_desc;

static int cmp_kv(const void *pa, const void *pb)
{
    const Mvccpb__KeyValue *a = *(Mvccpb__KeyValue *const *)pa;
    const Mvccpb__KeyValue *b = *(Mvccpb__KeyValue *const *)pb;
    int c = 0;
    switch (sort_target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY:
        c = cmp_bytes(a->key.data, a->key.len, b->key.data, b->key.len);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
        c = (a->version > b->version) - (a->version < b->version);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
        c = (a->create_revision > b->create_revision) - (a->create_revision < b->create_revision);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
        c = (a->mod_revision > b->mod_revision) - (a->mod_revision < b->mod_revision);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
        c = cmp_bytes(a->value.data, a->value.len, b->value.data, b->value.len);
        break;
    }
    if (sort_desc)
        c = -c;
    if (c == 0) /* ties keep key order, so the answer does not depend on qsort */
        c = cmp_bytes(a->key.data, a->key.len, b->key.data, b->key.len);
    return c;
}

int mvcc_range(kv_store *s, MDB_txn *txn, const Etcdserverpb__RangeRequest *r, kv_rev_t cur,
               kv_arena *a, Etcdserverpb__RangeResponse *resp)
{
    kv_rev_t at = r->revision > 0 ? r->revision : cur;
    rangectx rc = {.s = s, .a = a, .r = r};
    rc.fetch_all = r->sort_order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE ||
                   r->min_mod_revision || r->max_mod_revision || r->min_create_revision ||
                   r->max_create_revision;
    int err = scan_keys(s, txn, r->key.data, r->key.len, r->range_end.data, r->range_end.len,
                        at, range_visit, &rc);
    if (rc.revc)
        mdb_cursor_close(rc.revc);
    if (err) {
        free(rc.kvs);
        return err;
    }
    /* etcd prunes by the revision filters after counting */
    size_t n = 0;
    for (size_t i = 0; i < rc.n; i++) {
        Mvccpb__KeyValue *kv = rc.kvs[i];
        if (r->max_mod_revision && kv->mod_revision > r->max_mod_revision)
            continue;
        if (r->min_mod_revision && kv->mod_revision < r->min_mod_revision)
            continue;
        if (r->min_create_revision && kv->create_revision < r->min_create_revision)
            continue;
        if (r->max_create_revision && kv->create_revision > r->max_create_revision)
            continue;
        rc.kvs[n++] = kv;
    }
    int order = r->sort_order;
    if (r->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
        order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE)
        order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    else if (r->sort_target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
             order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND)
        order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE;
    if (order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE && n > 1) {
        sort_target = r->sort_target;
        sort_desc = order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
        qsort(rc.kvs, n, sizeof(*rc.kvs), cmp_kv);
    }
    if (r->limit > 0 && n > (size_t)r->limit) {
        n = (size_t)r->limit;
        resp->more = true;
    }
    if (r->keys_only)
        for (size_t i = 0; i < n; i++)
            rc.kvs[i]->value = (ProtobufCBinaryData){0, NULL};
    resp->count = rc.count;
    if (n) {
        resp->kvs = arena_alloc(a, n * sizeof(*resp->kvs));
        if (!resp->kvs) {
            free(rc.kvs);
            return KV_ENOMEM;
        }
        memcpy(resp->kvs, rc.kvs, n * sizeof(*resp->kvs));
        resp->n_kvs = n;
    }
    free(rc.kvs);
    return 0;
}

int kv_check_range(kv_store *s, const Etcdserverpb__RangeRequest *r)
{
    int err = check_key(s, r->key.data, r->key.len);
    if (err == KV_EKEYTOOLONG)
        err = 0; /* a long key simply matches nothing (ranges may start anywhere) */
    if (err)
        return err;
    if ((unsigned)r->sort_order > ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND ||
        (unsigned)r->sort_target > ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE)
        return KV_EINVALIDSORT;
    return 0;
}

void read_view(kv_store *s, MDB_txn *txn, kv_rev_t *cur, kv_rev_t *compact)
{
    MDB_val v;
    *cur = s->rev;
    *compact = s->compact_rev;
    if (meta_get_raw(s, txn, "rev", &v) == 0 && v.mv_size >= 8)
        *cur = (kv_rev_t)get_be64(v.mv_data);
    if (meta_get_raw(s, txn, "compact", &v) == 0 && v.mv_size >= 8)
        *compact = (kv_rev_t)get_be64(v.mv_data);
}

int kv_range(kv_store *s, const Etcdserverpb__RangeRequest *r, kv_result *out)
{
    MDB_txn *txn;
    bool cached;
    int err = result_begin(out);
    if (err)
        return err;
    if ((out->err = kv_check_range(s, r)))
        return 0;
    if ((err = rtxn_get(s, &txn, &cached))) {
        kv_result_free(out);
        return err;
    }
    kv_rev_t cur, compact;
    read_view(s, txn, &cur, &compact);
    if ((out->err = range_check_rev(r->revision, cur, compact))) {
        rtxn_put(s, txn, cached);
        return 0;
    }
    Etcdserverpb__RangeResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp) {
        err = KV_ENOMEM;
        goto fail;
    }
    etcdserverpb__range_response__init(resp);
    if (!(resp->header = new_header(s, out->arena, cur))) {
        err = KV_ENOMEM;
        goto fail;
    }
    if ((err = mvcc_range(s, txn, r, cur, out->arena, resp)))
        goto fail;
    rtxn_put(s, txn, cached);
    out->msg = &resp->base;
    return 0;
fail:
    rtxn_put(s, txn, cached);
    kv_result_free(out);
    return err;
}

/* Adapter so compares and txns can visit live records. */
typedef struct scanrec {
    kv_store *s;
    key_visit_fn fn;
    void *arg;
} scanrec;

static int scanrec_visit(void *arg, MDB_txn *txn, const uint8_t *k, size_t kl, kv_rev_t main,
                         kv_rev_t sub)
{
    scanrec *sr = arg;
    rec r;
    (void)k;
    (void)kl;
    int err = load_rec(sr->s, txn, main, sub, &r);
    if (err)
        return err;
    return sr->fn(sr->arg, &r);
}

int mvcc_scan(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t klen, const uint8_t *end,
              size_t elen, kv_rev_t at, key_visit_fn fn, void *arg)
{
    scanrec sr = {s, fn, arg};
    return scan_keys(s, txn, key, klen, end, elen, at, scanrec_visit, &sr);
}

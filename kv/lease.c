/* lease.c — leases: the replicated part (grant, revoke with its keys in one revision,
 * attachments, checkpoints) in the `lease` database, and the leader's expiry bookkeeping
 * in memory with the caller's monotonic clock. */
#include <errno.h>
#include <stdlib.h>

#include "kv/kv_int.h"

/* lease db (MDB_DUPSORT): key = id (8 bytes big-endian); duplicates:
 *   0x00 ttl(8) remaining(8)   the lease itself (sorts first)
 *   0x01 key                   one per attached key */
#define HDR_LEN 17
#define MAX_LEASE_TTL 9000000000LL
#define REPORT_AGAIN_MS 3000

static void id_key(uint8_t *b, kv_lease_id_t id)
{
    put_be64(b, (uint64_t)id);
}

static int read_hdr(kv_store *s, MDB_txn *txn, kv_lease_id_t id, int64_t *ttl, int64_t *rem)
{
    MDB_cursor *c;
    uint8_t kb[8];
    id_key(kb, id);
    MDB_val k = {8, kb}, d;
    int rc = mdb_cursor_open(txn, s->dbi_lease, &c);
    if (rc)
        return lmdb_err(s, rc, "lease cursor");
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &d, MDB_FIRST_DUP);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return MDB_NOTFOUND;
    if (rc)
        return lmdb_err(s, rc, "lease read");
    const uint8_t *p = d.mv_data;
    if (d.mv_size != HDR_LEN || p[0] != 0)
        return MDB_NOTFOUND;
    if (ttl)
        *ttl = (int64_t)get_be64(p + 1);
    if (rem)
        *rem = (int64_t)get_be64(p + 9);
    return 0;
}

int lease_exists_txn(kv_store *s, MDB_txn *txn, kv_lease_id_t id)
{
    return read_hdr(s, txn, id, NULL, NULL);
}

static int put_dup(kv_wtxn *w, kv_lease_id_t id, uint8_t tag, const uint8_t *data, size_t len)
{
    uint8_t kb[8], db[1 + KV_MAX_KEY + 16];
    id_key(kb, id);
    db[0] = tag;
    memcpy(db + 1, data, len);
    MDB_val k = {8, kb}, d = {1 + len, db};
    int rc = mdb_put(w->txn, w->s->dbi_lease, &k, &d, MDB_NODUPDATA);
    if (rc && rc != MDB_KEYEXIST)
        return lmdb_err(w->s, rc, "lease write");
    return 0;
}

static int del_dup(kv_wtxn *w, kv_lease_id_t id, uint8_t tag, const uint8_t *data, size_t len)
{
    uint8_t kb[8], db[1 + KV_MAX_KEY + 16];
    id_key(kb, id);
    db[0] = tag;
    memcpy(db + 1, data, len);
    MDB_val k = {8, kb}, d = {1 + len, db};
    int rc = mdb_del(w->txn, w->s->dbi_lease, &k, &d);
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(w->s, rc, "lease delete");
    return 0;
}

int lease_attach(kv_wtxn *w, kv_lease_id_t id, const uint8_t *key, size_t klen)
{
    return put_dup(w, id, 1, key, klen);
}

int lease_detach(kv_wtxn *w, kv_lease_id_t id, const uint8_t *key, size_t klen)
{
    return del_dup(w, id, 1, key, klen);
}

static int write_hdr(kv_wtxn *w, kv_lease_id_t id, int64_t ttl, int64_t rem, bool replace)
{
    uint8_t h[16];
    int64_t ottl, orem;
    if (replace && read_hdr(w->s, w->txn, id, &ottl, &orem) == 0) {
        uint8_t o[16];
        put_be64(o, (uint64_t)ottl);
        put_be64(o + 8, (uint64_t)orem);
        int err = del_dup(w, id, 0, o, 16);
        if (err)
            return err;
    }
    put_be64(h, (uint64_t)ttl);
    put_be64(h + 8, (uint64_t)rem);
    return put_dup(w, id, 0, h, 16);
}

static int add_lop(kv_wtxn *w, int op, kv_lease_id_t id, int64_t ttl)
{
    if (w->n_lops == w->cap_lops) {
        size_t nc = w->cap_lops ? w->cap_lops * 2 : 8;
        lease_op *nv = realloc(w->lops, nc * sizeof(*nv));
        if (!nv)
            return KV_ENOMEM;
        w->lops = nv;
        w->cap_lops = nc;
    }
    w->lops[w->n_lops++] = (lease_op){op, id, ttl};
    return 0;
}

/* ---- replicated operations ------------------------------------------------------- */

int apply_lease_grant(kv_wtxn *w, kv_index_t index, const Etcdserverpb__LeaseGrantRequest *r,
                      kv_arena *a, kv_result *out)
{
    kv_store *s = w->s;
    int err;
    if (nospace_active(w->alarms, w->n_alarms)) {
        out->err = KV_ENOSPACE;
        return 0;
    }
    if (r->ttl > MAX_LEASE_TTL) {
        out->err = KV_ELEASETTLTOOLARGE;
        return 0;
    }
    kv_lease_id_t id = r->id;
    if (id == 0) {
        /* derived from the entry index, so every member picks the same id */
        uint64_t x = index * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
        for (;;) {
            x ^= x >> 31;
            id = (kv_lease_id_t)(x & 0x7fffffffffffffffull);
            if (id != 0) {
                err = lease_exists_txn(s, w->txn, id);
                if (err == MDB_NOTFOUND)
                    break;
                if (err)
                    return err;
            }
            x = x * 0xBF58476D1CE4E5B9ull + 1;
        }
    } else {
        err = lease_exists_txn(s, w->txn, id);
        if (err == 0) {
            out->err = KV_ELEASEEXISTS;
            return 0;
        }
        if (err != MDB_NOTFOUND)
            return err;
    }
    int64_t ttl = r->ttl < s->opt.min_lease_ttl ? s->opt.min_lease_ttl : r->ttl;
    if ((err = write_hdr(w, id, ttl, 0, false)) || (err = add_lop(w, LOP_GRANT, id, ttl)))
        return err;
    Etcdserverpb__LeaseGrantResponse *resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__lease_grant_response__init(resp);
    resp->id = id;
    resp->ttl = ttl;
    if (!(resp->header = new_header(s, a, w->rev)))
        return KV_ENOMEM;
    out->msg = &resp->base;
    return 0;
}

/* the keys attached to a lease, copied */
static int lease_keys(kv_store *s, MDB_txn *txn, kv_lease_id_t id, kv_arena *a,
                      ProtobufCBinaryData **keys, size_t *n)
{
    MDB_cursor *c;
    uint8_t kb[8];
    id_key(kb, id);
    MDB_val k = {8, kb}, d;
    size_t cap = 0;
    *keys = NULL;
    *n = 0;
    int rc = mdb_cursor_open(txn, s->dbi_lease, &c);
    if (rc)
        return lmdb_err(s, rc, "lease cursor");
    ProtobufCBinaryData *v = NULL;
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
    while (rc == 0) {
        const uint8_t *p = d.mv_data;
        if (d.mv_size >= 1 && p[0] == 1) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                ProtobufCBinaryData *nv = realloc(v, cap * sizeof(*nv));
                if (!nv) {
                    rc = ENOMEM;
                    break;
                }
                v = nv;
            }
            v[*n].len = d.mv_size - 1;
            v[*n].data = arena_dup(a, p + 1, d.mv_size - 1);
            if (!v[*n].data) {
                rc = ENOMEM;
                break;
            }
            (*n)++;
        }
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        free(v);
        *n = 0;
        return rc == ENOMEM ? KV_ENOMEM : lmdb_err(s, rc, "lease keys");
    }
    if (*n) {
        *keys = arena_alloc(a, *n * sizeof(**keys));
        if (!*keys) {
            free(v);
            return KV_ENOMEM;
        }
        memcpy(*keys, v, *n * sizeof(**keys));
    }
    free(v);
    return 0;
}

int apply_lease_revoke(kv_wtxn *w, const Etcdserverpb__LeaseRevokeRequest *r, kv_arena *a,
                       kv_result *out)
{
    kv_store *s = w->s;
    int err = lease_exists_txn(s, w->txn, r->id);
    if (err == MDB_NOTFOUND) {
        out->err = KV_ELEASENOTFOUND;
        return 0;
    }
    if (err)
        return err;
    ProtobufCBinaryData *keys;
    size_t n;
    if ((err = lease_keys(s, w->txn, r->id, a, &keys, &n)))
        return err;
    /* every attached key goes in one revision, in key order (as etcd's revoke) */
    wctx c = {w, w->rev + 1, 0, false};
    for (size_t i = 0; i < n; i++)
        if ((err = mvcc_delete_range(&c, keys[i].data, keys[i].len, NULL, 0, false, a, NULL)))
            return kv_error_is_fatal_txn(err) ? err : KV_EIO;
    uint8_t kb[8];
    id_key(kb, r->id);
    MDB_val k = {8, kb};
    int rc = mdb_del(w->txn, s->dbi_lease, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(s, rc, "lease revoke");
    if (c.sub)
        w->rev = c.rev;
    if ((err = add_lop(w, LOP_REVOKE, r->id, 0)))
        return err;
    Etcdserverpb__LeaseRevokeResponse *resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__lease_revoke_response__init(resp);
    if (!(resp->header = new_header(s, a, w->rev)))
        return KV_ENOMEM;
    out->msg = &resp->base;
    return 0;
}

int apply_lease_checkpoint(kv_wtxn *w, const Etcdserverpb__LeaseCheckpointRequest *r,
                           kv_arena *a, kv_result *out)
{
    int err;
    for (size_t i = 0; i < r->n_checkpoints; i++) {
        const Etcdserverpb__LeaseCheckpoint *cp = r->checkpoints[i];
        int64_t ttl;
        err = read_hdr(w->s, w->txn, cp->id, &ttl, NULL);
        if (err == MDB_NOTFOUND)
            continue; /* revoked meanwhile: etcd ignores it too */
        if (err)
            return err;
        int64_t rem = cp->remaining_ttl > 0 ? cp->remaining_ttl : 0;
        if ((err = write_hdr(w, cp->id, ttl, rem, true)) ||
            (err = add_lop(w, LOP_CHECKPOINT, cp->id, rem)))
            return err;
    }
    Etcdserverpb__LeaseCheckpointResponse *resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__lease_checkpoint_response__init(resp);
    if (!(resp->header = new_header(w->s, a, w->rev)))
        return KV_ENOMEM;
    out->msg = &resp->base;
    return 0;
}

/* ---- memory: a sorted array of leases -------------------------------------------- */

static size_t lfind(kv_store *s, kv_lease_id_t id, bool *found)
{
    size_t lo = 0, hi = s->n_leases;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->leases[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->n_leases && s->leases[lo].id == id;
    return lo;
}

lease_mem *lease_find(kv_store *s, kv_lease_id_t id)
{
    bool f;
    size_t i = lfind(s, id, &f);
    return f ? &s->leases[i] : NULL;
}

static int64_t start_ttl(const lease_mem *l)
{
    return l->remaining > 0 ? l->remaining : l->ttl;
}

static void mem_upsert(kv_store *s, kv_lease_id_t id, int64_t ttl, int64_t rem)
{
    bool f;
    size_t i = lfind(s, id, &f);
    if (!f) {
        if (s->n_leases == s->cap_leases) {
            size_t nc = s->cap_leases ? s->cap_leases * 2 : 64;
            lease_mem *nv = realloc(s->leases, nc * sizeof(*nv));
            if (!nv)
                return; /* the lease still exists in the store; it just will not expire
                           here until the next promote */
            s->leases = nv;
            s->cap_leases = nc;
        }
        memmove(&s->leases[i + 1], &s->leases[i], (s->n_leases - i) * sizeof(lease_mem));
        s->n_leases++;
    }
    lease_mem *l = &s->leases[i];
    l->id = id;
    l->ttl = ttl;
    l->remaining = rem;
    l->reported_ms = 0;
    l->expiry_ms = s->primary ? s->now_ms + start_ttl(l) * 1000 : INT64_MAX;
    if (l->expiry_ms < s->next_expiry)
        s->next_expiry = l->expiry_ms;
}

static void mem_remove(kv_store *s, kv_lease_id_t id)
{
    bool f;
    size_t i = lfind(s, id, &f);
    if (!f)
        return;
    memmove(&s->leases[i], &s->leases[i + 1], (s->n_leases - i - 1) * sizeof(lease_mem));
    s->n_leases--;
}

void lease_commit_ops(kv_store *s, const lease_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (ops[i].op) {
        case LOP_GRANT:
            mem_upsert(s, ops[i].id, ops[i].ttl, 0);
            break;
        case LOP_REVOKE:
            mem_remove(s, ops[i].id);
            break;
        case LOP_CHECKPOINT: {
            lease_mem *l = lease_find(s, ops[i].id);
            if (l)
                l->remaining = ops[i].ttl;
            break;
        }
        }
    }
}

int lease_load(kv_store *s)
{
    MDB_txn *txn;
    MDB_cursor *c;
    bool cached;
    s->n_leases = 0;
    s->next_expiry = INT64_MAX;
    int err = rtxn_get(s, &txn, &cached);
    if (err)
        return err;
    int rc = mdb_cursor_open(txn, s->dbi_lease, &c);
    if (rc) {
        rtxn_put(s, txn, cached);
        return lmdb_err(s, rc, "lease load");
    }
    MDB_val k, d;
    rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
    while (rc == 0) {
        const uint8_t *p = d.mv_data;
        if (k.mv_size == 8 && d.mv_size == HDR_LEN && p[0] == 0)
            mem_upsert(s, (kv_lease_id_t)get_be64(k.mv_data), (int64_t)get_be64(p + 1),
                       (int64_t)get_be64(p + 9));
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(c);
    rtxn_put(s, txn, cached);
    if (rc != MDB_NOTFOUND)
        return lmdb_err(s, rc, "lease load");
    return 0;
}

/* ---- the leader's bookkeeping ---------------------------------------------------- */

void kv_lease_promote(kv_store *s, int64_t now_ms)
{
    s->primary = true;
    s->now_ms = now_ms;
    s->next_expiry = INT64_MAX;
    for (size_t i = 0; i < s->n_leases; i++) {
        lease_mem *l = &s->leases[i];
        l->expiry_ms = now_ms + start_ttl(l) * 1000;
        l->reported_ms = 0;
        if (l->expiry_ms < s->next_expiry)
            s->next_expiry = l->expiry_ms;
    }
}

void kv_lease_demote(kv_store *s)
{
    s->primary = false;
    s->next_expiry = INT64_MAX;
    for (size_t i = 0; i < s->n_leases; i++)
        s->leases[i].expiry_ms = INT64_MAX;
}

int kv_lease_renew(kv_store *s, kv_lease_id_t id, int64_t now_ms, int64_t *ttl_out)
{
    s->now_ms = now_ms;
    lease_mem *l = lease_find(s, id);
    *ttl_out = 0;
    if (!l || (s->primary && l->expiry_ms <= now_ms))
        return KV_ELEASENOTFOUND;
    l->remaining = 0;
    l->reported_ms = 0;
    if (s->primary) {
        l->expiry_ms = now_ms + l->ttl * 1000;
        if (l->expiry_ms < s->next_expiry)
            s->next_expiry = l->expiry_ms;
    }
    *ttl_out = l->ttl;
    return 0;
}

size_t kv_lease_expired(kv_store *s, int64_t now_ms, kv_lease_id_t *ids, size_t max)
{
    s->now_ms = now_ms;
    if (!s->primary || now_ms < s->next_expiry || max == 0)
        return 0;
    size_t n = 0;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < s->n_leases; i++) {
        lease_mem *l = &s->leases[i];
        int64_t due = l->expiry_ms;
        if (l->reported_ms && due <= now_ms)
            due = l->reported_ms + REPORT_AGAIN_MS;
        if (due <= now_ms && n < max) {
            ids[n++] = l->id;
            l->reported_ms = now_ms;
            due = now_ms + REPORT_AGAIN_MS;
        }
        if (due < next)
            next = due;
    }
    s->next_expiry = next;
    return n;
}

static int64_t remaining_s(kv_store *s, const lease_mem *l, int64_t now_ms)
{
    if (!s->primary)
        return start_ttl(l);
    int64_t ms = l->expiry_ms - now_ms;
    return ms > 0 ? ms / 1000 : 0;
}

int kv_lease_time_to_live(kv_store *s, const Etcdserverpb__LeaseTimeToLiveRequest *req,
                          int64_t now_ms, kv_result *out)
{
    int err = result_begin(out);
    if (err)
        return err;
    Etcdserverpb__LeaseTimeToLiveResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp) {
        kv_result_free(out);
        return KV_ENOMEM;
    }
    etcdserverpb__lease_time_to_live_response__init(resp);
    resp->header = new_header(s, out->arena, s->rev);
    resp->id = req->id;
    lease_mem *l = lease_find(s, req->id);
    if (!l) {
        resp->ttl = -1;
    } else {
        resp->ttl = remaining_s(s, l, now_ms);
        resp->grantedttl = l->ttl;
        if (req->keys) {
            MDB_txn *txn;
            bool cached;
            if (!(err = rtxn_get(s, &txn, &cached))) {
                err = lease_keys(s, txn, req->id, out->arena, &resp->keys, &resp->n_keys);
                rtxn_put(s, txn, cached);
            }
        }
    }
    if (err || !resp->header) {
        kv_result_free(out);
        return err ? err : KV_ENOMEM;
    }
    out->msg = &resp->base;
    return 0;
}

int kv_lease_leases(kv_store *s, kv_result *out)
{
    int err = result_begin(out);
    if (err)
        return err;
    Etcdserverpb__LeaseLeasesResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp)
        goto nomem;
    etcdserverpb__lease_leases_response__init(resp);
    if (!(resp->header = new_header(s, out->arena, s->rev)))
        goto nomem;
    if (s->n_leases) {
        resp->leases = arena_alloc(out->arena, s->n_leases * sizeof(*resp->leases));
        if (!resp->leases)
            goto nomem;
        for (size_t i = 0; i < s->n_leases; i++) {
            Etcdserverpb__LeaseStatus *st = arena_alloc(out->arena, sizeof(*st));
            if (!st)
                goto nomem;
            etcdserverpb__lease_status__init(st);
            st->id = s->leases[i].id;
            resp->leases[i] = st;
        }
        resp->n_leases = s->n_leases;
    }
    out->msg = &resp->base;
    return 0;
nomem:
    kv_result_free(out);
    return KV_ENOMEM;
}

size_t kv_lease_checkpoints(kv_store *s, int64_t now_ms, Etcdserverpb__LeaseCheckpoint *cps,
                            size_t max)
{
    size_t n = 0;
    if (!s->primary)
        return 0;
    for (size_t i = 0; i < s->n_leases && n < max; i++) {
        etcdserverpb__lease_checkpoint__init(&cps[n]);
        cps[n].id = s->leases[i].id;
        int64_t ms = s->leases[i].expiry_ms - now_ms;
        cps[n].remaining_ttl = ms > 0 ? (ms + 999) / 1000 : 0;
        n++;
    }
    return n;
}

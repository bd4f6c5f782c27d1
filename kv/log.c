/* log.c — the Raft log in raft_log (8-byte big-endian index -> term, type, data), the
 * hard state and the log start (snapshot metadata) in raft_meta. */
#include <stdlib.h>

#include "kv/kv_int.h"

#define ENT_HDR 12 /* term(8) type(4) */

static int snap_get_txn(kv_store *s, MDB_txn *txn, kv_snap_meta *m)
{
    MDB_val v;
    m->index = m->term = 0;
    int err = meta_get_raw(s, txn, "snap", &v);
    if (err == KV_ENOTFOUND)
        return 0;
    if (err)
        return err;
    if (v.mv_size < 16)
        return kv_seterr(s, KV_ECORRUPT, "kv: snapshot meta: short record");
    m->index = get_be64(v.mv_data);
    m->term = get_be64((const uint8_t *)v.mv_data + 8);
    return 0;
}

static int bounds_txn(kv_store *s, MDB_txn *txn, kv_index_t *first, kv_index_t *last)
{
    kv_snap_meta m;
    int err = snap_get_txn(s, txn, &m);
    if (err)
        return err;
    *first = m.index + 1;
    *last = m.index;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi_log, &c);
    if (rc)
        return lmdb_err(s, rc, "log: cursor");
    MDB_val k, v;
    if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
        kv_index_t l = get_be64(k.mv_data);
        if (l > *last)
            *last = l;
    }
    mdb_cursor_close(c);
    return 0;
}

kv_index_t kv_log_first_index(kv_store *s)
{
    MDB_txn *txn;
    bool cached, is_w;
    kv_index_t f = 1, l = 0;
    if (view_get(s, &txn, &cached, &is_w))
        return 1;
    bounds_txn(s, txn, &f, &l);
    view_put(s, txn, cached, is_w);
    return f;
}

kv_index_t kv_log_last_index(kv_store *s)
{
    MDB_txn *txn;
    bool cached, is_w;
    kv_index_t f = 1, l = 0;
    if (view_get(s, &txn, &cached, &is_w))
        return 0;
    bounds_txn(s, txn, &f, &l);
    view_put(s, txn, cached, is_w);
    return l;
}

static int delete_from(kv_wtxn *w, kv_index_t from, kv_index_t upto_incl, bool to_end)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, w->s->dbi_log, &c);
    if (rc)
        return lmdb_err(w->s, rc, "log: cursor");
    uint8_t kb[8];
    put_be64(kb, from);
    MDB_val k = {8, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (!to_end && get_be64(k.mv_data) > upto_incl)
            break;
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(w->s, rc, "log: delete");
    return 0;
}

int kv_log_truncate(kv_wtxn *w, kv_index_t from)
{
    return delete_from(w, from, 0, true);
}

int kv_log_append(kv_wtxn *w, const kv_entry *ents, size_t n)
{
    kv_store *s = w->s;
    kv_index_t first, last;
    int err, rc;
    if (n == 0)
        return 0;
    if ((err = bounds_txn(s, w->txn, &first, &last)))
        return err;
    if (ents[0].index > last + 1 || ents[0].index < first)
        return kv_seterr(s, KV_EINVAL, "kv: log append: index %llu outside [%llu, %llu]",
                         (unsigned long long)ents[0].index, (unsigned long long)first,
                         (unsigned long long)last + 1);
    for (size_t i = 1; i < n; i++)
        if (ents[i].index != ents[0].index + i)
            return kv_seterr(s, KV_EINVAL, "kv: log append: indexes not consecutive");
    if (ents[0].index <= last && (err = delete_from(w, ents[0].index, 0, true)))
        return err;
    for (size_t i = 0; i < n; i++) {
        uint8_t kb[8];
        put_be64(kb, ents[i].index);
        MDB_val k = {8, kb}, v = {ENT_HDR + ents[i].len, NULL};
        if ((rc = mdb_put(w->txn, s->dbi_log, &k, &v, MDB_APPEND | MDB_RESERVE)))
            return lmdb_err(s, rc, "log append");
        uint8_t *p = v.mv_data;
        put_be64(p, ents[i].term);
        put_be32(p + 8, ents[i].type);
        if (ents[i].len)
            memcpy(p + ENT_HDR, ents[i].data, ents[i].len);
    }
    return 0;
}

int kv_log_compact(kv_wtxn *w, kv_index_t upto)
{
    kv_store *s = w->s;
    kv_index_t first, last;
    kv_term_t term;
    int err;
    if ((err = bounds_txn(s, w->txn, &first, &last)))
        return err;
    if (upto == first - 1)
        return 0;
    if (upto < first || upto > last)
        return kv_seterr(s, KV_EINVAL, "kv: log compact: %llu outside [%llu, %llu]",
                         (unsigned long long)upto, (unsigned long long)first,
                         (unsigned long long)last);
    if ((err = kv_log_term(s, upto, &term)))
        return err;
    kv_snap_meta m = {upto, term};
    if ((err = kv_snap_meta_set(w, &m)))
        return err;
    return delete_from(w, 0, upto, false);
}

int kv_log_entries(kv_store *s, kv_index_t lo, kv_index_t hi, size_t max_bytes,
                   kv_entry **out, size_t *n)
{
    MDB_txn *txn;
    bool cached, is_w;
    kv_index_t first, last;
    *out = NULL;
    *n = 0;
    int err = view_get(s, &txn, &cached, &is_w);
    if (err)
        return err;
    if ((err = bounds_txn(s, txn, &first, &last)))
        goto done;
    if (lo < first) {
        err = KV_ELOGCOMPACTED;
        goto done;
    }
    if (hi > last + 1) {
        err = KV_ELOGUNAVAIL;
        goto done;
    }
    if (lo >= hi)
        goto done;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi_log, &c);
    if (rc) {
        err = lmdb_err(s, rc, "log: cursor");
        goto done;
    }
    /* two passes: size, then copy into one block */
    size_t cnt = 0, bytes = 0;
    uint8_t kb[8];
    put_be64(kb, lo);
    MDB_val k = {8, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    while (rc == 0 && get_be64(k.mv_data) < hi) {
        if (get_be64(k.mv_data) != lo + cnt || v.mv_size < ENT_HDR)
            break;
        size_t dl = v.mv_size - ENT_HDR;
        if (cnt > 0 && max_bytes && bytes + dl > max_bytes)
            break;
        bytes += dl;
        cnt++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (cnt == 0) {
        mdb_cursor_close(c);
        err = kv_seterr(s, KV_ECORRUPT, "kv: log: entry %llu missing", (unsigned long long)lo);
        goto done;
    }
    kv_entry *e = malloc(cnt * sizeof(kv_entry) + bytes + 1);
    if (!e) {
        mdb_cursor_close(c);
        err = KV_ENOMEM;
        goto done;
    }
    uint8_t *dp = (uint8_t *)(e + cnt);
    put_be64(kb, lo);
    k.mv_size = 8;
    k.mv_data = kb;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    for (size_t i = 0; i < cnt && rc == 0; i++) {
        const uint8_t *p = v.mv_data;
        e[i].index = get_be64(k.mv_data);
        e[i].term = get_be64(p);
        e[i].type = get_be32(p + 8);
        e[i].len = v.mv_size - ENT_HDR;
        e[i].data = dp;
        memcpy(dp, p + ENT_HDR, e[i].len);
        dp += e[i].len;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    *out = e;
    *n = cnt;
done:
    view_put(s, txn, cached, is_w);
    return err;
}

int kv_log_term(kv_store *s, kv_index_t i, kv_term_t *term)
{
    MDB_txn *txn;
    bool cached, is_w;
    kv_snap_meta m;
    *term = 0;
    int err = view_get(s, &txn, &cached, &is_w);
    if (err)
        return err;
    if ((err = snap_get_txn(s, txn, &m)))
        goto done;
    if (i == m.index) {
        *term = m.term;
        goto done;
    }
    if (i < m.index) {
        err = KV_ELOGCOMPACTED;
        goto done;
    }
    uint8_t kb[8];
    put_be64(kb, i);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, s->dbi_log, &k, &v);
    if (rc == MDB_NOTFOUND)
        err = KV_ELOGUNAVAIL;
    else if (rc)
        err = lmdb_err(s, rc, "log term");
    else if (v.mv_size < ENT_HDR)
        err = kv_seterr(s, KV_ECORRUPT, "kv: log: short entry %llu", (unsigned long long)i);
    else
        *term = get_be64(v.mv_data);
done:
    view_put(s, txn, cached, is_w);
    return err;
}

int kv_hard_state_set(kv_wtxn *w, const kv_hard_state *hs)
{
    uint8_t b[24];
    put_be64(b, hs->term);
    put_be64(b + 8, hs->vote);
    put_be64(b + 16, hs->commit);
    return meta_put_raw(w, "hard", b, 24);
}

int kv_hard_state_get(kv_store *s, kv_hard_state *hs)
{
    MDB_txn *txn;
    bool cached, is_w;
    MDB_val v;
    memset(hs, 0, sizeof(*hs));
    int err = view_get(s, &txn, &cached, &is_w);
    if (err)
        return err;
    err = meta_get_raw(s, txn, "hard", &v);
    if (err == KV_ENOTFOUND)
        err = 0;
    else if (!err && v.mv_size >= 24) {
        const uint8_t *p = v.mv_data;
        hs->term = get_be64(p);
        hs->vote = get_be64(p + 8);
        hs->commit = get_be64(p + 16);
    }
    view_put(s, txn, cached, is_w);
    return err;
}

int kv_snap_meta_set(kv_wtxn *w, const kv_snap_meta *m)
{
    uint8_t b[16];
    put_be64(b, m->index);
    put_be64(b + 8, m->term);
    return meta_put_raw(w, "snap", b, 16);
}

int kv_snap_meta_get(kv_store *s, kv_snap_meta *m)
{
    MDB_txn *txn;
    bool cached, is_w;
    int err = view_get(s, &txn, &cached, &is_w);
    if (err)
        return err;
    err = snap_get_txn(s, txn, m);
    view_put(s, txn, cached, is_w);
    return err;
}

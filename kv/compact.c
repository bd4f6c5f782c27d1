/* compact.c — compaction (drop history below a revision, keeping the newest live
 * version of each key as etcd's keyIndex.compact does, and every record of the compaction
 * revision itself so a watch from it has no gap) and HashKV. */
#include <errno.h>
#include <stdlib.h>

#include "kv/kv_int.h"

#define CHUNK_KEYS 4096

typedef struct kbuf {
    uint8_t *p;
    size_t n;
} kbuf;

static int kbuf_cmp(const void *a, const void *b)
{
    const kbuf *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m ? memcmp(x->p, y->p, m) : 0;
    return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

/* Removes the revisions of key that compaction at `at` makes unreachable. */
static int compact_key(kv_wtxn *w, const uint8_t *key, size_t klen, kv_rev_t at)
{
    kv_store *s = w->s;
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, s->dbi_key, &c);
    if (rc)
        return lmdb_err(s, rc, "compact cursor");
    uint8_t (*dups)[DUP_LEN] = NULL;
    size_t n = 0, cap = 0;
    MDB_val k = {klen, (void *)key}, d;
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &d, MDB_FIRST_DUP);
    while (rc == 0) {
        if (d.mv_size != DUP_LEN || (kv_rev_t)get_be64(d.mv_data) > at)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            void *nv = realloc(dups, cap * DUP_LEN);
            if (!nv) {
                rc = ENOMEM;
                break;
            }
            dups = nv;
        }
        memcpy(dups[n++], d.mv_data, DUP_LEN);
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        free(dups);
        return rc == ENOMEM ? KV_ENOMEM : lmdb_err(s, rc, "compact scan");
    }
    rc = 0;
    /* Revisions at exactly `at` all stay, tombstones included: a watcher may start at the
     * compacted revision (as in etcd) and must see every event of it. Below `at`, the
     * newest version stays if it is live and nothing at `at` supersedes it. */
    size_t below = 0;
    while (below < n && (kv_rev_t)get_be64(dups[below]) < at)
        below++;
    size_t del;
    if (below < n)
        del = below;
    else if (n && !(dups[n - 1][16] & REC_TOMB))
        del = n - 1;
    else
        del = n;
    for (size_t i = 0; i < del; i++) {
        MDB_val rk = {16, dups[i]}, kk = {klen, (void *)key}, dv = {DUP_LEN, dups[i]};
        if ((rc = mdb_del(w->txn, s->dbi_rev, &rk, NULL)) && rc != MDB_NOTFOUND)
            break;
        if ((rc = mdb_del(w->txn, s->dbi_key, &kk, &dv)) && rc != MDB_NOTFOUND)
            break;
        rc = 0;
    }
    free(dups);
    return rc ? lmdb_err(s, rc, "compact delete") : 0;
}

int mvcc_compact(kv_wtxn *w, kv_rev_t at)
{
    kv_store *s = w->s;
    uint8_t pos[16];
    /* only keys written at or after the previous compaction can have history to drop */
    rev_key(pos, w->compact_rev, 0);
    kbuf *keys = calloc(CHUNK_KEYS, sizeof(kbuf));
    if (!keys)
        return KV_ENOMEM;
    int err = 0;
    for (;;) {
        MDB_cursor *c;
        size_t n = 0;
        int rc = mdb_cursor_open(w->txn, s->dbi_rev, &c);
        if (rc) {
            err = lmdb_err(s, rc, "compact cursor");
            break;
        }
        MDB_val k = {16, pos}, v;
        bool more = false;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && n < CHUNK_KEYS) {
            rec r;
            if (rec_decode(&k, &v, &r)) {
                rc = MDB_CORRUPTED;
                break;
            }
            if (r.mod > at)
                break;
            keys[n].p = malloc(r.key_len ? r.key_len : 1);
            if (!keys[n].p) {
                rc = ENOMEM;
                break;
            }
            memcpy(keys[n].p, r.key, r.key_len);
            keys[n].n = r.key_len;
            n++;
            rev_key(pos, r.mod, r.sub + 1);
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            more = true;
        }
        mdb_cursor_close(c);
        if (rc && rc != MDB_NOTFOUND) {
            err = rc == ENOMEM ? KV_ENOMEM : lmdb_err(s, rc, "compact scan");
        } else {
            qsort(keys, n, sizeof(kbuf), kbuf_cmp);
            for (size_t i = 0; i < n && !err; i++)
                if (i == 0 || kbuf_cmp(&keys[i], &keys[i - 1]))
                    err = compact_key(w, keys[i].p, keys[i].n, at);
        }
        for (size_t i = 0; i < n; i++)
            free(keys[i].p);
        if (err || !more || n < CHUNK_KEYS)
            break;
    }
    free(keys);
    return err;
}

/* ---- HashKV ---------------------------------------------------------------------- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int j = 0; j < 8; j++)
            c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

int kv_hash_kv(kv_store *s, kv_rev_t rev, kv_result *out)
{
    MDB_txn *txn;
    bool cached;
    int err = result_begin(out);
    if (err)
        return err;
    if (!crc_table[1])
        crc_init();
    kv_rev_t cur = s->rev, compact = s->compact_rev;
    if (rev > 0 && rev < compact) {
        out->err = KV_ECOMPACTED;
        return 0;
    }
    if (rev > cur) {
        out->err = KV_EFUTUREREV;
        return 0;
    }
    if (rev <= 0)
        rev = cur;
    if ((err = rtxn_get(s, &txn, &cached))) {
        kv_result_free(out);
        return err;
    }
    MDB_cursor *c;
    uint32_t h = 0;
    int rc = mdb_cursor_open(txn, s->dbi_rev, &c);
    if (rc == 0) {
        MDB_val k, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (k.mv_size != 16 || (kv_rev_t)get_be64(k.mv_data) > rev)
                break;
            h = crc32c(h, k.mv_data, k.mv_size);
            h = crc32c(h, v.mv_data, v.mv_size);
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
    }
    rtxn_put(s, txn, cached);
    if (rc && rc != MDB_NOTFOUND) {
        kv_result_free(out);
        return lmdb_err(s, rc, "hash");
    }
    Etcdserverpb__HashKVResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp || !(resp->header = new_header(s, out->arena, cur))) {
        kv_result_free(out);
        return KV_ENOMEM;
    }
    Etcdserverpb__ResponseHeader *hd = resp->header;
    etcdserverpb__hash_kvresponse__init(resp);
    resp->header = hd;
    resp->hash = h;
    resp->compact_revision = compact;
    resp->hash_revision = rev;
    out->msg = &resp->base;
    return 0;
}

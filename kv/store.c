/* store.c — opening and closing a member's LMDB environment, the loop turn's write
 * transaction, error texts, and the small raft_meta records (ids, applied index, blobs). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_int.h"

/* ---- errors ---------------------------------------------------------------------- */

static const char *const err_text[KV__ECOUNT] = {
    [KV_OK] = "kv: ok",
    [KV_EINVAL] = "kv: invalid argument",
    [KV_ENOMEM] = "kv: out of memory",
    [KV_EIO] = "kv: storage failure",
    [KV_EMAPFULL] = "kv: map full",
    [KV_ECORRUPT] = "kv: corrupt record",
    [KV_EBUSY] = "kv: busy (a write transaction is open)",
    [KV_ENOTFOUND] = "kv: not found",
    [KV_EAPPLIED] = "kv: entry already applied",
    [KV_ELOGCOMPACTED] = "kv: log entry compacted",
    [KV_ELOGUNAVAIL] = "kv: log entry unavailable",
    [KV_EUNKNOWNREQ] = "kv: unknown request",
    [KV_EEMPTYKEY] = "etcdserver: key is not provided",
    [KV_EKEYTOOLONG] = "etcdserver: key is too long (plinth's limit is 510 bytes)",
    [KV_EKEYNOTFOUND] = "etcdserver: key not found",
    [KV_EVALUEPROVIDED] = "etcdserver: value is provided",
    [KV_ELEASEPROVIDED] = "etcdserver: lease is provided",
    [KV_ETOOMANYOPS] = "etcdserver: too many operations in txn request",
    [KV_EDUPKEY] = "etcdserver: duplicate key given in txn request",
    [KV_ECOMPACTED] = "etcdserver: mvcc: required revision has been compacted",
    [KV_EFUTUREREV] = "etcdserver: mvcc: required revision is a future revision",
    [KV_ENOSPACE] = "etcdserver: mvcc: database space exceeded",
    [KV_ELEASENOTFOUND] = "etcdserver: requested lease not found",
    [KV_ELEASEEXISTS] = "etcdserver: lease already exists",
    [KV_ELEASETTLTOOLARGE] = "etcdserver: too large lease TTL",
    [KV_EINVALIDSORT] = "etcdserver: invalid sort option",
    [KV_ECORRUPTALARM] = "etcdserver: corrupt cluster",
};

/* gRPC codes: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 8 RESOURCE_EXHAUSTED,
 * 9 FAILED_PRECONDITION, 11 OUT_OF_RANGE, 13 INTERNAL, 14 UNAVAILABLE, 15 DATA_LOSS */
static const int err_grpc[KV__ECOUNT] = {
    [KV_OK] = 0, [KV_EINVAL] = 13, [KV_ENOMEM] = 14, [KV_EIO] = 14, [KV_EMAPFULL] = 14,
    [KV_ECORRUPT] = 15, [KV_EBUSY] = 14, [KV_ENOTFOUND] = 5, [KV_EAPPLIED] = 13,
    [KV_ELOGCOMPACTED] = 13, [KV_ELOGUNAVAIL] = 13, [KV_EUNKNOWNREQ] = 12,
    [KV_EEMPTYKEY] = 3, [KV_EKEYTOOLONG] = 3, [KV_EKEYNOTFOUND] = 3, [KV_EVALUEPROVIDED] = 3,
    [KV_ELEASEPROVIDED] = 3, [KV_ETOOMANYOPS] = 3, [KV_EDUPKEY] = 3, [KV_ECOMPACTED] = 11,
    [KV_EFUTUREREV] = 11, [KV_ENOSPACE] = 8, [KV_ELEASENOTFOUND] = 5, [KV_ELEASEEXISTS] = 9,
    [KV_ELEASETTLTOOLARGE] = 11, [KV_EINVALIDSORT] = 3, [KV_ECORRUPTALARM] = 15,
};

const char *kv_strerror(int err)
{
    if (err < 0 || err >= KV__ECOUNT || !err_text[err])
        return "kv: unknown error";
    return err_text[err];
}

kv_status_msg kv_etcd_status(int err)
{
    kv_status_msg m = {13, "kv: unknown error"};
    if (err >= 0 && err < KV__ECOUNT) {
        m.grpc_code = err_grpc[err];
        m.message = err == KV_OK ? "" : kv_strerror(err);
    }
    return m;
}

bool kv_error_is_fatal_txn(int err)
{
    return err == KV_EMAPFULL || err == KV_EIO || err == KV_ENOMEM || err == KV_ECORRUPT;
}

const char *kv_errmsg(const kv_store *s)
{
    return s && s->errmsg[0] ? s->errmsg : "kv: no error";
}

int kv_seterr(kv_store *s, int err, const char *fmt, ...)
{
    if (s) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
        va_end(ap);
    }
    return err;
}

int lmdb_err(kv_store *s, int rc, const char *what)
{
    int err = rc == MDB_MAP_FULL ? KV_EMAPFULL : rc == ENOMEM ? KV_ENOMEM
              : rc == MDB_CORRUPTED ? KV_ECORRUPT : KV_EIO;
    if (rc == MDB_MAP_FULL && s)
        s->grow_map = true;
    return kv_seterr(s, err, "kv: %s: %s", what, rc == MDB_MAP_FULL ? "map full" : mdb_strerror(rc));
}

/* ---- options, open, close -------------------------------------------------------- */

void kv_options_init(kv_options *opt)
{
    memset(opt, 0, sizeof(*opt));
}

static void fix_options(kv_options *o)
{
    if (!o->quota_bytes)
        o->quota_bytes = 2ull << 30;
    if (!o->map_size) {
        o->map_size = o->quota_bytes * 2;
        if (o->map_size < (1ull << 30))
            o->map_size = 1ull << 30;
    }
    if (!o->max_txn_ops)
        o->max_txn_ops = 128;
    if (!o->min_lease_ttl)
        o->min_lease_ttl = 2;
    if (!o->watch_batch_events)
        o->watch_batch_events = 1000;
}

static int env_open(kv_store *s)
{
    int rc;
    MDB_txn *txn = NULL;
    if ((rc = mdb_env_create(&s->env)))
        return lmdb_err(s, rc, "open: create env");
    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, 256);
    if ((rc = mdb_env_set_mapsize(s->env, s->map_size)))
        goto fail;
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (s->opt.no_sync)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    if ((rc = mdb_env_open(s->env, s->dir, flags, 0600)))
        goto fail;
    /* reader slots left by a killed process would pin old pages forever */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    /* the data file may already be bigger than the map we asked for */
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;
    s->maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
        goto fail;
    if ((rc = mdb_dbi_open(txn, "raft_log", MDB_CREATE, &s->dbi_log)) ||
        (rc = mdb_dbi_open(txn, "raft_meta", MDB_CREATE, &s->dbi_meta)) ||
        (rc = mdb_dbi_open(txn, "kv_rev", MDB_CREATE, &s->dbi_rev)) ||
        (rc = mdb_dbi_open(txn, "kv_key", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &s->dbi_key)) ||
        (rc = mdb_dbi_open(txn, "lease", MDB_CREATE | MDB_DUPSORT, &s->dbi_lease)))
        goto fail;
    if ((rc = mdb_txn_commit(txn))) {
        txn = NULL;
        goto fail;
    }
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    int err = lmdb_err(s, rc, "open");
    mdb_env_close(s->env);
    s->env = NULL;
    return err;
}

static void env_close(kv_store *s)
{
    if (s->rtxn) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
    }
    if (s->env) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
}

int kv_open(const char *data_dir, const kv_options *opt, kv_store **out, char *errbuf,
            size_t errlen)
{
    *out = NULL;
    kv_store *s = calloc(1, sizeof(*s));
    int err;
    if (!s)
        return KV_ENOMEM;
    if (opt)
        s->opt = *opt;
    fix_options(&s->opt);
    s->map_size = s->opt.map_size;
    s->next_expiry = INT64_MAX;
    pthread_mutex_init(&s->copy_mu, NULL);
    pthread_cond_init(&s->copy_cv, NULL);
    if (!data_dir || snprintf(s->dir, sizeof(s->dir), "%s/member", data_dir) >= (int)sizeof(s->dir)) {
        err = kv_seterr(s, KV_EINVAL, "kv: open: bad data dir");
        goto fail;
    }
    if (mkdir(data_dir, 0700) && errno != EEXIST) {
        err = kv_seterr(s, KV_EIO, "kv: open: mkdir %s: %s", data_dir, strerror(errno));
        goto fail;
    }
    if (mkdir(s->dir, 0700) && errno != EEXIST) {
        err = kv_seterr(s, KV_EIO, "kv: open: mkdir %s: %s", s->dir, strerror(errno));
        goto fail;
    }
    if ((err = env_open(s)))
        goto fail;
    if ((err = store_load_state(s)))
        goto fail;
    *out = s;
    return 0;
fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", s->errmsg[0] ? s->errmsg : kv_strerror(err));
    env_close(s);
    pthread_mutex_destroy(&s->copy_mu);
    pthread_cond_destroy(&s->copy_cv);
    free(s->leases);
    free(s);
    return err;
}

void kv_close(kv_store *s)
{
    if (!s)
        return;
    if (s->wtxn)
        kv_wtxn_abort(s->wtxn);
    watch_free_all(s);
    env_close(s);
    pthread_mutex_destroy(&s->copy_mu);
    pthread_cond_destroy(&s->copy_cv);
    free(s->leases);
    free(s);
}

/* ---- read transactions ----------------------------------------------------------- */

int rtxn_get(kv_store *s, MDB_txn **txn, bool *cached)
{
    int rc;
    if (!s->env)
        return kv_seterr(s, KV_EIO, "kv: store is closed");
    if (!s->rtxn_busy && s->rtxn) {
        if ((rc = mdb_txn_renew(s->rtxn)) == 0) {
            s->rtxn_busy = true;
            *txn = s->rtxn;
            *cached = true;
            return 0;
        }
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn)))
        return lmdb_err(s, rc, "read txn");
    *cached = false;
    if (!s->rtxn_busy && !s->rtxn) {
        s->rtxn = *txn;
        s->rtxn_busy = true;
        *cached = true;
    }
    return 0;
}

void rtxn_put(kv_store *s, MDB_txn *txn, bool cached)
{
    if (cached) {
        mdb_txn_reset(txn);
        s->rtxn_busy = false;
    } else {
        mdb_txn_abort(txn);
    }
}

int view_get(kv_store *s, MDB_txn **txn, bool *cached, bool *is_w)
{
    if (s->wtxn) {
        *txn = s->wtxn->txn;
        *is_w = true;
        *cached = false;
        return 0;
    }
    *is_w = false;
    return rtxn_get(s, txn, cached);
}

void view_put(kv_store *s, MDB_txn *txn, bool cached, bool is_w)
{
    if (!is_w)
        rtxn_put(s, txn, cached);
}

/* ---- raft_meta records ----------------------------------------------------------- */

int meta_get_raw(kv_store *s, MDB_txn *txn, const char *name, MDB_val *v)
{
    MDB_val k = {strlen(name), (void *)name};
    int rc = mdb_get(txn, s->dbi_meta, &k, v);
    if (rc == MDB_NOTFOUND)
        return KV_ENOTFOUND;
    if (rc)
        return lmdb_err(s, rc, "meta get");
    return 0;
}

int meta_put_raw(kv_wtxn *w, const char *name, const void *data, size_t len)
{
    MDB_val k = {strlen(name), (void *)name}, v = {len, (void *)data};
    int rc = mdb_put(w->txn, w->s->dbi_meta, &k, &v, 0);
    return rc ? lmdb_err(w->s, rc, "meta put") : 0;
}

bool nospace_active(const alarm_ent *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].type == ETCDSERVERPB__ALARM_TYPE__NOSPACE)
            return true;
    return false;
}

bool corrupt_active(const alarm_ent *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].type == ETCDSERVERPB__ALARM_TYPE__CORRUPT)
            return true;
    return false;
}

int load_alarms(kv_store *s, MDB_txn *txn, alarm_ent *out, size_t *n)
{
    MDB_val v;
    *n = 0;
    int err = meta_get_raw(s, txn, "alarms", &v);
    if (err == KV_ENOTFOUND)
        return 0;
    if (err)
        return err;
    const uint8_t *p = v.mv_data;
    for (size_t i = 0; i + 12 <= v.mv_size && *n < MAX_ALARMS; i += 12) {
        out[*n].member = get_be64(p + i);
        out[*n].type = (int32_t)get_be32(p + i + 8);
        (*n)++;
    }
    return 0;
}

static uint64_t meta_u64(kv_store *s, MDB_txn *txn, const char *name, size_t off)
{
    MDB_val v;
    if (meta_get_raw(s, txn, name, &v) || v.mv_size < off + 8)
        return 0;
    return get_be64((const uint8_t *)v.mv_data + off);
}

int store_load_state(kv_store *s)
{
    MDB_txn *txn;
    bool cached;
    int err = rtxn_get(s, &txn, &cached);
    if (err)
        return err;
    s->rev = (kv_rev_t)meta_u64(s, txn, "rev", 0);
    if (s->rev < 1)
        s->rev = 1;
    s->compact_rev = (kv_rev_t)meta_u64(s, txn, "compact", 0);
    s->live_keys = (int64_t)meta_u64(s, txn, "keys", 0);
    s->applied = meta_u64(s, txn, "applied", 0);
    s->applied_term = meta_u64(s, txn, "applied", 8);
    s->cluster_id = meta_u64(s, txn, "ids", 0);
    s->member_id = meta_u64(s, txn, "ids", 8);
    err = load_alarms(s, txn, s->alarms, &s->n_alarms);
    rtxn_put(s, txn, cached);
    if (err)
        return err;
    return lease_load(s);
}

/* ---- write transaction ----------------------------------------------------------- */

int kv_wtxn_begin(kv_store *s, kv_wtxn **out)
{
    int rc;
    *out = NULL;
    if (!s->env)
        return kv_seterr(s, KV_EIO, "kv: store is closed");
    if (s->wtxn)
        return kv_seterr(s, KV_EBUSY, "kv: begin: a write transaction is already open");
    if (s->grow_map && !s->rtxn_busy) {
        /* no transaction in the process may be live while the map is resized: wait for
         * running snapshot copies (rare: only after a full map) and hold new ones back */
        pthread_mutex_lock(&s->copy_mu);
        s->resizing = true;
        while (s->copies > 0)
            pthread_cond_wait(&s->copy_cv, &s->copy_mu);
        if (s->rtxn) {
            mdb_txn_abort(s->rtxn);
            s->rtxn = NULL;
        }
        uint64_t nsz = s->map_size * 2;
        if (mdb_env_set_mapsize(s->env, nsz) == 0) {
            s->map_size = nsz;
            s->grow_map = false;
        }
        s->resizing = false;
        pthread_cond_broadcast(&s->copy_cv);
        pthread_mutex_unlock(&s->copy_mu);
    }
    kv_wtxn *w = calloc(1, sizeof(*w));
    if (!w)
        return KV_ENOMEM;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &w->txn))) {
        free(w);
        return lmdb_err(s, rc, "begin");
    }
    w->s = s;
    w->rev = s->rev;
    w->compact_rev = s->compact_rev;
    w->live_keys = s->live_keys;
    w->applied = s->applied;
    w->applied_term = s->applied_term;
    memcpy(w->alarms, s->alarms, sizeof(s->alarms));
    w->n_alarms = s->n_alarms;
    s->wtxn = w;
    *out = w;
    return 0;
}

static void wtxn_free(kv_wtxn *w)
{
    if (w->batch) {
        arena_free(w->batch->arena);
        free(w->batch->evs);
        free(w->batch);
    }
    free(w->lops);
    w->s->wtxn = NULL;
    free(w);
}

void kv_wtxn_abort(kv_wtxn *w)
{
    if (!w)
        return;
    mdb_txn_abort(w->txn);
    wtxn_free(w);
}

static int flush_meta(kv_wtxn *w)
{
    kv_store *s = w->s;
    uint8_t b[16];
    int err;
    if (w->rev != s->rev) {
        put_be64(b, (uint64_t)w->rev);
        if ((err = meta_put_raw(w, "rev", b, 8)))
            return err;
    }
    if (w->live_keys != s->live_keys) {
        put_be64(b, (uint64_t)w->live_keys);
        if ((err = meta_put_raw(w, "keys", b, 8)))
            return err;
    }
    if (w->compact_rev != s->compact_rev) {
        put_be64(b, (uint64_t)w->compact_rev);
        if ((err = meta_put_raw(w, "compact", b, 8)))
            return err;
    }
    if (w->applied != s->applied || w->applied_term != s->applied_term) {
        put_be64(b, w->applied);
        put_be64(b + 8, w->applied_term);
        if ((err = meta_put_raw(w, "applied", b, 16)))
            return err;
    }
    if (w->alarms_dirty) {
        uint8_t ab[MAX_ALARMS * 12];
        for (size_t i = 0; i < w->n_alarms; i++) {
            put_be64(ab + i * 12, w->alarms[i].member);
            put_be32(ab + i * 12 + 8, (uint32_t)w->alarms[i].type);
        }
        if ((err = meta_put_raw(w, "alarms", ab, w->n_alarms * 12)))
            return err;
    }
    return 0;
}

static int wtxn_commit(kv_wtxn *w, bool sync)
{
    kv_store *s = w->s;
    int err = flush_meta(w);
    if (err) {
        kv_wtxn_abort(w);
        return err;
    }
    /* LMDB 0.9 reads MDB_NOMETASYNC from the environment at commit time. Set for this one
     * commit: the data pages are still fdatasync'ed BEFORE the meta page is written (so a
     * meta page on disk never points at pages that are not), but the meta page is written
     * without O_DSYNC; the next commit's fdatasync (or kv_sync) makes it durable. Full
     * MDB_NOSYNC would save the other sync too, but ext4 does not keep write order, so a
     * machine crash could then leave a meta page whose pages never reached the disk. */
    bool skip = !sync && !s->opt.no_sync;
    if (skip)
        mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1);
    int rc = mdb_txn_commit(w->txn);
    if (skip)
        mdb_env_set_flags(s->env, MDB_NOMETASYNC, 0);
    if (!rc)
        s->unsynced = skip;
    if (rc) {
        w->txn = NULL;
        err = lmdb_err(s, rc, "commit");
        wtxn_free(w);
        return err;
    }
    s->rev = w->rev;
    s->compact_rev = w->compact_rev;
    s->live_keys = w->live_keys;
    s->commits++;
    s->applied = w->applied;
    s->applied_term = w->applied_term;
    memcpy(s->alarms, w->alarms, sizeof(s->alarms));
    s->n_alarms = w->n_alarms;
    lease_commit_ops(s, w->lops, w->n_lops);
    if (w->batch) {
        watch_commit(s, w->batch);
        w->batch = NULL;
    }
    wtxn_free(w);
    return 0;
}

int kv_wtxn_commit(kv_wtxn *w)
{
    return wtxn_commit(w, true);
}

int kv_wtxn_commit_nosync(kv_wtxn *w)
{
    return wtxn_commit(w, false);
}

int kv_sync(kv_store *s)
{
    int rc;
    if (!s->unsynced || s->opt.no_sync)
        return 0;
    if ((rc = mdb_env_sync(s->env, 1)))
        return lmdb_err(s, rc, "sync");
    s->unsynced = false;
    return 0;
}

/* ---- applied index, ids, blobs --------------------------------------------------- */

int kv_applied_set(kv_wtxn *w, kv_index_t index, kv_term_t term)
{
    if (index <= w->applied)
        return kv_seterr(w->s, KV_EINVAL, "kv: applied: index %llu is not above %llu",
                         (unsigned long long)index, (unsigned long long)w->applied);
    w->applied = index;
    w->applied_term = term;
    return 0;
}

kv_index_t kv_applied_index(kv_store *s)
{
    return s->wtxn ? s->wtxn->applied : s->applied;
}

kv_term_t kv_applied_term(kv_store *s)
{
    return s->wtxn ? s->wtxn->applied_term : s->applied_term;
}

int kv_ids_set(kv_wtxn *w, uint64_t cluster_id, uint64_t member_id)
{
    uint8_t b[16];
    put_be64(b, cluster_id);
    put_be64(b + 8, member_id);
    int err = meta_put_raw(w, "ids", b, 16);
    if (!err) {
        /* ids never roll back in practice; keep them visible at once for headers */
        w->s->cluster_id = cluster_id;
        w->s->member_id = member_id;
    }
    return err;
}

void kv_ids_get(kv_store *s, uint64_t *cluster_id, uint64_t *member_id)
{
    if (cluster_id)
        *cluster_id = s->cluster_id;
    if (member_id)
        *member_id = s->member_id;
}

static int user_name(const char *name, char *buf, size_t cap)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 200 || n + 3 > cap)
        return KV_EINVAL;
    memcpy(buf, "u/", 2);
    memcpy(buf + 2, name, n + 1);
    return 0;
}

int kv_meta_put(kv_wtxn *w, const char *name, const void *data, size_t len)
{
    char nb[256];
    if (user_name(name, nb, sizeof nb))
        return kv_seterr(w->s, KV_EINVAL, "kv: meta put: bad name");
    return meta_put_raw(w, nb, data, len);
}

static int blob_get(kv_store *s, const char *name, void **data, size_t *len)
{
    MDB_txn *txn;
    bool cached, is_w;
    MDB_val v;
    *data = NULL;
    *len = 0;
    int err = view_get(s, &txn, &cached, &is_w);
    if (err)
        return err;
    err = meta_get_raw(s, txn, name, &v);
    if (!err) {
        *data = malloc(v.mv_size ? v.mv_size : 1);
        if (!*data)
            err = KV_ENOMEM;
        else {
            memcpy(*data, v.mv_data, v.mv_size);
            *len = v.mv_size;
        }
    }
    view_put(s, txn, cached, is_w);
    return err;
}

int kv_meta_get(kv_store *s, const char *name, void **data, size_t *len)
{
    char nb[256];
    if (user_name(name, nb, sizeof nb))
        return kv_seterr(s, KV_EINVAL, "kv: meta get: bad name");
    return blob_get(s, nb, data, len);
}

int kv_meta_del(kv_wtxn *w, const char *name)
{
    char nb[256];
    if (user_name(name, nb, sizeof nb))
        return kv_seterr(w->s, KV_EINVAL, "kv: meta del: bad name");
    MDB_val k = {strlen(nb), nb};
    int rc = mdb_del(w->txn, w->s->dbi_meta, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return KV_ENOTFOUND;
    return rc ? lmdb_err(w->s, rc, "meta del") : 0;
}

int kv_conf_state_set(kv_wtxn *w, const void *data, size_t len)
{
    return meta_put_raw(w, "conf", data, len);
}

int kv_conf_state_get(kv_store *s, void **data, size_t *len)
{
    return blob_get(s, "conf", data, len);
}

/* ---- response headers ------------------------------------------------------------ */

void fill_header(kv_store *s, Etcdserverpb__ResponseHeader *h, kv_rev_t rev)
{
    etcdserverpb__response_header__init(h);
    h->cluster_id = s->cluster_id;
    h->member_id = s->member_id;
    h->revision = rev;
}

Etcdserverpb__ResponseHeader *new_header(kv_store *s, kv_arena *a, kv_rev_t rev)
{
    Etcdserverpb__ResponseHeader *h = arena_alloc(a, sizeof(*h));
    if (h)
        fill_header(s, h, rev);
    return h;
}

kv_rev_t kv_current_revision(kv_store *s)
{
    return s->rev;
}

kv_rev_t kv_compact_revision(kv_store *s)
{
    return s->compact_rev;
}

/* kv_int.h — kv/'s private structures and helpers shared by its files (not public). */
#ifndef PLINTH_KV_INT_H
#define PLINTH_KV_INT_H

#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <string.h>

#include "kv/kv.h"

/* ---- byte helpers (stored numbers are big-endian so byte order is numeric order) ---- */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kv/: the big-endian helpers below assume a little-endian host"
#endif
static inline void put_be64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}
static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}
static inline uint32_t get_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

/* ---- arena: bump allocator backing responses and event batches ---- */
kv_arena *arena_new(void);
void arena_free(kv_arena *a);
void *arena_alloc(kv_arena *a, size_t n);   /* zeroed, 8-aligned; NULL on ENOMEM */
void *arena_dup(kv_arena *a, const void *p, size_t n);

/* ---- stored records ---- */
/* kv_key duplicate: main(8) sub(8) flags(1); flags bit0 = tombstone. */
#define DUP_LEN 17
#define REC_TOMB 0x1

/* A decoded kv_rev record; pointers borrow the LMDB page (valid while the txn is). */
typedef struct rec {
    kv_rev_t mod, sub;
    bool tomb;
    const uint8_t *key;
    size_t key_len;
    kv_rev_t create, version;
    kv_lease_id_t lease;
    const uint8_t *value;
    size_t value_len;
} rec;

/* ---- watch: one change made by an applied entry ---- */
typedef struct ev {
    bool del;
    kv_rev_t rev, sub;
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    kv_rev_t create, version;
    kv_lease_id_t lease;
    bool has_prev;
    uint8_t *pvalue;
    size_t pvalue_len;
    kv_rev_t pcreate, pmod, pversion;
    kv_lease_id_t please;
} ev;

typedef struct ev_batch {
    struct ev_batch *next;
    kv_arena *arena;
    ev *evs;
    size_t n, cap;
    bool recorded;        /* false: events were not kept (no watchers at the time) */
    kv_rev_t first_rev, last_rev;
    size_t imin, imax;    /* events with the smallest and largest key (fan-out skips
                             watchers whose range misses them and all between) */
} ev_batch;

/* ---- leases in memory ---- */
typedef struct lease_mem {
    kv_lease_id_t id;
    int64_t ttl;          /* granted TTL, seconds */
    int64_t remaining;    /* checkpointed remaining TTL, seconds (0 = none) */
    int64_t expiry_ms;    /* INT64_MAX when not primary */
    int64_t reported_ms;  /* last time kv_lease_expired returned it (0 = never) */
} lease_mem;

enum { LOP_GRANT = 1, LOP_REVOKE, LOP_CHECKPOINT };
typedef struct lease_op {
    int op;
    kv_lease_id_t id;
    int64_t ttl;
} lease_op;

/* ---- alarms (replicated, stored in raft_meta "alarms") ---- */
#define MAX_ALARMS 64
typedef struct alarm_ent {
    uint64_t member;
    int32_t type;
} alarm_ent;

struct kv_watcher {
    kv_store *s;
    struct kv_watcher *next;
    uint8_t *key, *end;   /* end NULL: single key; end_len 0 with end non-NULL: >= key */
    size_t key_len, end_len;
    bool single, from_key;
    bool no_put, no_delete, prev_kv, progress_notify;
    int64_t watch_id;
    void *owner;
    kv_watch_fn fn;
    kv_rev_t next_rev;    /* first revision not yet delivered */
    bool synced;          /* receives live events */
    bool blocked;         /* owner said busy; waits for kv_watch_resume */
    bool compacted;       /* compaction delivery pending or done */
    bool compact_sent;
    bool canceled;
    int64_t last_ms;      /* last delivery (progress notifications) */
    uint64_t round;       /* catch-up round in which it last had a batch */
};

struct kv_store {
    MDB_env *env;
    MDB_dbi dbi_log, dbi_meta, dbi_rev, dbi_key, dbi_lease;
    char dir[PATH_MAX];   /* <data-dir>/member */
    kv_options opt;
    char errmsg[512];
    size_t maxkey;
    uint64_t map_size;
    bool grow_map;
    /* snapshot copies may run on other threads; the map may only be resized while none
     * runs, so both sides take copy_mu around the check */
    pthread_mutex_t copy_mu;
    pthread_cond_t copy_cv;
    int copies;
    bool resizing;        /* the loop waits to resize: new copies wait for it */
    bool restoring;       /* kv_restore is swapping the environment: new copies wait */
    bool broken;          /* a failed restore left the store closed */

    MDB_txn *rtxn;        /* cached reset read txn */
    bool rtxn_busy;

    kv_wtxn *wtxn;

    /* committed state */
    kv_rev_t rev, compact_rev;
    int64_t live_keys;
    kv_index_t applied;
    kv_term_t applied_term;
    uint64_t cluster_id, member_id;
    uint64_t commits;      /* commits so far (cache key for the in-use size) */
    bool unsynced;         /* the last commit was kv_wtxn_commit_nosync */
    uint64_t inuse_at;     /* commits value when inuse_cache was computed, +1 */
    int64_t inuse_cache, size_cache;
    alarm_ent alarms[MAX_ALARMS];
    size_t n_alarms;

    /* leases */
    lease_mem *leases;
    size_t n_leases, cap_leases;
    bool primary;
    int64_t now_ms;
    int64_t next_expiry;

    /* watch hub */
    struct kv_watcher *watchers;
    size_t n_watchers;
    ev_batch *pending, *pending_tail;
    bool in_notify;
    bool need_reap;
    uint64_t round;       /* catch-up round (fairness between unsynced watchers) */
};

struct kv_wtxn {
    kv_store *s;
    MDB_txn *txn;
    kv_rev_t rev, compact_rev;
    int64_t live_keys;
    kv_index_t applied;
    kv_term_t applied_term;
    alarm_ent alarms[MAX_ALARMS];
    size_t n_alarms;
    bool meta_dirty, alarms_dirty;
    ev_batch *batch;
    lease_op *lops;
    size_t n_lops, cap_lops;
};

struct kv_arena;

/* ---- store.c ---- */
int kv_seterr(kv_store *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int lmdb_err(kv_store *s, int rc, const char *what);
int rtxn_get(kv_store *s, MDB_txn **txn, bool *own_cached);
/* The committed revision and compacted revision as the read txn `txn` sees them. */
void read_view(kv_store *s, MDB_txn *txn, kv_rev_t *cur, kv_rev_t *compact);
void rtxn_put(kv_store *s, MDB_txn *txn, bool own_cached);
/* txn for reads that see the open write txn (log, meta) */
int view_get(kv_store *s, MDB_txn **txn, bool *cached, bool *is_w);
void view_put(kv_store *s, MDB_txn *txn, bool cached, bool is_w);
int meta_get_raw(kv_store *s, MDB_txn *txn, const char *name, MDB_val *v);
int meta_put_raw(kv_wtxn *w, const char *name, const void *data, size_t len);
bool nospace_active(const alarm_ent *a, size_t n);
bool corrupt_active(const alarm_ent *a, size_t n);
int load_alarms(kv_store *s, MDB_txn *txn, alarm_ent *out, size_t *n);
int store_load_state(kv_store *s);
void fill_header(kv_store *s, Etcdserverpb__ResponseHeader *h, kv_rev_t rev);
Etcdserverpb__ResponseHeader *new_header(kv_store *s, kv_arena *a, kv_rev_t rev);
int result_begin(kv_result *out);

/* ---- mvcc.c ---- */
void dup_encode(uint8_t *d, kv_rev_t main, kv_rev_t sub, bool tomb);
void rev_key(uint8_t *k, kv_rev_t main, kv_rev_t sub);
int rec_decode(const MDB_val *k, const MDB_val *v, rec *r);
/* latest revision of key at or below at: 0 found (dup main/sub/tomb set), MDB_NOTFOUND */
int key_latest(MDB_cursor *kc, const uint8_t *key, size_t klen, kv_rev_t at, kv_rev_t *main,
               kv_rev_t *sub, bool *tomb);
/* live record of key at revision at (NOTFOUND if absent or deleted) */
int get_live(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t klen, kv_rev_t at, rec *r);
int check_key(kv_store *s, const uint8_t *key, size_t len);
Mvccpb__KeyValue *kv_from_rec(kv_arena *a, const rec *r, bool keys_only);

/* write context for one revision */
typedef struct wctx {
    kv_wtxn *w;
    kv_rev_t rev;   /* the revision being written */
    kv_rev_t sub;   /* next sub revision */
    bool in_txn;    /* inside a Txn: checks already ran on the pre-txn state */
} wctx;
int mvcc_put(wctx *c, const Etcdserverpb__PutRequest *p, kv_arena *a,
             Etcdserverpb__PutResponse *resp);
int mvcc_delete_range(wctx *c, const uint8_t *key, size_t klen, const uint8_t *end,
                      size_t elen, bool want_prev, kv_arena *a,
                      Etcdserverpb__DeleteRangeResponse *resp);
/* range at rev over txn; rev already validated; cur is the view's current revision */
int mvcc_range(kv_store *s, MDB_txn *txn, const Etcdserverpb__RangeRequest *r, kv_rev_t cur,
               kv_arena *a, Etcdserverpb__RangeResponse *resp);
int range_check_rev(kv_rev_t req, kv_rev_t cur, kv_rev_t compact);
/* iterate keys of [key,end) live at rev */
typedef int (*key_visit_fn)(void *arg, const rec *r);
int mvcc_scan(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t klen, const uint8_t *end,
              size_t elen, kv_rev_t at, key_visit_fn fn, void *arg);
bool in_range(const uint8_t *k, size_t kl, const uint8_t *key, size_t klen, const uint8_t *end,
              size_t elen);
int mvcc_compact(kv_wtxn *w, kv_rev_t at);
void ev_add(kv_wtxn *w, const ev *e);

/* ---- txn.c ---- */
int check_txn(kv_store *s, const Etcdserverpb__TxnRequest *t, int max_ops);
int check_put(kv_store *s, const Etcdserverpb__PutRequest *p);
int apply_txn(kv_wtxn *w, const Etcdserverpb__TxnRequest *t, kv_arena *a,
              Etcdserverpb__TxnResponse **out);

/* ---- lease.c ---- */
int lease_exists_txn(kv_store *s, MDB_txn *txn, kv_lease_id_t id);
int lease_attach(kv_wtxn *w, kv_lease_id_t id, const uint8_t *key, size_t klen);
int lease_detach(kv_wtxn *w, kv_lease_id_t id, const uint8_t *key, size_t klen);
int lease_load(kv_store *s);
void lease_commit_ops(kv_store *s, const lease_op *ops, size_t n);
int apply_lease_grant(kv_wtxn *w, kv_index_t index, const Etcdserverpb__LeaseGrantRequest *r,
                      kv_arena *a, kv_result *out);
int apply_lease_revoke(kv_wtxn *w, const Etcdserverpb__LeaseRevokeRequest *r, kv_arena *a,
                       kv_result *out);
int apply_lease_checkpoint(kv_wtxn *w, const Etcdserverpb__LeaseCheckpointRequest *r,
                           kv_arena *a, kv_result *out);
lease_mem *lease_find(kv_store *s, kv_lease_id_t id);

/* ---- quota.c ---- */
int apply_alarm(kv_wtxn *w, const Etcdserverpb__AlarmRequest *r, kv_arena *a, kv_result *out);
int db_sizes(kv_store *s, int64_t *size, int64_t *in_use);

/* ---- watch.c ---- */
void watch_commit(kv_store *s, ev_batch *b);
void watch_reset_after_restore(kv_store *s);
void watch_free_all(kv_store *s);

#endif

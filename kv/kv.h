/* kv.h — plinth's storage on LMDB: the Raft log and hard state, the MVCC key space with
 * etcd's semantics, leases, the NOSPACE quota, snapshots and the watch hub.
 *
 * ---------------------------------------------------------------------------------
 * One environment per member, one writer per loop turn
 * ---------------------------------------------------------------------------------
 * A store is one LMDB environment in <data-dir>/member/ (data.mdb, lock.mdb) with the
 * databases raft_log, raft_meta, kv_rev, kv_key (MDB_DUPSORT) and lease. The node loop
 * owns the store and calls it from ONE thread (the only exception: kv_snapshot_write_fd
 * and kv_snapshot_write_path may run on another thread). Each turn of the loop:
 *
 *   kv_wtxn *w;
 *   kv_wtxn_begin(store, &w);
 *   kv_log_append(w, entries, n);            persist new Raft entries (drops a conflicting
 *                                            suffix first)
 *   kv_hard_state_set(w, &hs);               if it changed
 *   for each committed entry e:
 *       normal entry with data:  plinthpb__request__unpack(...) then
 *                                kv_apply(w, e.index, e.term, req, &res) and keep res for
 *                                the waiting client (if any), kv_result_free(&res) later
 *       noop / conf change:      node's own work (kv_conf_state_set, kv_meta_put) then
 *                                kv_applied_set(w, e.index, e.term)
 *   kv_wtxn_commit(w);                       ONE fsync; the handle is gone afterwards
 *   kv_watch_notify(store);                  fan the committed events out to watchers
 *
 * If any call on the write transaction fails with an error that kv_error_is_fatal_txn()
 * reports true (KV_EMAPFULL, KV_EIO, KV_ENOMEM), the transaction is unusable: call
 * kv_wtxn_abort() and retry the whole turn (nothing of it was written; for KV_EMAPFULL
 * the store grows its map before the next kv_wtxn_begin). Errors that an etcd client
 * should see (a compacted revision, a missing lease, NOSPACE, ...) are NOT failures of
 * the transaction: kv_apply returns 0 and puts them in kv_result.err, and the entry still
 * counts as applied.
 *
 * Exactly once: kv_apply and kv_applied_set record the applied index inside the write
 * transaction, so after a crash the store holds either the entry's effects and its
 * index, or neither. kv_apply on an index at or below the applied index does nothing and
 * returns KV_EAPPLIED (harmless: the node may replay committed entries after restart).
 *
 * Reads (kv_range, kv_log_*, kv_*_get, status) use a short read transaction of their
 * own and see only committed data — except the kv_log_ and meta getters, which see the
 * open write transaction's writes when one is open (so a turn can read back what it
 * just wrote).
 *
 * ---------------------------------------------------------------------------------
 * Memory and ownership
 * ---------------------------------------------------------------------------------
 * Responses are protobuf-c messages allocated in an arena owned by a kv_result; pack
 * them (protobuf_c_message_pack) or copy what you need, then kv_result_free(). Request
 * messages passed in are borrowed for the duration of the call. Byte views returned by
 * getters are copies the caller frees with free() unless stated otherwise.
 *
 * ---------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------
 * Functions return 0 or a positive KV_E* code. kv_strerror(code) is a static text;
 * kv_errmsg(store) is the last failure's detail ("kv: put: key is 600 bytes, the limit
 * is 510"). kv_etcd_status(code) gives the gRPC status code and etcd's exact message for
 * the codes a client may see.
 */
#ifndef PLINTH_KV_H
#define PLINTH_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.pb-c.h"
#include "kv.pb-c.h"
#include "rpc.pb-c.h"

/* ---- domain numbers -------------------------------------------------------------- */

typedef uint64_t kv_index_t;   /* Raft log index */
typedef uint64_t kv_term_t;    /* Raft term */
typedef int64_t kv_rev_t;      /* MVCC main revision (etcd's int64) */
typedef int64_t kv_lease_id_t; /* lease id (etcd's int64; 0 = no lease) */

typedef struct kv_store kv_store;     /* one open member store */
typedef struct kv_wtxn kv_wtxn;       /* the loop turn's write transaction */
typedef struct kv_watcher kv_watcher; /* one watcher in the hub */
typedef struct kv_arena kv_arena;     /* response memory; internal */

/* ---- errors ---------------------------------------------------------------------- */

enum kv_err {
    KV_OK = 0,
    /* store / transaction failures */
    KV_EINVAL = 1,       /* bad argument (caller bug) */
    KV_ENOMEM,           /* out of memory */
    KV_EIO,              /* LMDB or OS failure (detail in kv_errmsg) */
    KV_EMAPFULL,         /* LMDB map full: abort the turn and retry; the map grows */
    KV_ECORRUPT,         /* a stored record does not decode */
    KV_EBUSY,            /* a write transaction is already open / not allowed now */
    KV_ENOTFOUND,        /* a meta name, log entry or watcher does not exist */
    KV_EAPPLIED,         /* kv_apply: entry index <= applied index; nothing done */
    KV_ELOGCOMPACTED,    /* Raft log: index below the first stored index */
    KV_ELOGUNAVAIL,      /* Raft log: index above the last stored index */
    KV_EUNKNOWNREQ,      /* kv_apply: Request has no field kv/ knows */
    /* errors an etcd client sees (kv_etcd_status gives code + text) */
    KV_EEMPTYKEY,        /* etcdserver: key is not provided */
    KV_EKEYTOOLONG,      /* key longer than KV_MAX_KEY (InvalidArgument, plinth's text) */
    KV_EKEYNOTFOUND,     /* etcdserver: key not found (ignore_value/ignore_lease on a missing key, empty RequestOp) */
    KV_EVALUEPROVIDED,   /* etcdserver: value is provided */
    KV_ELEASEPROVIDED,   /* etcdserver: lease is provided */
    KV_ETOOMANYOPS,      /* etcdserver: too many operations in txn request */
    KV_EDUPKEY,          /* etcdserver: duplicate key given in txn request */
    KV_ECOMPACTED,       /* etcdserver: mvcc: required revision has been compacted */
    KV_EFUTUREREV,       /* etcdserver: mvcc: required revision is a future revision */
    KV_ENOSPACE,         /* etcdserver: mvcc: database space exceeded */
    KV_ELEASENOTFOUND,   /* etcdserver: requested lease not found */
    KV_ELEASEEXISTS,     /* etcdserver: lease already exists */
    KV_ELEASETTLTOOLARGE,/* etcdserver: too large lease TTL */
    KV_EINVALIDSORT,     /* etcdserver: invalid sort option */
    KV_ECORRUPTALARM,    /* etcdserver: corrupt cluster (CORRUPT alarm active) */
    KV__ECOUNT
};

/* Static text for a code ("kv: map full", ...). Never NULL. */
const char *kv_strerror(int err);

/* The gRPC status a client should get for err. For the client-visible codes above this
 * is etcd's code and exact message (e.g. {11, "etcdserver: mvcc: required revision has
 * been compacted"}); for internal failures it is {14 UNAVAILABLE or 13 INTERNAL,
 * kv_strerror(err)}. */
typedef struct kv_status_msg {
    int grpc_code;
    const char *message; /* static */
} kv_status_msg;
kv_status_msg kv_etcd_status(int err);

/* True when err leaves the open write transaction unusable (abort and retry the turn). */
bool kv_error_is_fatal_txn(int err);

/* Detail of the last failure on this store ("kv: put: map full"); valid until the next
 * call on the store. */
const char *kv_errmsg(const kv_store *s);

/* Longest key accepted (bytes). LMDB's key limit (511) minus the one-byte tag the lease
 * index puts in front of a key. Longer keys are refused with KV_EKEYTOOLONG. */
#define KV_MAX_KEY 510

/* ---- open / close ---------------------------------------------------------------- */

typedef struct kv_options {
    uint64_t map_size;     /* LMDB map size in bytes; 0 = max(2 x quota, 1 GiB). The
                              map grows on its own (doubling) if it ever fills. */
    uint64_t quota_bytes;  /* --quota-backend-bytes; 0 = 2 GiB (etcd's default) */
    unsigned max_txn_ops;  /* --max-txn-ops; 0 = 128 */
    bool no_sync;          /* true: commits do not fsync (benchmarks and tests only) */
    int64_t min_lease_ttl; /* seconds; grants below are raised to it; 0 = 2 (etcd's
                              ceil(1.5 x election timeout) at defaults) */
    size_t watch_batch_events; /* most events handed to one watcher callback during a
                                  history catch-up; 0 = 1000 */
} kv_options;

/* Fills opt with the defaults (all zero = defaults). */
void kv_options_init(kv_options *opt);

/* Opens (creating if needed) the store under <data_dir>/member/. opt may be NULL.
 * On success *out is the store (free with kv_close). On failure nothing is left open,
 * *out is NULL, and if errbuf is non-NULL it receives the reason (errlen bytes). */
int kv_open(const char *data_dir, const kv_options *opt, kv_store **out, char *errbuf,
            size_t errlen);

/* Closes the store. An open write transaction is aborted; watchers are freed (their
 * callbacks are not called). NULL is ignored. */
void kv_close(kv_store *s);

/* ---- the loop turn's write transaction ------------------------------------------- */

/* Begins the write transaction for this turn. At most one is open per store
 * (KV_EBUSY otherwise). *out is valid until kv_wtxn_commit or kv_wtxn_abort. */
int kv_wtxn_begin(kv_store *s, kv_wtxn **out);

/* Commits: everything written in the turn becomes durable with one fsync (unless
 * no_sync). The handle is freed whether it succeeds or not. On success the events of the
 * applied entries are queued for kv_watch_notify and lease changes take effect in
 * memory. On failure nothing of the turn is stored (retry the turn). */
int kv_wtxn_commit(kv_wtxn *w);

/* Commits like kv_wtxn_commit with ONE disk sync instead of two and without waiting
 * for the turn itself to be durable. LMDB's synced commit writes the data pages,
 * fdatasyncs them, then writes the meta page with O_DSYNC (a second sync); this commit
 * skips the second one (MDB_NOMETASYNC for this commit only). The turn is visible to
 * readers, watchers and leases at once and survives a crash of the process (the meta page
 * is in the page cache), but a crash of the machine (power loss, kernel panic) may undo
 * it until the next commit of either kind or kv_sync() flushes its meta page. Integrity
 * holds under any crash: the meta page is written only after its data pages are on disk,
 * so the store reopens at this turn or at the one before it, never corrupt.
 * (Full MDB_NOSYNC is not offered: ext4 does not keep write order, so a machine crash
 * could leave a meta page whose pages never reached the disk.)
 *
 * When it is safe (the durability argument): use it ONLY for a turn that writes nothing
 * Raft needs durable, i.e. no kv_log_append, no kv_hard_state_set, no conf state, ids,
 * snapshot or membership records (kv_meta_put) — only committed entries applied through
 * kv_apply / kv_applied_set. Those entries are already durable in this member's log
 * (appended by an earlier synced commit) and committed by a majority. If the machine
 * crashes, the store reopens with an older applied index A' <= A; the log still holds
 * A'+1..A (log compaction runs in a synced commit and only below the applied index it
 * persisted), so the node replays them at start, and kv_apply is deterministic and
 * idempotent by applied index: the same revisions, leases and results come back. A
 * client answered after an unsynced turn never loses its write (it is committed in a
 * majority's logs); only this member's applied state lags until the replay, as etcd's
 * backend lags its WAL. Never send a message that promises durability (append ack, vote)
 * because of a turn committed this way. With no_sync set this is kv_wtxn_commit. Same
 * return values and handle rules as kv_wtxn_commit. */
int kv_wtxn_commit_nosync(kv_wtxn *w);

/* Makes a preceding kv_wtxn_commit_nosync durable (fdatasync of the data file, which
 * holds its meta page). Returns 0 at once when the last commit was synced or the
 * store is no_sync; otherwise 0 or KV_EIO. Not needed for correctness (the next synced
 * commit flushes as well); useful before an orderly shutdown or when idle. */
int kv_sync(kv_store *s);

/* Discards everything written in the turn (including applied entries' effects, their
 * events and lease changes) and frees the handle. */
void kv_wtxn_abort(kv_wtxn *w);

/* ---- Raft log and metadata ------------------------------------------------------- */

/* A log entry as kv/ stores it; kv/ does not interpret type or data. */
typedef struct kv_entry {
    kv_index_t index;
    kv_term_t term;
    uint32_t type;      /* the node's entry type (e.g. raft's enum raft_entry_type) */
    const void *data;   /* borrowed on input; see kv_log_entries for output */
    size_t len;
} kv_entry;

/* Appends n entries with consecutive indexes. Stored entries with index >= ents[0].index
 * are deleted first (the conflicting suffix). ents[0].index must be <= last index + 1
 * and > the snapshot index (KV_EINVAL otherwise). Data is copied. */
int kv_log_append(kv_wtxn *w, const kv_entry *ents, size_t n);

/* Deletes stored entries with index >= from (no-op if none). */
int kv_log_truncate(kv_wtxn *w, kv_index_t from);

/* Deletes stored entries with index <= upto and records (upto, term of upto) as the
 * log start (snapshot metadata). upto must be <= the last index and its entry stored
 * (or equal to the current log start). */
int kv_log_compact(kv_wtxn *w, kv_index_t upto);

/* Reads entries [lo, hi) into one malloc'd block: *out is an array of *n kv_entry whose
 * data point into the same block; free(*out) releases all. Stops early once the total
 * data passes max_bytes (0 = no limit), but always returns at least one entry when
 * lo < hi. KV_ELOGCOMPACTED if lo < first index, KV_ELOGUNAVAIL if hi > last + 1. */
int kv_log_entries(kv_store *s, kv_index_t lo, kv_index_t hi, size_t max_bytes,
                   kv_entry **out, size_t *n);

/* Term of entry i. For i == the log start (snapshot index) gives the snapshot term.
 * KV_ELOGCOMPACTED below it, KV_ELOGUNAVAIL above the last index. */
int kv_log_term(kv_store *s, kv_index_t i, kv_term_t *term);

/* First stored index (log start + 1) and last index (the log start if the log is
 * empty). A fresh store gives first 1, last 0. */
kv_index_t kv_log_first_index(kv_store *s);
kv_index_t kv_log_last_index(kv_store *s);

typedef struct kv_hard_state {
    kv_term_t term;
    uint64_t vote;     /* member id voted for in term, 0 = none */
    kv_index_t commit;
} kv_hard_state;

int kv_hard_state_set(kv_wtxn *w, const kv_hard_state *hs);
/* Zeros if never set. */
int kv_hard_state_get(kv_store *s, kv_hard_state *hs);

/* Log start: the index and term of the last compaction or installed snapshot
 * (0, 0 on a fresh store). kv_log_compact and kv_restore set it; kv_snap_meta_set sets
 * it directly (e.g. when the node records a snapshot point without compacting). */
typedef struct kv_snap_meta {
    kv_index_t index;
    kv_term_t term;
} kv_snap_meta;
int kv_snap_meta_set(kv_wtxn *w, const kv_snap_meta *m);
int kv_snap_meta_get(kv_store *s, kv_snap_meta *m);

/* The membership as of the applied index, an opaque blob for kv/ (the node encodes
 * raft's conf state). get: *data is malloc'd (free it); KV_ENOTFOUND if never set. */
int kv_conf_state_set(kv_wtxn *w, const void *data, size_t len);
int kv_conf_state_get(kv_store *s, void **data, size_t *len);

/* Applied index and its term (0, 0 on a fresh store). kv_apply sets it; the node calls
 * kv_applied_set for committed entries it applies itself (noops, conf changes, requests
 * kv/ does not know). index must be greater than the current applied index. */
int kv_applied_set(kv_wtxn *w, kv_index_t index, kv_term_t term);
kv_index_t kv_applied_index(kv_store *s);
kv_term_t kv_applied_term(kv_store *s);

/* Cluster and member id (0 if never set). A restore keeps the local member id. */
int kv_ids_set(kv_wtxn *w, uint64_t cluster_id, uint64_t member_id);
void kv_ids_get(kv_store *s, uint64_t *cluster_id, uint64_t *member_id);

/* Small node-owned blobs (the member list JSON, ...), by name (1..200 bytes, any bytes).
 * A separate name space from kv/'s own metadata. get: *data malloc'd, KV_ENOTFOUND if
 * absent. del: KV_ENOTFOUND if absent. Blobs travel in snapshots like everything else. */
int kv_meta_put(kv_wtxn *w, const char *name, const void *data, size_t len);
int kv_meta_get(kv_store *s, const char *name, void **data, size_t *len);
int kv_meta_del(kv_wtxn *w, const char *name);

/* ---- results --------------------------------------------------------------------- */

/* The answer to one request. err is 0 or a client-visible KV_E* code (answer the client
 * with kv_etcd_status(err)); when err is 0, msg is the etcd response message:
 *   put -> Etcdserverpb__PutResponse          delete_range -> ..DeleteRangeResponse
 *   txn -> Etcdserverpb__TxnResponse          compaction -> ..CompactionResponse
 *   lease_grant -> ..LeaseGrantResponse       lease_revoke -> ..LeaseRevokeResponse
 *   lease_checkpoint -> ..LeaseCheckpointResponse   alarm -> ..AlarmResponse
 *   kv_range -> ..RangeResponse   kv_lease_time_to_live -> ..LeaseTimeToLiveResponse
 *   kv_lease_leases -> ..LeaseLeasesResponse   kv_hash_kv -> ..HashKVResponse
 * msg->descriptor tells which. The header's cluster_id, member_id and revision are
 * filled; raft_term is left 0 for the node to fill. msg and everything it points to
 * live in the result's arena until kv_result_free. */
typedef struct kv_result {
    int err;
    ProtobufCMessage *msg;
    kv_arena *arena;
} kv_result;

/* Frees the arena (msg becomes invalid) and zeroes r. Safe on a zeroed result. */
void kv_result_free(kv_result *r);

/* ---- applying committed entries --------------------------------------------------- */

/* Checks a client request before it is proposed, as etcd's gRPC layer does: empty keys,
 * keys over KV_MAX_KEY, ignore_value/ignore_lease with a value/lease, too many txn
 * operations (max_txn_ops), duplicate/overlapping writes in a txn, empty RequestOps,
 * invalid sort options in ranges. Returns 0 or a client-visible KV_E* code. kv_apply
 * repeats the same checks (so a bad entry is refused identically on every member with
 * nothing written). */
int kv_check_request(kv_store *s, const Plinthpb__Request *req);
int kv_check_range(kv_store *s, const Etcdserverpb__RangeRequest *req);

/* Applies committed entry (index, term) carrying req, deterministically: the same
 * store state and entry give the same result and stored bytes on every member. Records
 * (index, term) as the applied index. A write raises the revision by one (a txn with
 * several writes too: sub-revisions order them); a request that changes nothing
 * (a failed check, a delete of nothing) leaves the revision alone.
 *
 * Returns 0 when the entry counts as applied — then *out holds the response or the
 * client-visible error (out->err). Returns KV_EAPPLIED (nothing done, *out zeroed) for
 * an index at or below the applied index, KV_EUNKNOWNREQ for a Request with no known
 * field (nothing done; the node applies it itself and calls kv_applied_set), or a
 * failure (kv_error_is_fatal_txn) after which the turn must be aborted.
 *
 * Lease grants with ID 0 get an id derived from the entry index (the same on every
 * member); the node may also pick the id before proposing, as etcd's leader does.
 * While a NOSPACE alarm is active (see Quota) puts, txns with a put, and lease grants
 * answer KV_ENOSPACE; ranges, deletes, compaction and revokes work. */
int kv_apply(kv_wtxn *w, kv_index_t index, kv_term_t term, const Plinthpb__Request *req,
             kv_result *out);

/* ---- reads ----------------------------------------------------------------------- */

/* Serves an etcd Range (every option: single key, prefix, [key, end), from-key "\0",
 * revision, limit with `more`, sort order and target, keys_only, count_only,
 * min/max mod and create revision) in a short read transaction over committed data.
 * Returns 0 with out->err = 0 and out->msg a RangeResponse, or out->err = KV_ECOMPACTED
 * / KV_EFUTUREREV / KV_EEMPTYKEY / ..., or a failure code (then *out is zeroed). */
int kv_range(kv_store *s, const Etcdserverpb__RangeRequest *req, kv_result *out);

/* Evaluates a Txn with no put or delete in any branch (at any depth) exactly as kv_apply
 * would, over one read transaction of committed data, without writing: the answer is the
 * TxnResponse kv_apply gives for the same txn at the same revision. Returns 0 with
 * out->msg a TxnResponse, or out->err a client-visible code (KV_ECOMPACTED,
 * KV_EFUTUREREV, KV_ETOOMANYOPS, ...); a txn that writes answers KV_EINVAL; other
 * failures return their code with *out zeroed. */
int kv_txn_read(kv_store *s, const Etcdserverpb__TxnRequest *t, kv_result *out);

/* Current (committed) revision. As in etcd, a fresh store is at revision 1 and the
 * first write makes revision 2. */
kv_rev_t kv_current_revision(kv_store *s);
/* The revision of the last compaction (0 if none). Reads below it are KV_ECOMPACTED.
 * Compaction to C drops every revision below C except each key's newest live version,
 * and keeps all records of C itself, so a watch may start at C (as in etcd) and still
 * sees every event of C. */
kv_rev_t kv_compact_revision(kv_store *s);

/* etcd's HashKV: a CRC-32C over every stored revision up to rev (0 = current), with the
 * compacted revision; equal stores give equal hashes. out->msg is a HashKVResponse
 * (hash, compact_revision, hash_revision). */
int kv_hash_kv(kv_store *s, kv_rev_t rev, kv_result *out);

typedef struct kv_stats {
    int64_t db_size;        /* bytes the data file occupies (high-water mark) */
    int64_t db_size_in_use; /* bytes in pages holding data (db_size minus free pages) */
    int64_t quota_bytes;
    kv_rev_t revision;
    kv_rev_t compact_revision;
    kv_index_t applied_index;
    kv_index_t last_index;  /* last Raft log index */
    kv_term_t term;         /* hard state term */
    bool alarm_nospace;     /* a NOSPACE alarm is active (any member) */
    bool alarm_corrupt;
    uint64_t keys;          /* live keys (at the current revision) */
    uint64_t leases;
    uint64_t watchers;
} kv_stats;

/* Figures for Maintenance/Status and metrics. */
int kv_stat(kv_store *s, kv_stats *st);

/* ---- quota and alarms -------------------------------------------------------------- */
/* etcd's model: the member about to propose a write checks the quota; if the write
 * would pass it, the node answers ErrNoSpace AND proposes an AlarmRequest{ACTIVATE,
 * member id, NOSPACE}. Once applied, the alarm is replicated state: every member refuses
 * puts, txns with puts, and lease grants with KV_ENOSPACE, while reads, deletes,
 * compaction and revokes go on. Usage is measured as db_size_in_use (free pages do not
 * count), so a compaction frees quota without a defragment; the node may propose
 * AlarmRequest{DEACTIVATE} once kv_quota_check(s, 0) passes again (etcd waits for
 * `alarm disarm`). A full LMDB map is never a crash: it is KV_EMAPFULL (see top). */

/* Returns 0 if adding about cost_bytes of data keeps the store within quota, else
 * KV_ENOSPACE. cost_bytes: etcd's cost estimate, e.g. key + value + 64 per put. */
int kv_quota_check(kv_store *s, uint64_t cost_bytes);

/* Estimated cost of a request for kv_quota_check (0 for requests that do not grow the
 * store: deletes, compactions, revokes, txns without puts). */
uint64_t kv_request_cost(const Plinthpb__Request *req);

/* Active alarms as an AlarmResponse (as etcd answers AlarmRequest{GET}) — read it
 * locally without going through Raft. */
int kv_alarms(kv_store *s, kv_result *out);

/* ---- leases -------------------------------------------------------------------- */
/* Grants, revokes, attachments and checkpoints are replicated (kv_apply). Expiry is
 * bookkeeping in memory on the leader with the caller's monotonic clock (ms): the
 * leader calls kv_lease_promote on gaining leadership (every lease gets its remaining
 * TTL back in full — or the checkpointed remaining TTL — as in etcd), kv_lease_demote on
 * losing it (expiries stop), kv_lease_renew for keep-alives, and kv_lease_expired each
 * turn to collect ids to revoke through Raft (LeaseRevokeRequest). A lease granted while
 * this member is leader starts counting at grant time (commit of the turn), using the
 * `now_ms` last passed to promote/renew/expired. Leases survive restart (stored in the
 * lease database); a restarted member starts demoted. */

/* Becomes the lease primary: every lease expires at now_ms + its TTL (or its
 * checkpointed remaining TTL, if a LeaseCheckpointRequest recorded one). */
void kv_lease_promote(kv_store *s, int64_t now_ms);

/* Stops expiring leases (a follower never expires leases). */
void kv_lease_demote(kv_store *s);

/* Keep-alive (leader only): resets the lease's expiry to now_ms + TTL and gives the
 * TTL in seconds. KV_ELEASENOTFOUND if it does not exist or has already expired
 * (etcd answers TTL 0 on the keep-alive stream then). */
int kv_lease_renew(kv_store *s, kv_lease_id_t id, int64_t now_ms, int64_t *ttl_out);

/* Writes up to max ids of leases whose expiry is <= now_ms into ids; returns how many.
 * A lease reported here is not reported again for 3 s (while its revoke goes through
 * Raft), then again if it still exists. Only the primary reports expiries. */
size_t kv_lease_expired(kv_store *s, int64_t now_ms, kv_lease_id_t *ids, size_t max);

/* LeaseTimeToLive: remaining TTL in seconds (as the primary counts it; the full or
 * checkpointed TTL when not primary), granted TTL, and the attached keys if
 * req->keys. A missing lease answers TTL -1 as etcd does (out->err stays 0). */
int kv_lease_time_to_live(kv_store *s, const Etcdserverpb__LeaseTimeToLiveRequest *req,
                          int64_t now_ms, kv_result *out);

/* LeaseLeases: every lease id. */
int kv_lease_leases(kv_store *s, kv_result *out);

/* Remaining TTLs (seconds) of up to max leases, for the leader to propose a
 * LeaseCheckpointRequest (etcd's checkpointing, so TTLs survive a leader change).
 * Returns how many were written. */
size_t kv_lease_checkpoints(kv_store *s, int64_t now_ms, Etcdserverpb__LeaseCheckpoint *cps,
                            size_t max);

/* ---- watch hub ----------------------------------------------------------------- */
/* Watchers on a key, a prefix or a range, from a start revision. History is replayed
 * from the store, then live events follow without a gap or a duplicate.
 *
 * Delivery is a callback the hub calls from kv_watch_notify (and only from there, never
 * from inside kv_apply or a commit). The callback gets whole revisions, in order. It
 * returns KV_WATCH_TAKEN if it took the batch, or KV_WATCH_BUSY if its owner cannot take
 * more now (its send buffer is full): then the watcher falls behind ("unsynced"), the
 * hub keeps nothing for it, and once the owner calls kv_watch_resume the hub catches it
 * up from the store in batches, and it rejoins the live stream when it reaches the
 * current revision. Memory held by the hub does not grow with a slow watcher.
 *
 * If the history a watcher still needs has been compacted, it gets one delivery with
 * compact_revision set (etcd's canceled response with the compacted revision) and stops
 * receiving; the owner then calls kv_watch_cancel.
 *
 * kv_watch_cancel may be called at any time, also from inside a callback (the watcher
 * is freed when the hub is done with it). */

enum { KV_WATCH_TAKEN = 0, KV_WATCH_BUSY = 1 };

typedef struct kv_watch_event_batch {
    kv_watcher *w;
    void *owner;              /* as given to kv_watch_create */
    int64_t watch_id;         /* as given to kv_watch_create */
    kv_rev_t revision;        /* header revision: the store's revision when delivered */
    kv_rev_t compact_revision;/* non-zero: canceled, history below this is compacted */
    bool progress;            /* a progress notification (no events) */
    size_t n_events;
    Mvccpb__Event **events;   /* borrowed: valid only during the callback */
} kv_watch_event_batch;

/* Returns KV_WATCH_TAKEN or KV_WATCH_BUSY. For progress and compaction deliveries
 * KV_WATCH_BUSY means "try again later" as well. */
typedef int (*kv_watch_fn)(const kv_watch_event_batch *b);

typedef struct kv_watch_opts {
    const uint8_t *key;       /* borrowed, copied; non-empty */
    size_t key_len;
    const uint8_t *range_end; /* empty = the key only; "\0" = every key >= key;
                                 key+1 prefix end = a prefix (etcd's rules) */
    size_t range_end_len;
    kv_rev_t start_revision;  /* 0 = from the next revision (now) */
    bool no_put, no_delete;   /* filters NOPUT, NODELETE */
    bool prev_kv;             /* events carry the previous KeyValue (if not compacted) */
    bool progress_notify;     /* kv_watch_progress_tick sends progress when idle */
    int64_t watch_id;         /* opaque, echoed in deliveries */
    void *owner;              /* opaque, echoed in deliveries */
    kv_watch_fn fn;
} kv_watch_opts;

/* Creates a watcher. KV_ECOMPACTED if start_revision is non-zero and below the compacted
 * revision (answer the client with kv_compact_revision(s); no watcher is created).
 * start_revision 0 means the committed revision + 1; a start revision in the future
 * waits for it. Events are delivered from the next kv_watch_notify on. May be called at
 * any time, also while a write transaction is open. */
int kv_watch_create(kv_store *s, const kv_watch_opts *opt, kv_watcher **out);

/* Removes the watcher; no callback for it afterwards. */
void kv_watch_cancel(kv_watcher *w);

/* The owner can take deliveries again (after returning KV_WATCH_BUSY). */
void kv_watch_resume(kv_watcher *w);

/* True if the watcher has received every event up to the current revision (etcd's
 * "synced"); a progress request is answered only for synced watchers. */
bool kv_watch_synced(const kv_watcher *w);

/* Delivers: the events committed by the last kv_wtxn_commit(s) to synced watchers, then
 * catch-up batches from the store to resumed unsynced watchers (bounded work per call:
 * about 8 batches). Returns the number of watchers still waiting for catch-up work that
 * could proceed now (the node should call again soon, e.g. next turn, if > 0). */
size_t kv_watch_notify(kv_store *s);

/* Progress notifications: each synced watcher with progress_notify that got no
 * delivery for interval_ms gets one with progress = true and the current revision. */
void kv_watch_progress_tick(kv_store *s, int64_t now_ms, int64_t interval_ms);

/* ---- snapshots ------------------------------------------------------------------ */

/* Writes a consistent copy of the whole environment (a valid data.mdb) to fd or to a
 * new file at path (written, fsynced, then renamed into place). compact: omit free
 * pages (smaller, slower). Safe to call from another thread while the loop keeps
 * writing; the copy reflects some committed state at or after the moment of the call.
 * Used for Maintenance/Snapshot and for Raft snapshots to lagging followers. (After a
 * KV_EMAPFULL the next kv_wtxn_begin waits for running copies to finish before it grows
 * the map.) The store must outlive the copy. */
int kv_snapshot_write_fd(kv_store *s, int fd, bool compact);
int kv_snapshot_write_path(kv_store *s, const char *path, bool compact);

/* Reads the applied (index, term), revision and cluster id recorded inside a snapshot
 * file, without a store. */
typedef struct kv_snapshot_info {
    kv_index_t applied_index;
    kv_term_t applied_term;
    kv_rev_t revision;
    uint64_t cluster_id;
} kv_snapshot_info;
int kv_snapshot_file_info(const char *path, kv_snapshot_info *info);

/* Replaces the store's contents with the snapshot file at path (a Raft snapshot from
 * the leader): closes the environment, moves the file into place as data.mdb, reopens.
 * Kept from the local store: the member id and the hard state (term and vote never go
 * back; commit becomes max(local, log_start.index)). The Raft log is emptied and the
 * log start set to log_start (the index and term Raft gave the snapshot). The applied
 * index becomes the one recorded in the file (it may be past log_start.index; kv_apply
 * then skips the entries already in the image). Leases are reloaded (demoted); watchers
 * catch up from the new contents or get a compaction delivery. No write transaction may
 * be open: the node calls it before kv_wtxn_begin of the turn whose Raft ready batch
 * carries the snapshot, and records the conf state in that turn. On failure the store keeps its old contents if the swap did not happen yet;
 * KV_EIO after the swap means the store is closed for business (kv_errmsg says why).
 * KV_EBUSY while a kv_snapshot_write_* copy runs on another thread; a copy called during
 * the restore waits for it to finish and then copies the new contents. */
int kv_restore(kv_store *s, const char *path, const kv_snap_meta *log_start);

#endif

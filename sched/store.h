/* store — the workload layer's view of plinth's store, over the gRPC client: reads at a
 * revision, create / compare-and-swap / delete (optionally fenced by an election key),
 * watches from a revision, and leases. */
#ifndef PLINTH_SCHED_STORE_H
#define PLINTH_SCHED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sched/objects.h"

struct sched_store;

/* Connection options; strings are borrowed for sched_store_open only. */
struct sched_store_opts {
    const char *endpoints;  /* "https://127.0.0.1:2379,https://..." (required) */
    const char *ca_file;    /* TLS: CA that signs the servers (NULL: system store) */
    const char *cert_file;  /* TLS client certificate (optional) */
    const char *key_file;
    int timeout_ms;         /* per request; 0 means 3000 */
    int retry_ms;           /* keep retrying a request that failed UNAVAILABLE or
                             * DEADLINE_EXCEEDED (no leader, member down) for this long;
                             * 0: fail at once (the daemons retry in their loops). A
                             * retried conditional write that had in fact been applied
                             * then reports SCHED_EEXIST / SCHED_ECONFLICT. */
};

/* Opens a store handle (nothing is dialed until the first request). Returns 0 and the
 * handle in *out (free with sched_store_close), or SCHED_EINVAL / SCHED_ESTORE with the
 * reason in err (a missing TLS file, a bad endpoint list). Not thread-safe: one handle
 * belongs to one thread. */
int sched_store_open(const struct sched_store_opts *o, struct sched_store **out, char *err,
                     size_t errlen);
void sched_store_close(struct sched_store *s);

/* Text of the last failure on this handle ("txn /registry/pods/a/b: UNAVAILABLE: dial
 * ..."); borrowed until the next call. */
const char *sched_store_errmsg(const struct sched_store *s);

/* The highest revision at which this handle wrote a key under /registry/ (0 before any
 * such write; election and other keys do not count). Controllers wait
 * until their watch cache has reached it before acting again, so that they never act on
 * a cache that does not yet show their own writes. */
int64_t sched_store_last_write_rev(const struct sched_store *s);

/* A leader's fence: writes made with it also compare that the election key `key` still
 * exists with this create_revision, so they fail once leadership is lost. */
struct sched_fence {
    char key[128];
    int64_t create_rev;
};

/* One key as read from the store. key and value are NUL-terminated copies. */
struct sched_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_rev, mod_rev, version, lease;
};
void sched_kvs_free(struct sched_kv *kvs, size_t n);

/* Reads every key with the given prefix at revision rev (0: latest), in key order.
 * On success *kvs (owned, free with sched_kvs_free) and *n hold them and *header_rev the
 * store revision the read was served at. keys_only skips values. SCHED_ECOMPACTED when
 * rev was compacted, SCHED_ESTORE otherwise. */
int sched_store_list(struct sched_store *s, const char *prefix, int64_t rev, bool keys_only,
                     struct sched_kv **kvs, size_t *n, int64_t *header_rev);
/* Reads one key (latest). SCHED_ENOTFOUND when absent. *kv is owned by the caller
 * (sched_kvs_free(kv, 1)). */
int sched_store_get(struct sched_store *s, const char *key, struct sched_kv **kv);

/* Writes value at key in one transaction that succeeds only if the key's mod_revision
 * equals expect_mod (0: the key must not exist; -1: no condition) and, when fence is
 * not NULL, the fence key still has its create_revision. lease 0 attaches none.
 * Returns 0 and the new revision in *new_rev (may be NULL); SCHED_ENOTLEADER when the
 * fence failed, SCHED_EEXIST (expect_mod 0 and the key exists), SCHED_ECONFLICT (another
 * mod_revision), SCHED_ENOTFOUND (expect_mod > 0 and the key is gone), SCHED_ESTORE. */
int sched_store_put(struct sched_store *s, const char *key, const char *value, size_t len,
                    int64_t expect_mod, int64_t lease, const struct sched_fence *fence,
                    int64_t *new_rev);
/* Deletes key if its mod_revision equals expect_mod (-1: any) and the fence holds.
 * Returns 0, SCHED_ENOTFOUND (already gone), SCHED_ECONFLICT, SCHED_ENOTLEADER,
 * SCHED_ESTORE. */
int sched_store_delete(struct sched_store *s, const char *key, int64_t expect_mod,
                       const struct sched_fence *fence);

/* One write of a pipelined batch: a put (or delete) of key at expect_mod as in
 * sched_store_put/sched_store_delete. key and value are borrowed for the call; rc and
 * new_rev are filled in. */
struct sched_write {
    const char *key;
    const char *value;
    size_t len;
    int64_t expect_mod;
    bool del;
    int64_t lease;  /* lease to attach to a put (0: none) */
    int rc;
    int64_t new_rev;
};

/* Sends every write at once (each its own transaction, all in flight together, so the
 * store can commit them in one batch) and waits for all answers. Each w[i].rc gets the
 * code sched_store_put would return (SCHED_ENOMEM for a put whose value is NULL).
 * Returns 0, or SCHED_ENOMEM (then every rc is SCHED_ENOMEM). The writes are
 * independent: some may succeed while others fail. */
int sched_store_write_batch(struct sched_store *s, struct sched_write *w, size_t n,
                            const struct sched_fence *fence);

/* ---- objects (JSON documents; metadata.resourceVersion carries mod_revision) ---- */

/* The mod_revision an object was read at (metadata.resourceVersion), 0 when absent. */
int64_t sched_obj_rev(const json_t *obj);
/* Parses a stored value into a document and sets its metadata.resourceVersion to
 * mod_rev. Returns a new reference or NULL when the value is not a JSON object. */
json_t *sched_obj_from_kv(const char *value, size_t len, int64_t mod_rev);

/* The stored form of an object: compact JSON without metadata.resourceVersion (the
 * store keeps that as mod_revision). Caller frees with free(). */
char *sched_obj_encode(const json_t *obj);

/* Reads one object by key. *out is a new reference. SCHED_ENOTFOUND when absent. */
int sched_store_get_obj(struct sched_store *s, const char *key, json_t **out);
/* Creates a validated object (fails with SCHED_EEXIST if its key exists). Fills
 * metadata.uid and creationTimestamp when missing and, on success, resourceVersion. */
int sched_store_create_obj(struct sched_store *s, json_t *obj, const struct sched_fence *fence);
/* Compare-and-swap update: succeeds only if the stored mod_revision still equals the
 * object's resourceVersion; updates resourceVersion on success. Same codes as put. */
int sched_store_update_obj(struct sched_store *s, json_t *obj, const struct sched_fence *fence);
/* Deletes an object, only at its resourceVersion when it has one. */
int sched_store_delete_obj(struct sched_store *s, const json_t *obj,
                           const struct sched_fence *fence);

/* ---- leases ---- */

/* Grants a lease of ttl seconds; its id into *id. */
int sched_store_lease_grant(struct sched_store *s, int64_t ttl, int64_t *id);
/* Renews a lease once (LeaseKeepAlive stream). *ttl_left (may be NULL) gets the TTL the
 * server reset it to. SCHED_ENOTFOUND when the lease has expired or was revoked. */
int sched_store_lease_keepalive(struct sched_store *s, int64_t id, int64_t *ttl_left);
/* Revokes a lease (its keys are deleted). */
int sched_store_lease_revoke(struct sched_store *s, int64_t id);

/* ---- watches ---- */

struct sched_watch;

enum sched_event_type { SCHED_EV_PUT = 0, SCHED_EV_DELETE = 1 };

struct sched_event {
    enum sched_event_type type;
    struct sched_kv kv; /* for deletes: key, mod_rev (the deletion revision); no value */
};
void sched_events_free(struct sched_event *evs, size_t n);

/* Watches every key under prefix from start_rev (0: from now). Returns 0 and the watch
 * (free with sched_watch_close). The watch belongs to the store handle and must be
 * closed before it. */
int sched_watch_open(struct sched_store *s, const char *prefix, int64_t start_rev,
                     struct sched_watch **out);
/* Waits up to timeout_ms for events. Returns 0 with *n events in *evs (owned by the
 * caller; *n may be 0 on timeout); SCHED_ECOMPACTED when start_rev was compacted (the
 * caller relists; *compact_rev, when not NULL, gets the compaction revision);
 * SCHED_ESTORE when the stream ended (the caller reopens from its last revision + 1). */
int sched_watch_next(struct sched_watch *w, int timeout_ms, struct sched_event **evs,
                     size_t *n, int64_t *compact_rev);
void sched_watch_close(struct sched_watch *w);

/* Milliseconds of a monotonic clock (for deadlines in the daemons). */
int64_t sched_now_ms(void);

#endif

/* recipe — the building blocks of etcd's clientv3/concurrency recipes, run inside the
 * server for the v3election and v3lock services: writes proposed through Raft like a
 * client's, reads of the local store, and etcd's waitDeletes on the watch hub.
 * Not a public header: used by node/svc_election.c and node/svc_lock.c. */
#ifndef PLINTH_NODE_RECIPE_H
#define PLINTH_NODE_RECIPE_H

#include "node/node_int.h"

/* Completion of a proposal: code is a gRPC status (0 = applied with no error; res then
 * holds the response, borrowed for the call), msg its text otherwise. */
typedef void (*recipe_done_fn)(struct node *n, void *arg, int code, const char *msg,
                               kv_result *res);

/* Request field numbers in plinthpb.Request. */
enum { RECIPE_DELETE = 3, RECIPE_TXN = 4, RECIPE_LEASE_GRANT = 6 };

/* Proposes req (packed now, borrowed) as field `field` of a plinthpb.Request; done runs
 * once, later (also on failure). Returns 0, or -1 (done is not called) when out of memory. */
int recipe_propose(struct node *n, int field, const ProtobufCMessage *req, recipe_done_fn done,
                   void *arg);

/* Stopping: ends every recipe proposal still waiting (their owners see "server stopped"
 * and propose nothing more). */
void recipe_stop_all(struct node *n);

/* Grants a session lease (TTL 60 s, as concurrency.NewSession does when a request names
 * no lease); done gets the LeaseGrantResponse. Same returns as recipe_propose. */
int recipe_session_grant(struct node *n, recipe_done_fn done, void *arg);

/* etcd's prefix end: the key after every key starting with p ("\0" when p is all 0xff).
 * Writes at most len bytes to out, returns the length. */
size_t recipe_prefix_end(const uint8_t *p, size_t len, uint8_t *out);

/* Reads the key under the prefix with the lowest (first=true) or highest create
 * revision, at most max_create_rev (0: no bound), from the local store. Returns 0 and a
 * RangeResponse in *res (free with kv_result_free), or a KV_E code. */
int recipe_read_edge(struct node *n, const uint8_t *pfx, size_t len, bool first,
                     int64_t max_create_rev, kv_result *res);

/* etcd's waitDeletes: waits until no key under pfx has a create revision at or below
 * max_create_rev. done runs once from the loop (err 0, or a gRPC code with its text),
 * unless recipe_wait_cancel is called first. */
struct recipe_wait;
typedef void (*recipe_wait_fn)(struct node *n, void *arg, int code, const char *msg);
struct recipe_wait *recipe_wait_deletes(struct node *n, const uint8_t *pfx, size_t len,
                                        int64_t max_create_rev, recipe_wait_fn done, void *arg);
void recipe_wait_cancel(struct recipe_wait *w);

/* Formats etcd's session key: pfx + "/" + lease in lower-case hex. Returns malloc'd
 * bytes (*out_len long) or NULL. */
uint8_t *recipe_session_key(const uint8_t *name, size_t len, int64_t lease, size_t *out_len);

#endif

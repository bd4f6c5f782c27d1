/* node — one plinth member: the Raft core, the LMDB store and the network wired into one
 * libevent loop (DESIGN.md "The server's loop"), serving etcd's v3 gRPC API.
 *
 * ---------------------------------------------------------------------------------
 * The turn (loop.c)
 * ---------------------------------------------------------------------------------
 * Every input (a client write, a read, a peer message, a tick) only records work and
 * schedules one turn, which runs after the I/O callbacks of the current loop iteration:
 *   1. proposals gathered since the last turn go to raft_propose in one call (leader) or
 *      to the leader in one Forward frame (follower); reads gathered since the last turn
 *      share one ReadIndex round (etcd#7109);
 *   2. each ready batch: messages that need no durability go out first; then ONE LMDB
 *      write transaction appends the entries, stores the hard state and applies the
 *      committed entries (kv_apply records the applied index in the same transaction),
 *      and commits with one fsync; then the messages that promise durability go out;
 *      clients whose request ids were applied are answered; reads whose index is applied
 *      are served; watch events are fanned out (kv_watch_notify).
 * Group commit: while 32 or more clients wait (PLINTH_BATCH_MIN_WAITERS), a turn that would start right after a
 * commit waits up to that commit's duration (at most 2 ms, PLINTH_BATCH_WINDOW_US), so
 * one fsync covers more writes; an idle member turns at once.
 *
 * ---------------------------------------------------------------------------------
 * Writes, reads, errors
 * ---------------------------------------------------------------------------------
 * A client write is checked (validate.c, kv_check_request, the quota), wrapped as a
 * plinthpb.Request {id, the client's message bytes as they came} and proposed. The id
 * (member id's low 16 bits | a time-based counter, as etcd's idutil) finds the waiting
 * call when the entry is applied on this member, whichever member proposed it. A member
 * that has had no leader for an election timeout answers UNAVAILABLE "etcdserver: no
 * leader" at once; during a shorter gap (an election or a leadership transfer under way)
 * requests wait for the new leader instead of failing. A write forwarded
 * to a leader that is then lost gets one more election timeout to commit before the
 * client is told; a local proposal whose index is applied with another entry fails with
 * "etcdserver: leader changed"; anything else times out after 5 s + 2 election
 * timeouts ("etcdserver: request timed out"), as etcd does. Linearizable reads wait for a
 * ReadIndex round; serializable reads are served from the local store at once.
 *
 * ---------------------------------------------------------------------------------
 * Members and ids (config.c, members.c)
 * ---------------------------------------------------------------------------------
 * Member ids and the cluster id follow etcd's recipe (SHA-1 of the sorted peer URLs and
 * the cluster token; of the sorted member ids), so every founding member computes the
 * same ids from --initial-cluster. A member added at runtime gets the id it will compute
 * itself from its --initial-cluster entry (the cluster token, no timestamp). The member
 * list (names, peer and client URLs, learners) is replicated: membership changes carry
 * the whole list in their context (proto/raftpb.proto ConfContext), client URLs come
 * from a "publish" request each member proposes once it sees a leader, and the list is
 * stored in the store's meta "members". A restart reads ids, members and the Raft state
 * from the store and ignores --initial-cluster.
 *
 * ---------------------------------------------------------------------------------
 * Failover, leases, snapshots
 * ---------------------------------------------------------------------------------
 * The peer transport's connection-lost notice for the leader feeds raft_leader_conn_lost,
 * so a crashed leader is replaced within a few round trips; a flagged campaign request
 * waits up to 20 ms for this member's own notice (peers.c). SIGTERM on a leader moves
 * leadership to the most up-to-date connected voter first (bounded by one election
 * timeout), then stops accepting calls and answers those it accepted (up to 1 s). Only
 * the leader counts lease expiry: followers relay keep-alives and
 * TimeToLive to it; it proposes revokes for expired leases and checkpoints remaining TTLs
 * every 10 s (housekeeping.c), so a leader change does not reset them. Raft snapshots
 * and Maintenance/Snapshot copy the store on a worker thread (bg.c) and stream it in
 * chunks paced by the peer's queue or the call's pending bytes. The Raft log is compacted
 * after --snapshot-count applied entries, keeping 5000.
 */
#ifndef PLINTH_NODE_H
#define PLINTH_NODE_H

#include <stddef.h>

#include <event2/event.h>

#include "node/config.h"

struct node;

/* Opens (or creates) the member's store in cfg->data_dir, builds TLS contexts, the Raft
 * core, the peer transport, the gRPC server and the metrics server, and starts listening.
 * cfg is copied; base is borrowed and must outlive the node (the caller runs it).
 * Returns 0 and *out, or -1 with a one-line reason in err ("open data dir x: ..."). */
int node_start(const struct node_config *cfg, struct event_base *base, struct node **out,
               char *err, size_t errlen);

/* Begins a graceful stop: a leader first hands leadership to the most up-to-date voter
 * (bounded by one election timeout), then done(ud) is called from the loop. Calling it
 * twice is harmless. A member removed from the cluster ends the loop by itself. */
void node_stop(struct node *n, void (*done)(void *ud), void *ud);

/* Frees everything (closes listeners and the store). Not from inside a node callback. */
void node_free(struct node *n);

#endif

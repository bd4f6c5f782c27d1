/* node_int — the member's private state, shared by the files of node/ (loop, peers, store
 * adapter, services). Not a public header. */
#ifndef PLINTH_NODE_INT_H
#define PLINTH_NODE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "kv/kv.h"
#include "net/grpc_server.h"
#include "net/peer.h"
#include "raftpb.pb-c.h"
#include "node/config.h"
#include "node/errors.h"
#include "node/metrics.h"
#include "node/node.h"
#include "raft/raft.h"

struct node;

/* ---- members ------------------------------------------------------------------------ */

struct node_member {
    uint64_t id;
    char name[128];
    struct node_url_list peer_urls;
    struct node_url_list client_urls;
    bool learner;
};

struct node_members {
    int n;
    struct node_member m[RAFT_MAX_MEMBERS];
};

/* ---- clients waiting for a proposal to be applied ------------------------------------ */

struct waiter;
/* Completion of a waiter: called once, either with st OK and the apply's result (res is
 * NULL for entries the node applies itself), or with an error status and res NULL. The
 * callback frees nothing: the loop frees the waiter (and res) afterwards. */
typedef void (*waiter_done_fn)(struct node *n, struct waiter *w, struct node_status st,
                               kv_result *res);

struct waiter {
    uint64_t id;                 /* request id carried in the proposal */
    struct net_grpc_call *call;  /* NULL once the client went away */
    waiter_done_fn done;
    void *arg;                   /* for done */
    int64_t deadline_ms;
    uint8_t *data;               /* the encoded proposal, kept to re-forward it */
    size_t len;
    uint64_t index;              /* index given by the local raft_propose, or 0 */
    uint64_t term;
    uint64_t fwd_to;             /* the leader it was forwarded to, or 0 */
    int64_t retry_after_ms;      /* refused by a former leader: forward again after this */
    int tries;
    bool queued;                 /* in n->props waiting for the next turn */
    struct waiter *hnext;        /* hash chain */
    struct waiter *prev, *next;  /* all waiters, oldest first */
};

/* ---- linearizable reads ---------------------------------------------------------------- */

struct read_req;
typedef void (*read_serve_fn)(struct node *n, struct read_req *r, struct node_status st);

struct read_req {
    struct net_grpc_call *call;  /* NULL once the client went away */
    read_serve_fn serve;         /* runs the read (st OK) or answers the error */
    void *arg;                   /* the unpacked request, owned by the read */
    int64_t deadline_ms;
    struct read_req *next;
};

struct read_round {
    uint64_t seq;                /* the ReadIndex context */
    uint64_t index;              /* 0 until the core answers */
    int64_t issued_ms;
    struct read_req *reads;
    struct read_round *next;
};

/* ---- snapshot transfer ----------------------------------------------------------------- */

struct snap_out {                /* a snapshot being streamed to one follower */
    bool building;               /* the store copy is still being written */
    uint64_t to;
    uint64_t snap_id;
    int fd;
    uint64_t size, off;
    uint8_t *msg_buf;              /* encoded Raft message for the first chunk */
    size_t msg_len;
    struct snap_out *next;
};

struct snap_in {                 /* a snapshot arriving from the leader */
    uint64_t from;
    uint64_t snap_id;
    uint64_t total, got;
    int fd;
    char path[1200];
    uint8_t *msg_buf;            /* the Raft message (PeerFrame-free Message bytes) */
    size_t msg_len;
    bool ready;                  /* complete and stepped; waiting to be installed */
    uint64_t index;
};

/* What one turn collects while applying, to act on after the commit. */
struct applied_result {
    struct waiter *w;
    kv_result res;
    bool own;                   /* applied by the node (res empty) */
};

struct turn_state {
    struct applied_result *done;
    size_t n_done, cap_done;
    const struct raft_msg **snaps;
    size_t n_snaps;
    bool members_changed;
    bool removed_self;
    bool meta_written;          /* membership records written in this turn's txn */
};

/* ---- housekeeping.c: leader-side auto-compaction and lease checkpoints ----------------- */

#define HK_SAMPLES 11

struct node_housekeeping {
    struct {
        int64_t t;
        int64_t rev;
    } samples[HK_SAMPLES];
    int n, next;
    int64_t last_sample_ms;
    int64_t last_rev_check_ms;
    int64_t last_checkpoint_ms;
    int64_t last_auto_compact;
};

void node_housekeeping_tick(struct node *n, int64_t now);

/* ---- bg.c: work on a thread of its own ------------------------------------------------- */

/* Runs on the worker thread: must not touch the loop, only thread-safe calls (e.g.
 * kv_snapshot_write_path). Returns a result code for done. */
typedef int (*node_bg_work_fn)(void *arg);
/* Runs on the loop thread once the work returned (also from node_bg_drain when stopping). */
typedef void (*node_bg_done_fn)(struct node *n, void *arg, int result);
int node_bg_run(struct node *n, node_bg_work_fn work, node_bg_done_fn done, void *arg);
void node_bg_drain(struct node *n);

/* A store copy written on a worker thread (Raft snapshots and Maintenance/Snapshot). */
struct snap_job {
    kv_store *kv;
    char path[1300];
};

/* ---- the node ------------------------------------------------------------------------- */

#define WAITER_BUCKETS 4096

struct node {
    struct node_config cfg;
    struct event_base *base;
    struct raft *raft;
    kv_store *kv;
    struct net_peer_transport *peers;
    struct net_grpc_server *grpc;
    struct node_metrics_server *msrv;
    SSL_CTX *client_tls, *metrics_tls, *peer_server_tls, *peer_client_tls;
    struct event *tick_ev, *turn_ev;
    struct node_metrics metrics;
    char member_dir[1100];

    uint64_t id, cluster_id;
    struct node_members members;
    raft_id_t leader;
    enum raft_role role;
    uint64_t applied;
    bool in_turn, turn_pending;

    /* request ids: member prefix | time-based counter, as etcd's idutil */
    uint64_t next_req_id;
    /* waiters */
    struct waiter *wbucket[WAITER_BUCKETS];
    struct waiter *whead, *wtail;
    size_t n_waiters;
    /* proposals gathered this turn (waiters with queued=true), in order */
    struct waiter **props;
    size_t n_props, cap_props;
    /* proposals forwarded by followers, to propose this turn */
    struct raft_buf *fwd;
    uint64_t *fwd_from, *fwd_id;  /* who forwarded each, and its request id */
    size_t n_fwd, cap_fwd;
    /* reads */
    struct read_req *reads_pending, **reads_pending_tail;
    size_t n_reads_pending;
    struct read_round *rounds;   /* issued, oldest first */
    uint64_t read_seq;

    /* snapshots */
    struct snap_out *snaps_out;
    struct snap_in snap_in;
    struct event *snap_ev;

    /* watch streams */
    struct watch_stream *wstreams;
    uint64_t n_watch_streams;

    /* stopping */
    bool stopping;
    bool draining;               /* stop: listeners closed, answering what was accepted */
    int64_t stop_deadline_ms;
    void (*stop_done)(void *);
    void *stop_ud;

    uint64_t peer_ids[RAFT_MAX_MEMBERS]; /* peers added to the transport */
    int64_t peer_gone_ms[RAFT_MAX_MEMBERS]; /* when it left the member list, or 0 */
    int64_t peer_down_ms[RAFT_MAX_MEMBERS]; /* not connected since, or 0 */
    unsigned peer_url_idx[RAFT_MAX_MEMBERS]; /* which of its peer URLs is dialed */
    char peer_url[RAFT_MAX_MEMBERS][300];    /* ... and that URL */
    int n_peer_ids;
    /* peers RTT */
    double peer_rtt[RAFT_MAX_MEMBERS];
    uint64_t peer_rtt_id[RAFT_MAX_MEMBERS];

    uint64_t last_compact_index;
    int64_t no_leader_since_ms;
    bool ids_unsaved;            /* write cluster/member ids and members in the next turn */
    bool removed;                /* this member was removed from the cluster */
    bool published;              /* our name and client URLs are in the member list */
    int64_t publish_at_ms;
    int64_t last_ping_s;
    /* lease keep-alives relayed to the leader, waiting for its answer */
    struct renew_wait *renews;
    /* MoveLeader calls waiting for the transfer */
    struct move_wait *moves;
    bool nospace_raised;
    struct turn_state ts;        /* scratch of the current turn */
    struct ttl_wait *ttl_waits;  /* LeaseTimeToLive asked of the leader */
    struct held_vote *held_votes; /* campaign requests waiting for our own leader-lost notice */
    bool leader_down;            /* the transport reported the current leader's connection lost */
    struct node_bg *bgs;         /* running background jobs */
    int64_t batch_window_us;     /* group commit: longest wait before a turn under load */
    int batch_min_waiters;       /* group commit: clients waiting before a turn may wait (>= 0) */
    int64_t last_commit_end_us, last_commit_us;
    struct node_housekeeping hk;
    /* ids of members removed from the cluster (replicated: meta "removed_ids"); never
     * admitted again, as etcd never reuses a removed id */
    uint64_t *removed_ids;
    size_t n_removed;
    int64_t removed_log_ms;      /* last log line about traffic from a removed member */
    /* term and vote of the last durable hard state: a turn that changes neither, appends
     * nothing and writes no membership record only applies committed entries, and is
     * committed without the meta-page sync (kv_wtxn_commit_nosync) */
    uint64_t durable_term, durable_vote;
    bool apply_nosync;           /* off with PLINTH_APPLY_SYNC=1 */
};

/* ---- loop.c ------------------------------------------------------------------------------ */
int64_t node_now_ms(void);
void node_kick(struct node *n);                  /* schedule a turn */
void node_turn(struct node *n);                  /* run a turn now (from the loop) */
uint64_t node_new_request_id(struct node *n);
/* Registers a waiter for an encoded proposal (data transferred) and queues it. */
struct waiter *node_propose(struct node *n, uint64_t id, uint8_t *data, size_t len,
                            struct net_grpc_call *call, waiter_done_fn done, void *arg);
/* Registers a waiter that is not queued for proposal (membership changes). */
struct waiter *node_waiter_add(struct node *n, uint64_t id, struct net_grpc_call *call,
                               waiter_done_fn done, void *arg);
void node_waiter_fail(struct node *n, struct waiter *w, struct node_status st);
/* Queues a linearizable read; serve runs once the ReadIndex is applied (or with an error). */
void node_read(struct node *n, struct net_grpc_call *call, read_serve_fn serve, void *arg);
/* The status a request gets when this member cannot serve it now, or ST_OK. */
struct node_status node_can_serve(const struct node *n, bool write);
bool node_is_leader(const struct node *n);
bool node_leader_pending(const struct node *n);
struct waiter *waiter_find_pub(struct node *n, uint64_t id);
void node_waiter_finish(struct node *n, struct waiter *w, struct node_status st, kv_result *res);
void node_flush_proposals(struct node *n);           /* propose.c */
void node_fail_all_waiters(struct node *n, struct node_status st);
void node_issue_reads(struct node *n);               /* reads.c */
void node_reads_answered(struct node *n, const struct raft_read_state *rs, size_t count);
void node_serve_reads(struct node *n);
void node_reads_tick(struct node *n, int64_t now);
void turn_done_own(struct turn_state *ts, struct waiter *w);
void node_forward_refused(struct node *n, uint64_t from, const uint64_t *ids, size_t count,
                          int reason);
void node_retry_refused(struct node *n, int64_t now);
void node_accept_forward(struct node *n, uint64_t from, const ProtobufCBinaryData *data,
                         const uint64_t *ids, size_t count);
void node_tick(struct node *n);

/* ---- peers.c ----------------------------------------------------------------------------- */
int node_peers_start(struct node *n, char *err, size_t errlen);
void node_send_msgs(struct node *n, const struct raft_msg *msgs, size_t count);
void node_forward(struct node *n, struct waiter **ws, size_t count);
void node_forward_refuse(struct node *n, uint64_t to, const uint64_t *ids, size_t count, int reason);
void node_snapshots_start(struct node *n, const struct raft_msg *m);
void node_peers_ping(struct node *n);
void node_peers_sync(struct node *n);            /* add/remove transport peers per members */
void node_peers_free(struct node *n);
bool node_release_votes(struct node *n);
/* snapshot.c */
void node_snap_out_free(struct snap_out *s);
void node_snap_in_reset(struct node *n);
void node_snap_receive(struct node *n, uint64_t from, const Plinthraftpb__SnapshotChunk *c);
void node_snap_pump(evutil_socket_t fd, short what, void *arg);
void node_forward_conf(struct node *n, uint64_t request_id, const struct raft_conf_change *cc);
void node_lease_renew_remote(struct node *n, uint64_t request_id, int64_t lease_id);
/* svc_cluster.c / svc_lease.c: */
void node_conf_forwarded(struct node *n, uint64_t from, const Plinthraftpb__ConfProposal *cp);
void node_lease_renew_answer(struct node *n, uint64_t request_id, int64_t lease_id, int64_t ttl);
void node_lease_ttl_peer(struct node *n, uint64_t from, const Plinthraftpb__LeaseTTL *m);
void node_lease_ttl_forget(struct node *n, struct ttl_wait *t);

/* ---- node.c / restore.c ------------------------------------------------------------------ */
/* n->members from --initial-cluster (this member's client URLs from the flags). */
void node_members_from_config(struct node *n);
/* --restore-snapshot: builds the empty data dir from the snapshot file (before the store
 * is opened for serving); the store is closed again when it returns. 0 or -1 with err. */
int node_restore_snapshot(struct node *n, const kv_options *ko, char *err, size_t errlen);

/* ---- members.c ---------------------------------------------------------------------------- */
struct node_member *node_member_find(struct node *n, uint64_t id);
void node_member_to_pb(const struct node_member *m, Etcdserverpb__Member *pb, char **urls);
void node_member_from_pb(const Etcdserverpb__Member *pb, struct node_member *m);
int node_members_pack(const struct node *n, const struct node_members *ms, uint8_t **out, size_t *len);
int node_members_save(struct node *n, kv_wtxn *w);
/* The removed-member set: node_id_removed tells whether id was ever removed;
 * node_removed_add records one in the turn's transaction (and in memory). */
bool node_id_removed(const struct node *n, uint64_t id);
int node_removed_add(struct node *n, kv_wtxn *w, uint64_t id);
int node_members_load(struct node *n);
int node_conf_state_save(struct node *n, kv_wtxn *w, const struct raft_conf_state *c);
int node_conf_state_load(struct node *n, struct raft_conf_state *c);
int node_apply_conf_change(struct node *n, kv_wtxn *w, const struct raft_entry *e,
                           struct turn_state *ts);
int node_apply_own(struct node *n, kv_wtxn *w, const struct raft_entry *e, uint64_t id,
                   struct turn_state *ts);

/* ---- snapshot.c / lease ---------------------------------------------------------------------- */
int node_snapshot_install(struct node *n, const struct raft_snapshot_meta *meta);
void node_propose_lease_revoke(struct node *n, int64_t id);

/* ---- svc_*.c -------------------------------------------------------------------------- */
int node_services_register(struct node *n);
void node_fill_header(const struct node *n, Etcdserverpb__ResponseHeader *h, int64_t rev);
/* Unpacks one request message of type d. On malformed bytes answers the call
 * INVALID_ARGUMENT "grpc: error unmarshalling request" (as etcd's gRPC layer does) and
 * returns NULL. The message is the caller's (free with protobuf_c_message_free_unpacked). */
void *node_unpack(struct net_grpc_call *call, const ProtobufCMessageDescriptor *d,
                  const uint8_t *msg, size_t len);
void node_reply_status(struct net_grpc_call *call, struct node_status st);
void node_gauges(void *ud, struct node_gauges *g);
/* Answers a unary call with a kv result (its header completed) or its error. */
void node_reply_result(struct node *n, struct net_grpc_call *call, kv_result *res);
/* Waiter completion that answers the call with the apply's result. */
void node_reply_done(struct node *n, struct waiter *w, struct node_status st, kv_result *res);
/* Builds the encoded plinthpb.Request {id, field: raw message bytes} (malloc'd). */
uint8_t *node_envelope(uint64_t id, int field, const uint8_t *msg, size_t len, size_t *out_len);
void node_watch_tick(struct node *n, int64_t now);
void node_watch_free_all(struct node *n);
void node_lease_tick(struct node *n, int64_t now);
void node_cluster_tick(struct node *n, int64_t now);
int svc_kv_register(struct node *n);
/* txnread.c: read-only txns. readonly: no put/delete in any branch at any depth;
 * serializable: etcd's isTxnSerializable. node_txn_read_reply evaluates t against the
 * committed store and answers call (t borrowed). */
bool node_txn_readonly(const Etcdserverpb__TxnRequest *t);
bool node_txn_serializable(const Etcdserverpb__TxnRequest *t);
void node_txn_read_reply(struct node *n, struct net_grpc_call *call,
                         const Etcdserverpb__TxnRequest *t);
void node_propose_client(struct node *n, struct net_grpc_call *call, int field, const uint8_t *msg,
                         size_t len);
bool node_quota_refuse(struct node *n, struct net_grpc_call *call, const Plinthpb__Request *req);
int svc_watch_register(struct node *n);
int svc_lease_register(struct node *n);
int svc_cluster_register(struct node *n);
int svc_maint_register(struct node *n);
int svc_election_register(struct node *n); /* v3election (svc_election.c, svc_observe.c) */
int svc_observe_register(struct node *n);
int svc_lock_register(struct node *n);     /* v3lock */

#endif

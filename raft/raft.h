/* raft.h — plinth's Raft consensus core: a pure, deterministic state machine.
 *
 * The core never touches sockets, clocks, disks or global state. The caller (the node
 * loop) feeds it ticks, received messages and proposals; it takes out a "ready" batch
 * (what to persist, what to apply, what to send, which reads may be served) and
 * confirms the batch with raft_advance() once it has done what the batch asked.
 * Randomness comes from a PRNG seeded by the caller, so the same seed and the same
 * sequence of calls produce the same outputs, byte for byte.
 *
 * ---------------------------------------------------------------------------------
 * The driver loop (one turn of the node's event loop)
 * ---------------------------------------------------------------------------------
 *
 *   raft_tick(r)                 every heartbeat interval (e.g. 100 ms)
 *   raft_step(r, &msg)           for every peer message that arrived
 *   raft_propose(r, ...)         for client writes (leader only, see below)
 *   raft_read_index(r, ctx)      for linearizable reads
 *
 *   if (raft_has_ready(r)) {
 *       struct raft_ready rd;
 *       raft_ready_get(r, &rd);
 *       1. send rd.msgs now (they do not depend on local durability: a leader's
 *          appends, heartbeats, snapshots; the leader writes its own log in
 *          parallel, dissertation §10.2.1);
 *       2. in ONE durable write transaction:
 *            - if rd.snapshot: install the snapshot data that arrived with the
 *              RAFT_MSG_SNAPSHOT message, drop the whole persisted log and record
 *              the log start (rd.snapshot->index, ->term) and ->conf;
 *            - if rd.n_entries: delete persisted entries with index >=
 *              rd.entries[0].index, then append rd.entries;
 *            - if rd.hard_state_changed: store rd.hard_state;
 *            - apply rd.committed (in order), record the applied index
 *              (the last committed entry's index) and, if rd.conf_state_changed,
 *              rd.conf_state (the membership as of that applied index);
 *          then fsync (commit the transaction);
 *       3. send rd.msgs_after_persist — vote requests, votes granted and append
 *          acknowledgements. They promise that something is durable, so they MUST NOT
 *          leave before step 2 is durable (the durability contract, Figure 2 "persistent
 *          state ... updated on stable storage before responding to RPCs");
 *       4. answer clients whose entries were applied; serve rd.reads whose index is
 *          <= the applied index (it always is once step 2 is done);
 *       5. raft_advance(r, &rd).
 *   }
 *
 * Between raft_ready_get() and raft_advance() the caller must not call any raft_ input
 * function (they return RAFT_EBUSY); queries are allowed. Every pointer inside the
 * ready batch stays valid until raft_advance().
 *
 * ---------------------------------------------------------------------------------
 * Log storage: the core keeps the log in memory
 * ---------------------------------------------------------------------------------
 * The core holds every entry from the log start (the last compaction or snapshot
 * point) to the last index in memory, as etcd's server does with its MemoryStorage.
 * There is no storage callback: the caller only WRITES what the ready batch says, and
 * on restart READS everything back once and passes it to raft_new() (struct
 * raft_restore). To bound memory and restart time, the caller compacts: after applying
 * index A it may call raft_compact(r, C) for any C <= A (typically A minus a few
 * thousand entries, so a briefly lagging follower still gets plain appends), and
 * delete persisted entries <= C, recording C and its term as the new log start. A
 * follower that needs an entry below the log start is sent a snapshot.
 *
 * ---------------------------------------------------------------------------------
 * Snapshots
 * ---------------------------------------------------------------------------------
 * The core never sees snapshot data. When the leader decides a follower needs one, the
 * ready batch carries a RAFT_MSG_SNAPSHOT whose ->snapshot metadata (index, term,
 * membership) describes the leader's state machine as it will be once the caller has
 * applied THIS batch's committed entries; the caller attaches a consistent copy of that
 * state (e.g. an LMDB read transaction opened right after step 2) and streams it with
 * the message. If sending fails the caller reports raft_report_snapshot(r, to, false).
 * On the receiving side the caller keeps the data aside, calls raft_step() with the
 * message, and installs the data only if the next ready batch has rd.snapshot set
 * (otherwise the data was stale and is discarded).
 *
 * ---------------------------------------------------------------------------------
 * Proposals, forwarding
 * ---------------------------------------------------------------------------------
 * Only the leader accepts proposals (RAFT_ENOTLEADER elsewhere); the core does NOT
 * forward proposals: the node forwards them to raft_leader() itself or tells the
 * client. raft_propose() returns the index given to the first entry; the entry at that
 * index belongs to the client only if, when applied, its term equals raft_term() at
 * proposal time (a new leader may have overwritten it). ReadIndex requests and leader
 * transfer requests made on a follower ARE forwarded by the core to the leader.
 *
 * Threading: a struct raft is not thread-safe; one thread drives it.
 */
#ifndef PLINTH_RAFT_H
#define PLINTH_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_term_t;
typedef uint64_t raft_index_t;
typedef uint64_t raft_id_t; /* member id; 0 (RAFT_NONE) means "nobody" */

struct raft; /* opaque: one member's consensus state */

#define RAFT_NONE ((raft_id_t)0)
#define RAFT_MAX_MEMBERS 16 /* voters + learners */

/* ---- errors -------------------------------------------------------------------- */

enum {
    RAFT_OK = 0,
    RAFT_EINVAL = 1,    /* bad argument or configuration */
    RAFT_ENOMEM = 2,    /* allocation failed; the object is unchanged */
    RAFT_ENOTLEADER = 3, /* only the leader can do this (see raft_leader()) */
    RAFT_ENOLEADER = 4, /* no known leader to forward to; retry later */
    RAFT_EBUSY = 5,     /* a ready batch is outstanding, a conf change is pending, or a
                           leader transfer is in progress; retry later */
    RAFT_ECOMPACTED = 6, /* index is below the log start */
    RAFT_EUNAVAILABLE = 7, /* index is beyond what is applied / in the log */
    RAFT_ETOOBIG = 8,   /* too many members, or a message field too large */
};

/* Static text for an error code, e.g. "raft: not leader". Never NULL. */
const char *raft_strerror(int err);

/* ---- bytes, entries, membership -------------------------------------------------- */

struct raft_buf {
    const void *base;
    size_t len;
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0,      /* application data (a proposal) */
    RAFT_ENTRY_CONF_CHANGE = 1, /* membership change; decode with raft_conf_change_decode */
    RAFT_ENTRY_NOOP = 2,        /* empty entry each new leader appends (§8, Figure 8) */
};

struct raft_entry {
    raft_term_t term;
    raft_index_t index;
    enum raft_entry_type type;
    const void *data; /* owned by the core unless stated otherwise; may be NULL if len 0 */
    size_t len;
};

enum raft_conf_change_type {
    RAFT_CC_ADD_VOTER = 0,   /* a new voting member (starts with an empty log) */
    RAFT_CC_ADD_LEARNER = 1, /* a non-voting member that receives the log */
    RAFT_CC_PROMOTE = 2,     /* learner becomes voter */
    RAFT_CC_REMOVE = 3,      /* voter or learner leaves */
};

/* One single-server membership change (dissertation §4.1). The context is opaque to the
 * core (plinth puts the member's name and peer URLs there) and travels in the entry. */
struct raft_conf_change {
    enum raft_conf_change_type type;
    raft_id_t node;
    struct raft_buf context; /* borrowed by the functions that take it */
};

/* Decodes a RAFT_ENTRY_CONF_CHANGE entry's data. out->context points INTO data
 * (borrowed, valid as long as data). Returns 0 or RAFT_EINVAL. */
int raft_conf_change_decode(const void *data, size_t len, struct raft_conf_change *out);

struct raft_conf_state {
    size_t n_voters;
    raft_id_t voters[RAFT_MAX_MEMBERS];
    size_t n_learners;
    raft_id_t learners[RAFT_MAX_MEMBERS];
};

struct raft_hard_state {
    raft_term_t term;
    raft_id_t vote; /* RAFT_NONE if no vote in term */
    raft_index_t commit;
};

/* Describes a state machine image: it contains every entry through index (whose term
 * is term) and the membership conf as of index. */
struct raft_snapshot_meta {
    raft_index_t index;
    raft_term_t term;
    struct raft_conf_state conf;
};

/* ---- messages -------------------------------------------------------------------- */

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,       /* leader -> follower: entries after (index, log_term) */
    RAFT_MSG_APPEND_RESP,      /* accept: index = last index now matching the leader;
                                  reject: index = the rejected prev index, reject_hint
                                  and log_term give the conflict hint (§5.3 end) */
    RAFT_MSG_VOTE,             /* candidate: index/log_term = its last entry (§5.4.1) */
    RAFT_MSG_VOTE_RESP,        /* reject says whether it was refused */
    RAFT_MSG_PREVOTE,          /* term = the term the candidate WOULD use (§9.6) */
    RAFT_MSG_PREVOTE_RESP,     /* term = the term from the request if granted */
    RAFT_MSG_HEARTBEAT,        /* commit, read_seq */
    RAFT_MSG_HEARTBEAT_RESP,   /* read_seq echoed */
    RAFT_MSG_SNAPSHOT,         /* snapshot metadata; data travels out of band */
    RAFT_MSG_TIMEOUT_NOW,      /* leader transfer: start an election now (§3.10) */
    RAFT_MSG_READ_INDEX,       /* follower -> leader: context */
    RAFT_MSG_READ_INDEX_RESP,  /* leader -> follower: index, context; reject if refused */
    RAFT_MSG_TRANSFER_LEADER,  /* follower -> leader: index = the transferee id */
};

/* flags */
#define RAFT_MSG_F_LEADER_LOST 0x1u /* (pre)vote of a campaign started because the
                                       candidate's connection to the leader closed */
#define RAFT_MSG_F_TRANSFER 0x2u    /* vote of a campaign started by TimeoutNow: peers
                                       grant even if they still hear the old leader */
#define RAFT_MSG_F_NEED_SNAPSHOT 0x4u /* APPEND_RESP reject from a member that joined with
                                         no membership: it must start from a snapshot */

/* A message. Fields not listed for a type are zero. Messages produced by the core
 * (in a ready batch) point into core memory valid until raft_advance(); messages given
 * to raft_step() are borrowed for the duration of the call (the core copies what it
 * keeps). */
struct raft_msg {
    enum raft_msg_type type;
    raft_id_t from;
    raft_id_t to;
    raft_term_t term;      /* sender's current term (0 never appears on the wire) */
    raft_term_t log_term;  /* APPEND: term of entry `index`; VOTE/PREVOTE: last log term;
                              APPEND_RESP reject: term of the follower's entry at
                              reject_hint (0 if none) */
    raft_index_t index;    /* see the type list above */
    raft_index_t commit;   /* APPEND, HEARTBEAT: the leader's commit index */
    bool reject;
    raft_index_t reject_hint; /* APPEND_RESP reject: the follower's last index, or the
                                 first index of its conflicting term */
    uint32_t flags;        /* RAFT_MSG_F_* */
    uint64_t read_seq;     /* HEARTBEAT(_RESP): ReadIndex confirmation round (§6.4) */
    const struct raft_entry *entries; /* APPEND */
    size_t n_entries;
    struct raft_buf context; /* READ_INDEX(_RESP): the caller's read context */
    const struct raft_snapshot_meta *snapshot; /* SNAPSHOT: never NULL for that type */
};

/* Deep copy helpers for transports and tests: raft_msg_clone() copies *m, its entries,
 * their data, context and snapshot into one malloc'd block (free with raft_msg_free).
 * Returns NULL on allocation failure. */
struct raft_msg *raft_msg_clone(const struct raft_msg *m);
void raft_msg_free(struct raft_msg *m);

/* ---- configuration and restart --------------------------------------------------- */

/* What the caller persisted, handed back on restart. All pointers borrowed for the
 * duration of raft_new(); the core copies. */
struct raft_restore {
    struct raft_hard_state hard_state;
    raft_index_t log_start;       /* last compacted/snapshotted index (0 if none) */
    raft_term_t log_start_term;   /* its term */
    raft_index_t applied;         /* last applied index, >= log_start, <= commit */
    struct raft_conf_state conf;  /* membership as of `applied` */
    const struct raft_entry *entries; /* the persisted log, indices log_start+1.. in
                                         order, without gaps */
    size_t n_entries;
};

struct raft_config {
    raft_id_t id;              /* this member, != RAFT_NONE */
    /* Fresh start (restore == NULL): the initial membership, identical on every
     * founding member. A member joining an existing cluster passes no voters and no
     * learners: it waits to be contacted by the leader, and refuses appends until it
     * has installed a snapshot (which carries the membership). */
    const raft_id_t *voters;
    size_t n_voters;
    const raft_id_t *learners;
    size_t n_learners;
    const struct raft_restore *restore; /* non-NULL: restart from persisted state */

    int election_tick;         /* T: election timeout in ticks; timeouts are drawn
                                  uniformly from [T, 2T) (§5.2). Default 10 */
    int heartbeat_tick;        /* leader heartbeat interval in ticks. Default 1 */
    bool pre_vote;             /* §9.6 pre-vote */
    bool check_quorum;         /* leader steps down if it has not heard from a quorum
                                  within an election timeout (§6.2); also makes
                                  followers ignore votes while they hear a leader */
    size_t max_inflight_msgs;  /* appends in flight per follower. Default 256 */
    size_t max_size_per_msg;   /* payload bytes per append (at least one entry is
                                  always sent). Default 1 MiB */
    uint64_t seed;             /* PRNG seed (election timeouts) */
};

/* Creates a core. *cfg is borrowed (copied). Returns 0 and sets *out, or RAFT_EINVAL /
 * RAFT_ENOMEM leaving nothing behind. A fresh core or a restarted one starts as a
 * follower with no known leader. A fresh core's first ready batch reports the initial
 * membership (conf_state_changed) so the caller persists it with everything else;
 * after a restart, entries in (applied, commit] are handed out again as committed in
 * the first ready batch. */
int raft_new(const struct raft_config *cfg, struct raft **out);
void raft_free(struct raft *r);

/* ---- inputs ---------------------------------------------------------------------- */
/* All input functions return RAFT_EBUSY while a ready batch is outstanding. */

/* One logical clock tick: drives election timeouts, heartbeats, check-quorum and
 * leader-transfer timeouts. */
int raft_tick(struct raft *r);

/* Feeds one received message (borrowed). Stale or misaddressed messages are dropped
 * silently (returns 0). Returns RAFT_EINVAL for a malformed message, RAFT_ENOMEM. */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Appends n entries of application data (each buffer copied) to the leader's log.
 * On success *first_index (may be NULL) is the index of the first entry; the others
 * follow consecutively, all with term raft_term(r).
 * Errors: RAFT_ENOTLEADER, RAFT_EBUSY (leader transfer in progress), RAFT_EINVAL
 * (n == 0), RAFT_ENOMEM (entries appended before the failure stay proposed). */
int raft_propose(struct raft *r, const struct raft_buf *data, size_t n,
                 raft_index_t *first_index);

/* Proposes one membership change (dissertation §4.1: one server at a time). Refused
 * with RAFT_EBUSY while an earlier change is not yet applied (this includes a new
 * leader's own start-of-term entry, the fix of §4.1.3's bug). RAFT_EINVAL: adding a
 * member that exists, promoting a non-learner, removing a non-member, or leaving no
 * voter. RAFT_ETOOBIG: more than RAFT_MAX_MEMBERS. The change takes effect on every
 * member when the entry is handed out as committed. cc->context copied. */
int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             raft_index_t *index);

/* Requests a linearizable read (ReadIndex, dissertation §6.4). ctx (copied, at most
 * 256 bytes) identifies the request. Later a ready batch carries a raft_read_state
 * {index, ctx}: once the applied index reaches `index`, reading the state machine is
 * linearizable. On a follower the request is forwarded to the leader. A refused or
 * lost request simply never comes back; the caller times out and retries.
 * Errors: RAFT_ENOLEADER, RAFT_ETOOBIG, RAFT_ENOMEM. */
int raft_read_index(struct raft *r, struct raft_buf ctx);

/* Asks leadership to move to voter `to` (§3.10): the leader stops accepting proposals,
 * brings `to` up to date and sends it TimeoutNow; aborted after an election timeout.
 * On a follower the request is forwarded to the leader.
 * Errors: RAFT_EINVAL (to is not a voter / is self), RAFT_ENOLEADER. */
int raft_transfer_leader(struct raft *r, raft_id_t to);

/* The transport reports that this member's connection to peer `from` closed. If
 * `from` is the current leader and this member is a follower (voter, with pre-vote
 * enabled) it starts a pre-vote campaign at once, flagged RAFT_MSG_F_LEADER_LOST,
 * instead of waiting for its election timeout. A peer grants such a flagged (pre)vote
 * only if it has lost the leader too (it got the same report, or has not heard the
 * leader for at least half an election timeout); peers that still hear the leader
 * refuse, so one flaky link cannot unseat a healthy leader. When every follower of a
 * crashed leader gets the report at once they all pre-vote at once; with no timer to
 * break the tie, a pre-candidate yields to a flagged pre-vote from a peer with a more
 * up-to-date log (equal logs: the lower id), so the vote does not split. If the
 * flagged campaign fails, the ordinary election timeout still applies. Otherwise a
 * no-op. */
int raft_leader_conn_lost(struct raft *r, raft_id_t from);

/* The transport could not deliver to `to`: the leader stops pipelining to it and
 * probes with one append per heartbeat until it answers. */
int raft_report_unreachable(struct raft *r, raft_id_t to);

/* Outcome of sending a snapshot to `to`: on failure the leader retries later; on
 * success it waits for the follower's acknowledgement. */
int raft_report_snapshot(struct raft *r, raft_id_t to, bool ok);

/* Drops in-memory log entries with index <= index (must be <= the applied index). The
 * caller deletes the same persisted entries and records (index, raft_term_at(index))
 * as its log start. Errors: RAFT_EUNAVAILABLE (beyond applied), RAFT_EBUSY.
 * Compacting below the current log start is a no-op. */
int raft_compact(struct raft *r, raft_index_t index);

/* ---- output ---------------------------------------------------------------------- */

enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

struct raft_soft_state {
    raft_id_t leader; /* RAFT_NONE if unknown */
    enum raft_role role;
};

struct raft_read_state {
    raft_index_t index;    /* serve once applied >= index */
    struct raft_buf ctx;   /* as given to raft_read_index */
};

/* One batch of work. Everything points into core memory valid until raft_advance(). */
struct raft_ready {
    bool soft_state_changed;
    struct raft_soft_state soft_state;
    bool hard_state_changed;
    struct raft_hard_state hard_state;          /* persist if changed */
    const struct raft_snapshot_meta *snapshot;  /* non-NULL: install (see above) */
    const struct raft_entry *entries;           /* to persist: delete persisted entries
                                                   >= entries[0].index, then append */
    size_t n_entries;
    const struct raft_entry *committed;         /* to apply, in order, after the above */
    size_t n_committed;
    bool conf_state_changed;                    /* a conf change among committed */
    struct raft_conf_state conf_state;          /* membership after applying committed */
    const struct raft_msg *msgs;                /* send at once */
    size_t n_msgs;
    const struct raft_msg *msgs_after_persist;  /* send only after persisting */
    size_t n_msgs_after_persist;
    const struct raft_read_state *reads;        /* serve after applying */
    size_t n_reads;
};

/* True if raft_ready_get() would return a non-empty batch. */
bool raft_has_ready(const struct raft *r);

/* Fills *rd with the pending batch (may be empty). Returns RAFT_EBUSY if the previous
 * batch has not been advanced yet. */
int raft_ready_get(struct raft *r, struct raft_ready *rd);

/* Confirms that everything in rd (the batch from the last raft_ready_get) is durable,
 * applied, and the messages handed to the transport. Frees the batch. */
void raft_advance(struct raft *r, const struct raft_ready *rd);

/* ---- queries --------------------------------------------------------------------- */

enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 0,     /* one append per heartbeat until the match is found */
    RAFT_PROGRESS_REPLICATE = 1, /* pipelining */
    RAFT_PROGRESS_SNAPSHOT = 2,  /* waiting for a snapshot to be installed */
};

struct raft_progress {
    raft_index_t match;  /* highest index known replicated (durable) on that member */
    raft_index_t next;   /* next index to send */
    enum raft_progress_state state;
    bool learner;
    bool recent_active;  /* heard from it in the current check-quorum window */
};

raft_id_t raft_id(const struct raft *r);
enum raft_role raft_role(const struct raft *r);
raft_id_t raft_leader(const struct raft *r);
raft_term_t raft_term(const struct raft *r);
raft_index_t raft_commit_index(const struct raft *r);
raft_index_t raft_applied_index(const struct raft *r); /* last handed out as committed */
raft_index_t raft_last_index(const struct raft *r);
raft_index_t raft_first_index(const struct raft *r);   /* log start + 1 */
/* Term of entry `index` into *term; 0 or RAFT_ECOMPACTED / RAFT_EUNAVAILABLE. The log
 * start's own term is known. */
int raft_term_at(const struct raft *r, raft_index_t index, raft_term_t *term);
void raft_hard_state(const struct raft *r, struct raft_hard_state *out);
void raft_conf_state(const struct raft *r, struct raft_conf_state *out);
/* Leader only: replication progress of member id (learner promotion readiness is
 * match close to raft_last_index). Returns 0, RAFT_ENOTLEADER or RAFT_EINVAL. */
int raft_progress(const struct raft *r, raft_id_t id, struct raft_progress *out);

/* Human-readable names for traces. */
const char *raft_role_name(enum raft_role role);
const char *raft_msg_type_name(enum raft_msg_type type);

#endif

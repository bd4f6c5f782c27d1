/* raft_int.h — private state of the Raft core shared by the files in raft/. */
#ifndef PLINTH_RAFT_INT_H
#define PLINTH_RAFT_INT_H

#include "raft/raft.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define RAFT_MAX_CTX 256

/* ---- log (log.c) ---------------------------------------------------------------- */

/* Entry payloads live in reference-counted blocks so that outgoing messages can hold
 * entries that a later truncation removes from the log. */
struct rblock {
    uint32_t refs;
    size_t len;
    unsigned char data[];
};

struct rlog {
    raft_index_t start;      /* last compacted index (entries <= start are gone) */
    raft_term_t start_term;
    struct raft_entry *ents; /* ents[i].index == start + 1 + i */
    size_t n, cap;
    raft_index_t stable;     /* highest index the caller confirmed durable */
    raft_index_t commit;
    raft_index_t applied;    /* highest index handed out as committed */
};

int log_init(struct rlog *l);
void log_free(struct rlog *l);
raft_index_t log_last(const struct rlog *l);
raft_term_t log_last_term(const struct rlog *l);
/* Term at index, or 0 if index is outside [start, last]; *ok tells which. */
raft_term_t log_term(const struct rlog *l, raft_index_t i, bool *ok);
bool log_match(const struct rlog *l, raft_index_t i, raft_term_t t);
const struct raft_entry *log_get(const struct rlog *l, raft_index_t i);
/* Appends one entry, copying data (or taking a ref if `blockref` is the payload of a
 * block). Returns 0 or RAFT_ENOMEM. */
int log_append(struct rlog *l, raft_term_t term, enum raft_entry_type type,
               const void *data, size_t len);
/* Appends a copy of *e that shares e's payload block if it has one. */
int log_append_entry(struct rlog *l, const struct raft_entry *e, bool shared);
void log_truncate_from(struct rlog *l, raft_index_t i); /* removes entries >= i */
void log_compact(struct rlog *l, raft_index_t i);       /* removes entries <= i */
void log_reset(struct rlog *l, raft_index_t start, raft_term_t start_term);
/* Whether e->data came from a core block (so it can be shared). */
void entry_ref(const struct raft_entry *e);
void entry_unref(const struct raft_entry *e);

/* ---- progress (progress.c) -------------------------------------------------------- */

struct progress {
    raft_id_t id;
    bool learner;
    raft_index_t match, next;
    enum raft_progress_state state;
    bool probe_sent;              /* PROBE: one append outstanding, paused */
    int stalls;                   /* heartbeat answers in a row with no progress */
    raft_index_t pending_snapshot;
    bool recent_active;
    uint64_t read_ack;            /* highest ReadIndex round acknowledged */
    bool vote_known, vote_granted;
    raft_index_t *infl;           /* ring of last indices of in-flight appends */
    size_t infl_start, infl_count;
};

struct progress *pr_get(struct raft *r, raft_id_t id);
void pr_become_probe(struct raft *r, struct progress *pr);
void pr_become_replicate(struct raft *r, struct progress *pr);
void pr_become_snapshot(struct progress *pr);
bool pr_paused(const struct raft *r, const struct progress *pr);
void pr_infl_add(struct raft *r, struct progress *pr, raft_index_t last);
void pr_infl_free_to(struct raft *r, struct progress *pr, raft_index_t idx);
/* Rebuilds the progress table from r->conf, keeping existing rows. */
int pr_sync_conf(struct raft *r);
bool is_voter(const struct raft *r, raft_id_t id);
bool is_member(const struct raft *r, raft_id_t id);
size_t quorum(const struct raft *r);

/* ---- outbox (ready.c) ------------------------------------------------------------- */

struct msgvec {
    struct raft_msg *v;
    size_t n, cap;
};

struct readstate {
    raft_index_t index;
    size_t len;
    unsigned char ctx[RAFT_MAX_CTX];
};

/* A ReadIndex request waiting for a heartbeat round (or for the leader's first commit
 * in its term). */
struct pending_read {
    raft_index_t index;
    uint64_t seq;
    raft_id_t from; /* self or the follower that forwarded it */
    size_t len;
    unsigned char ctx[RAFT_MAX_CTX];
};

struct raft {
    raft_id_t id;
    int election_timeout, heartbeat_timeout;
    bool pre_vote, check_quorum;
    size_t max_inflight, max_size;
    uint64_t rng;

    raft_term_t term;
    raft_id_t vote;
    raft_id_t leader;
    enum raft_role role;
    uint32_t campaign_flags;      /* flags of the current (pre)campaign */

    struct rlog log;
    struct raft_conf_state conf;
    struct progress prs[RAFT_MAX_MEMBERS];
    size_t n_prs;

    int election_elapsed, heartbeat_elapsed, randomized_timeout;
    bool leader_lost;
    raft_id_t transferee;
    raft_index_t pending_conf_index;

    uint64_t read_seq;
    struct pending_read *reads_pending; /* leader: in seq order */
    size_t n_reads_pending, cap_reads_pending;
    struct readstate *reads_out;        /* released reads, served after apply */
    size_t n_reads_out, cap_reads_out;

    struct msgvec msgs, msgs_after;

    /* ready bookkeeping */
    bool in_ready;
    struct raft_hard_state prev_hs;
    struct raft_soft_state prev_ss;
    bool snapshot_pending;
    bool conf_dirty;                        /* fresh start: report the initial conf */
    struct raft_snapshot_meta snapshot;     /* installed, for the ready batch */
    struct msgvec rd_msgs, rd_after;        /* handed out, freed at advance */
    struct raft_read_state *rd_reads;
    size_t n_rd_reads;
    raft_index_t rd_last;                   /* last index persisted by the batch */
    bool rd_has_snapshot;
};

/* ---- core.c ----------------------------------------------------------------------- */
uint64_t rnd(struct raft *r);
void reset_timers(struct raft *r);
void become_follower(struct raft *r, raft_term_t term, raft_id_t leader);
void become_leader(struct raft *r);
bool promotable(const struct raft *r);

/* ---- messages (ready.c) ----------------------------------------------------------- */
/* Queues m (shallow: entries are ref'd and copied, context and snapshot copied).
 * after: held back until the batch is persisted. */
int send_msg(struct raft *r, const struct raft_msg *m, bool after);
void msgvec_clear(struct msgvec *v);
int add_read_state(struct raft *r, raft_index_t index, const void *ctx, size_t len);

/* ---- election.c ------------------------------------------------------------------- */
void campaign(struct raft *r, bool pre, uint32_t flags);
int step_vote(struct raft *r, const struct raft_msg *m);
void step_vote_resp(struct raft *r, const struct raft_msg *m);
bool in_lease(const struct raft *r, const struct raft_msg *m);

/* ---- replication.c ---------------------------------------------------------------- */
void send_append(struct raft *r, struct progress *pr, bool send_if_empty);
void bcast_append(struct raft *r);
void bcast_heartbeat(struct raft *r);
bool maybe_commit(struct raft *r);
int handle_append(struct raft *r, const struct raft_msg *m);
void handle_append_resp(struct raft *r, const struct raft_msg *m);
void handle_heartbeat(struct raft *r, const struct raft_msg *m);
void handle_heartbeat_resp(struct raft *r, const struct raft_msg *m);
int append_local(struct raft *r, enum raft_entry_type type, const void *data, size_t len);
void self_persisted(struct raft *r);

/* ---- snapshot.c ------------------------------------------------------------------- */
void send_snapshot(struct raft *r, struct progress *pr);
int handle_snapshot(struct raft *r, const struct raft_msg *m);

/* ---- readindex.c ------------------------------------------------------------------ */
int read_request(struct raft *r, raft_id_t from, const void *ctx, size_t len);
void read_acked(struct raft *r);
void reads_on_commit(struct raft *r);
void reads_reset(struct raft *r);

/* ---- membership.c ----------------------------------------------------------------- */
int conf_apply(struct raft *r, const struct raft_entry *e, bool *changed);
int conf_from_lists(struct raft_conf_state *c, const raft_id_t *v, size_t nv,
                    const raft_id_t *l, size_t nl);

/* ---- transfer (election.c) -------------------------------------------------------- */
int transfer_request(struct raft *r, raft_id_t to);
void transfer_check(struct raft *r, struct progress *pr);

#endif

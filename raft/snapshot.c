/* snapshot.c — sending a snapshot to a follower that needs compacted entries, and
 * installing one (§7, Figure 13 InstallSnapshot; the data itself travels out of band). */
#include "raft/raft_int.h"

/* The metadata is completed when the ready batch is built (ready.c): it describes the
 * state machine after the caller applies that batch. */
void send_snapshot(struct raft *r, struct progress *pr)
{
    static const struct raft_snapshot_meta placeholder;
    struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .to = pr->id, .snapshot = &placeholder};
    if (send_msg(r, &m, false))
        return;
    pr_become_snapshot(pr);
}

int handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    const struct raft_snapshot_meta *s = m->snapshot;
    struct rlog *l = &r->log;
    struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    if (s->index <= l->commit) {
        resp.index = l->commit;
        return send_msg(r, &resp, true);
    }
    if (s->conf.n_voters > RAFT_MAX_MEMBERS || s->conf.n_learners > RAFT_MAX_MEMBERS)
        return RAFT_EINVAL;
    if (log_match(l, s->index, s->term)) {
        /* We hold the entry already: everything up to it is committed (Figure 13
         * step 6, keep the log after it). */
        l->commit = s->index;
        resp.index = l->commit;
        return send_msg(r, &resp, true);
    }
    /* Discard the whole log and take the snapshot's state (Figure 13 step 7). */
    log_reset(l, s->index, s->term);
    r->conf = s->conf;
    int rc = pr_sync_conf(r);
    if (rc)
        return rc;
    r->snapshot = *s;
    r->snapshot_pending = true;
    resp.index = s->index;
    return send_msg(r, &resp, true);
}

/* replication.c — AppendEntries on both sides, heartbeats and the commit rule
 * (Figure 2 AppendEntries; §5.3 log matching and fast backtracking; §5.4.2 / Figure 8;
 * dissertation §10.2.1 pipelining). */
#include "raft/raft_int.h"

int append_local(struct raft *r, enum raft_entry_type type, const void *data, size_t len)
{
    return log_append(&r->log, r->term, type, data, len);
}

/* The leader counts its own log only once the caller has made it durable, so an entry
 * is never committed on fewer durable copies than a majority. */
void self_persisted(struct raft *r)
{
    struct progress *self = pr_get(r, r->id);
    if (self && r->log.stable > self->match)
        self->match = r->log.stable;
    if (r->role == RAFT_LEADER && maybe_commit(r))
        bcast_append(r);
}

/* Commit rule (§5.3, §5.4.2, Figure 8): the highest index replicated on a majority of
 * voters is committed only if its entry is from the current term; earlier-term entries
 * are committed indirectly, never by counting replicas. */
bool maybe_commit(struct raft *r)
{
    raft_index_t m[RAFT_MAX_MEMBERS];
    size_t n = 0;
    for (size_t i = 0; i < r->n_prs; i++)
        if (!r->prs[i].learner)
            m[n++] = r->prs[i].match;
    if (n == 0)
        return false;
    /* sort descending (n <= 16) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && m[j] > m[j - 1]; j--) {
            raft_index_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    raft_index_t idx = m[quorum(r) - 1];
    if (idx <= r->log.commit)
        return false;
    bool ok;
    if (log_term(&r->log, idx, &ok) != r->term || !ok)
        return false;
    r->log.commit = idx;
    reads_on_commit(r);
    return true;
}

void send_append(struct raft *r, struct progress *pr, bool send_if_empty)
{
    if (pr->id == r->id || pr_paused(r, pr))
        return;
    raft_index_t prev = pr->next - 1;
    bool ok;
    raft_term_t prev_term = log_term(&r->log, prev, &ok);
    if (!ok) {
        /* The follower needs entries we compacted away: send a snapshot (§7). */
        send_snapshot(r, pr);
        return;
    }
    raft_index_t last = log_last(&r->log);
    size_t n = 0, bytes = 0;
    for (raft_index_t i = pr->next; i <= last; i++) {
        size_t len = log_get(&r->log, i)->len;
        if (n && bytes + len > r->max_size)
            break;
        bytes += len;
        n++;
    }
    if (n == 0 && !send_if_empty && pr->state != RAFT_PROGRESS_PROBE)
        return;
    struct raft_msg m = {
        .type = RAFT_MSG_APPEND, .to = pr->id, .index = prev, .log_term = prev_term,
        .commit = r->log.commit, .entries = n ? log_get(&r->log, pr->next) : NULL,
        .n_entries = n,
    };
    if (send_msg(r, &m, false))
        return;
    if (pr->state == RAFT_PROGRESS_REPLICATE) {
        if (n) {
            pr->next += n;
            pr_infl_add(r, pr, pr->next - 1);
        }
    } else {
        pr->probe_sent = true;
    }
}

/* Pipelining (dissertation §10.2.1): keep up to max_inflight appends outstanding. */
static void fill_window(struct raft *r, struct progress *pr)
{
    while (pr->state == RAFT_PROGRESS_REPLICATE && !pr_paused(r, pr) &&
           pr->next <= log_last(&r->log)) {
        raft_index_t before = pr->next;
        send_append(r, pr, false);
        if (pr->next == before)
            break;
    }
}

void bcast_append(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++) {
        send_append(r, &r->prs[i], true);
        fill_window(r, &r->prs[i]);
    }
}

void bcast_heartbeat(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        if (p->id == r->id)
            continue;
        /* Never tell a follower to commit beyond what it is known to hold. */
        struct raft_msg m = {
            .type = RAFT_MSG_HEARTBEAT, .to = p->id,
            .commit = p->match < r->log.commit ? p->match : r->log.commit,
            .read_seq = r->read_seq,
        };
        send_msg(r, &m, false);
    }
}

/* Largest index <= idx whose term is <= term: where the two logs may agree (the
 * conflict hint of §5.3's closing paragraphs). */
static raft_index_t conflict_by_term(const struct rlog *l, raft_index_t idx, raft_term_t term)
{
    if (idx > log_last(l))
        idx = log_last(l);
    for (;;) {
        bool ok;
        raft_term_t t = log_term(l, idx, &ok);
        if (!ok || t <= term)
            return idx;
        idx--;
    }
}

/* AppendEntries receiver (Figure 2, steps 1-5). */
int handle_append(struct raft *r, const struct raft_msg *m)
{
    struct rlog *l = &r->log;
    struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    if (m->index < l->commit) {
        resp.index = l->commit;
        return send_msg(r, &resp, true);
    }
    if (r->conf.n_voters == 0) {
        /* Joined with no membership: replaying the log from index 1 would not tell us
         * the founding members, so start from a snapshot. */
        resp.reject = true;
        resp.index = m->index;
        resp.flags = RAFT_MSG_F_NEED_SNAPSHOT;
        return send_msg(r, &resp, true);
    }
    if (!log_match(l, m->index, m->log_term)) {
        raft_index_t hint = conflict_by_term(l, m->index, m->log_term);
        bool ok;
        resp.reject = true;
        resp.index = m->index;
        resp.reject_hint = hint;
        resp.log_term = log_term(l, hint, &ok);
        return send_msg(r, &resp, true);
    }
    /* Skip entries we already have; truncate at the first conflict (step 3). */
    size_t i = 0;
    for (; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (!log_match(l, e->index, e->term))
            break;
    }
    if (i < m->n_entries) {
        raft_index_t at = m->entries[i].index;
        assert(at > l->commit); /* a committed entry is never overwritten */
        if (at <= log_last(l))
            log_truncate_from(l, at);
        for (; i < m->n_entries; i++) {
            int rc = log_append_entry(l, &m->entries[i], false);
            if (rc)
                return rc;
        }
    }
    raft_index_t last_new = m->index + m->n_entries;
    /* Step 5: commit up to min(leaderCommit, index of last new entry). */
    raft_index_t c = m->commit < last_new ? m->commit : last_new;
    if (c > l->commit)
        l->commit = c;
    resp.index = last_new;
    /* Acknowledged only after the batch is durable (durability contract). */
    return send_msg(r, &resp, true);
}

void handle_append_resp(struct raft *r, const struct raft_msg *m)
{
    struct progress *pr = pr_get(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    if (m->reject) {
        if (m->flags & RAFT_MSG_F_NEED_SNAPSHOT) {
            if (pr->state != RAFT_PROGRESS_SNAPSHOT)
                send_snapshot(r, pr);
            return;
        }
        if (m->index == 0)
            return;
        /* Stale rejections (for an append we no longer consider outstanding) are
         * ignored. */
        if (pr->state == RAFT_PROGRESS_REPLICATE) {
            if (m->index <= pr->match)
                return;
            pr_become_probe(r, pr);
        } else if (pr->state == RAFT_PROGRESS_PROBE) {
            if (pr->next - 1 != m->index)
                return;
        } else {
            return;
        }
        /* Fast backtracking: jump over the follower's conflicting term at once; the
         * new probe point is where our log has a term <= the follower's at its hint. */
        raft_index_t next = conflict_by_term(&r->log, m->reject_hint, m->log_term);
        if (next >= m->index)
            next = m->index - 1;
        if (next < pr->match)
            next = pr->match;
        pr->next = next + 1;
        pr->probe_sent = false;
        send_append(r, pr, false);
        return;
    }
    bool advanced = false;
    if (m->index > pr->match) {
        pr->match = m->index;
        pr->stalls = 0;
        advanced = true;
    }
    if (pr->next <= m->index)
        pr->next = m->index + 1;
    switch (pr->state) {
    case RAFT_PROGRESS_PROBE:
        pr_become_replicate(r, pr);
        break;
    case RAFT_PROGRESS_SNAPSHOT:
        if (pr->match >= pr->pending_snapshot || pr->match + 1 >= r->log.start + 1) {
            pr_become_probe(r, pr);
            pr_become_replicate(r, pr);
        }
        break;
    case RAFT_PROGRESS_REPLICATE:
        pr_infl_free_to(r, pr, m->index);
        break;
    }
    if (advanced && maybe_commit(r))
        bcast_append(r);
    else
        send_append(r, pr, false);
    fill_window(r, pr);
    transfer_check(r, pr);
}

void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    /* The leader only sends a commit index we are known to hold. */
    raft_index_t c = m->commit < log_last(&r->log) ? m->commit : log_last(&r->log);
    if (c > r->log.commit)
        r->log.commit = c;
    struct raft_msg resp = {.type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from,
                            .read_seq = m->read_seq, .index = log_last(&r->log)};
    send_msg(r, &resp, false);
}

void handle_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct progress *pr = pr_get(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    if (m->read_seq > pr->read_ack) {
        pr->read_ack = m->read_seq;
        read_acked(r);
    }
    raft_index_t last = log_last(&r->log);
    switch (pr->state) {
    case RAFT_PROGRESS_PROBE:
        pr->probe_sent = false; /* the probe may have been lost: send another */
        break;
    case RAFT_PROGRESS_REPLICATE:
        /* No acknowledgement during two heartbeat rounds while behind: appends or
         * their answers were lost. Fall back to probing from match. */
        if (pr->match < last && ++pr->stalls >= 2) {
            pr_become_probe(r, pr);
            pr->stalls = 0;
        }
        break;
    case RAFT_PROGRESS_SNAPSHOT:
        if (pr->pending_snapshot && m->index >= pr->pending_snapshot) {
            pr_become_probe(r, pr);
        }
        break;
    }
    if (pr->match < last || pr->state == RAFT_PROGRESS_PROBE)
        send_append(r, pr, false);
}

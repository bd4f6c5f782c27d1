/* core.c — construction, roles, the tick and the step dispatcher, proposals, queries. */
#include "raft/raft_int.h"

const char *raft_strerror(int err)
{
    switch (err) {
    case RAFT_OK: return "raft: ok";
    case RAFT_EINVAL: return "raft: invalid argument";
    case RAFT_ENOMEM: return "raft: out of memory";
    case RAFT_ENOTLEADER: return "raft: not leader";
    case RAFT_ENOLEADER: return "raft: no leader";
    case RAFT_EBUSY: return "raft: busy";
    case RAFT_ECOMPACTED: return "raft: index compacted";
    case RAFT_EUNAVAILABLE: return "raft: index unavailable";
    case RAFT_ETOOBIG: return "raft: too big";
    default: return "raft: unknown error";
    }
}

const char *raft_role_name(enum raft_role role)
{
    static const char *n[] = {"follower", "pre-candidate", "candidate", "leader"};
    return (unsigned)role < 4 ? n[role] : "?";
}

const char *raft_msg_type_name(enum raft_msg_type t)
{
    static const char *n[] = {"?", "append", "append-resp", "vote", "vote-resp", "prevote",
                              "prevote-resp", "heartbeat", "heartbeat-resp", "snapshot",
                              "timeout-now", "read-index", "read-index-resp",
                              "transfer-leader"};
    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

/* splitmix64: small, seedable, good enough for election jitter. */
uint64_t rnd(struct raft *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Election timeouts are drawn from [T, 2T) so split votes resolve quickly (§5.2). */
void reset_timers(struct raft *r)
{
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    r->randomized_timeout = r->election_timeout + (int)(rnd(r) % (uint64_t)r->election_timeout);
}

bool promotable(const struct raft *r)
{
    return is_voter(r, r->id);
}

static void reset(struct raft *r, raft_term_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->leader = RAFT_NONE;
    r->transferee = RAFT_NONE;
    r->campaign_flags = 0;
    reset_timers(r);
    reads_reset(r);
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        p->vote_known = p->vote_granted = false;
        p->match = p->id == r->id ? r->log.stable : 0;
        p->next = log_last(&r->log) + 1;
        p->state = RAFT_PROGRESS_PROBE;
        p->probe_sent = false;
        p->stalls = 0;
        p->pending_snapshot = 0;
        p->recent_active = true;
        p->read_ack = 0;
        p->infl_start = p->infl_count = 0;
    }
}

void become_follower(struct raft *r, raft_term_t term, raft_id_t leader)
{
    reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    if (leader != RAFT_NONE)
        r->leader_lost = false;
}

void become_leader(struct raft *r)
{
    assert(r->role == RAFT_CANDIDATE);
    reset(r, r->term);
    r->role = RAFT_LEADER;
    r->leader = r->id;
    r->leader_lost = false;
    /* A new leader appends an empty entry of its term: committing it commits every
     * earlier entry (§5.4.2, Figure 8; §6.4 for ReadIndex). No conf change may be
     * proposed before it is applied (dissertation §4.1.3 fix). */
    if (append_local(r, RAFT_ENTRY_NOOP, NULL, 0) == 0)
        r->pending_conf_index = log_last(&r->log);
    bcast_append(r);
}

int raft_new(const struct raft_config *cfg, struct raft **out)
{
    if (!cfg || !out || cfg->id == RAFT_NONE || cfg->election_tick < 0 ||
        cfg->heartbeat_tick < 0)
        return RAFT_EINVAL;
    struct raft *r = calloc(1, sizeof(*r));
    if (!r)
        return RAFT_ENOMEM;
    r->id = cfg->id;
    r->election_timeout = cfg->election_tick ? cfg->election_tick : 10;
    r->heartbeat_timeout = cfg->heartbeat_tick ? cfg->heartbeat_tick : 1;
    if (r->heartbeat_timeout >= r->election_timeout) {
        free(r);
        return RAFT_EINVAL;
    }
    r->pre_vote = cfg->pre_vote;
    r->check_quorum = cfg->check_quorum;
    r->max_inflight = cfg->max_inflight_msgs ? cfg->max_inflight_msgs : 256;
    r->max_size = cfg->max_size_per_msg ? cfg->max_size_per_msg : (1u << 20);
    r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
    log_init(&r->log);

    int rc = RAFT_EINVAL;
    const struct raft_restore *rs = cfg->restore;
    if (rs) {
        const struct raft_hard_state *hs = &rs->hard_state;
        if (rs->applied < rs->log_start || rs->conf.n_voters > RAFT_MAX_MEMBERS ||
            rs->conf.n_learners > RAFT_MAX_MEMBERS)
            goto fail;
        log_reset(&r->log, rs->log_start, rs->log_start_term);
        for (size_t i = 0; i < rs->n_entries; i++) {
            if (rs->entries[i].index != log_last(&r->log) + 1)
                goto fail;
            rc = log_append_entry(&r->log, &rs->entries[i], false);
            if (rc)
                goto fail;
            rc = RAFT_EINVAL;
        }
        r->log.stable = log_last(&r->log);
        if (hs->commit > log_last(&r->log) || rs->applied > hs->commit ||
            hs->commit < rs->log_start)
            goto fail;
        r->log.commit = hs->commit;
        r->log.applied = rs->applied;
        r->term = hs->term;
        r->vote = hs->vote;
        r->conf = rs->conf;
    } else {
        rc = conf_from_lists(&r->conf, cfg->voters, cfg->n_voters, cfg->learners,
                             cfg->n_learners);
        if (rc)
            goto fail;
        r->conf_dirty = true;
    }
    rc = pr_sync_conf(r);
    if (rc)
        goto fail;
    become_follower(r, r->term, RAFT_NONE);
    raft_hard_state(r, &r->prev_hs);
    r->prev_ss.leader = RAFT_NONE;
    r->prev_ss.role = RAFT_FOLLOWER;
    *out = r;
    return 0;
fail:
    raft_free(r);
    return rc;
}

void raft_free(struct raft *r)
{
    if (!r)
        return;
    msgvec_clear(&r->msgs);
    msgvec_clear(&r->msgs_after);
    msgvec_clear(&r->rd_msgs);
    msgvec_clear(&r->rd_after);
    free(r->msgs.v);
    free(r->msgs_after.v);
    free(r->rd_msgs.v);
    free(r->rd_after.v);
    free(r->reads_pending);
    free(r->reads_out);
    free(r->rd_reads);
    for (size_t i = 0; i < r->n_prs; i++)
        free(r->prs[i].infl);
    log_free(&r->log);
    free(r);
}

int raft_tick(struct raft *r)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    r->election_elapsed++;
    if (r->role != RAFT_LEADER) {
        if (promotable(r) && r->election_elapsed >= r->randomized_timeout)
            campaign(r, r->pre_vote, 0);
        return 0;
    }
    r->heartbeat_elapsed++;
    if (r->election_elapsed >= r->election_timeout) {
        r->election_elapsed = 0;
        /* Check-quorum (§6.2): a leader that has not heard from a majority within an
         * election timeout steps down, so clients find the real leader. */
        if (r->check_quorum) {
            size_t active = 0;
            for (size_t i = 0; i < r->n_prs; i++) {
                struct progress *p = &r->prs[i];
                if (!p->learner && (p->id == r->id || p->recent_active))
                    active++;
                if (p->id != r->id)
                    p->recent_active = false;
            }
            if (active < quorum(r)) {
                become_follower(r, r->term, RAFT_NONE);
                return 0;
            }
        }
        r->transferee = RAFT_NONE; /* a transfer not done in an election timeout fails */
    }
    if (r->heartbeat_elapsed >= r->heartbeat_timeout) {
        r->heartbeat_elapsed = 0;
        bcast_heartbeat(r);
    }
    return 0;
}

static bool valid_msg(const struct raft_msg *m)
{
    if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TRANSFER_LEADER)
        return false;
    if (m->from == RAFT_NONE || m->term == 0)
        return false;
    if (m->type == RAFT_MSG_SNAPSHOT && !m->snapshot)
        return false;
    if (m->n_entries && !m->entries)
        return false;
    for (size_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].index != m->index + 1 + i || (m->entries[i].len && !m->entries[i].data))
            return false;
    if (m->context.len > RAFT_MAX_CTX || (m->context.len && !m->context.base))
        return false;
    return true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (!m || !valid_msg(m))
        return RAFT_EINVAL;
    if (m->to != RAFT_NONE && m->to != r->id)
        return 0;

    /* Term rules (Figure 2 "all servers"; §9.6 pre-vote; §4.2.3 disruptive servers). */
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
            if (in_lease(r, m))
                return 0;
        }
        if (m->type == RAFT_MSG_PREVOTE) {
            /* no term change for a pre-vote */
        } else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
            /* granted pre-votes carry the term we would campaign in */
        } else if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                   m->type == RAFT_MSG_SNAPSHOT) {
            become_follower(r, m->term, m->from);
        } else {
            become_follower(r, m->term, RAFT_NONE);
        }
    } else if (m->term < r->term) {
        if ((r->check_quorum || r->pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* Tell a deposed leader about the new term, or it would never learn it
             * while our lease check ignores its votes. */
            struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
            return send_msg(r, &resp, false);
        }
        if (m->type == RAFT_MSG_PREVOTE) {
            struct raft_msg resp = {.type = RAFT_MSG_PREVOTE_RESP, .to = m->from,
                                    .reject = true};
            return send_msg(r, &resp, false);
        }
        return 0; /* stale */
    }

    switch (m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        return step_vote(r, m);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        step_vote_resp(r, m);
        return 0;
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAPSHOT:
        if (r->role == RAFT_LEADER)
            return 0; /* impossible: one leader per term (§5.2) */
        if (r->role != RAFT_FOLLOWER)
            become_follower(r, r->term, m->from);
        r->leader = m->from;
        r->leader_lost = false;
        r->election_elapsed = 0;
        if (m->type == RAFT_MSG_APPEND)
            return handle_append(r, m);
        if (m->type == RAFT_MSG_SNAPSHOT)
            return handle_snapshot(r, m);
        handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_APPEND_RESP:
        if (r->role == RAFT_LEADER)
            handle_append_resp(r, m);
        return 0;
    case RAFT_MSG_HEARTBEAT_RESP:
        if (r->role == RAFT_LEADER)
            handle_heartbeat_resp(r, m);
        return 0;
    case RAFT_MSG_TIMEOUT_NOW:
        /* Leader transfer (§3.10): campaign at once, skipping pre-vote, with a flag
         * that lets peers grant despite hearing the old leader. */
        if (r->role == RAFT_FOLLOWER && promotable(r) && m->from == r->leader)
            campaign(r, false, RAFT_MSG_F_TRANSFER);
        return 0;
    case RAFT_MSG_READ_INDEX:
        if (r->role == RAFT_LEADER)
            return read_request(r, m->from, m->context.base, m->context.len);
        return 0;
    case RAFT_MSG_READ_INDEX_RESP:
        if (r->role == RAFT_FOLLOWER && !m->reject)
            return add_read_state(r, m->index, m->context.base, m->context.len);
        return 0;
    case RAFT_MSG_TRANSFER_LEADER:
        if (r->role == RAFT_LEADER)
            return transfer_request(r, (raft_id_t)m->index);
        return 0;
    }
    return 0;
}

int raft_propose(struct raft *r, const struct raft_buf *data, size_t n,
                 raft_index_t *first_index)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->transferee != RAFT_NONE)
        return RAFT_EBUSY;
    if (n == 0 || !data)
        return RAFT_EINVAL;
    raft_index_t first = log_last(&r->log) + 1;
    for (size_t i = 0; i < n; i++) {
        int rc = append_local(r, RAFT_ENTRY_NORMAL, data[i].base, data[i].len);
        if (rc) {
            if (i)
                break; /* the ones appended stay; report success for them */
            return rc;
        }
    }
    if (first_index)
        *first_index = first;
    bcast_append(r);
    return 0;
}

int raft_leader_conn_lost(struct raft *r, raft_id_t from)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (r->role != RAFT_FOLLOWER || from == RAFT_NONE || from != r->leader ||
        !r->pre_vote || !promotable(r))
        return 0;
    r->leader_lost = true;
    campaign(r, true, RAFT_MSG_F_LEADER_LOST);
    return 0;
}

int raft_report_unreachable(struct raft *r, raft_id_t to)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    struct progress *pr = pr_get(r, to);
    if (r->role == RAFT_LEADER && pr && pr->state == RAFT_PROGRESS_REPLICATE)
        pr_become_probe(r, pr);
    return 0;
}

int raft_report_snapshot(struct raft *r, raft_id_t to, bool ok)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    struct progress *pr = pr_get(r, to);
    if (r->role != RAFT_LEADER || !pr || pr->state != RAFT_PROGRESS_SNAPSHOT)
        return 0;
    if (!ok)
        pr->pending_snapshot = 0;
    /* Either way wait for the follower's answer (or the next heartbeat) before
     * sending again. */
    pr_become_probe(r, pr);
    pr->probe_sent = true;
    return 0;
}

int raft_compact(struct raft *r, raft_index_t index)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (index > r->log.applied)
        return RAFT_EUNAVAILABLE;
    log_compact(&r->log, index);
    return 0;
}

/* ---- queries ---- */

raft_id_t raft_id(const struct raft *r) { return r->id; }
enum raft_role raft_role(const struct raft *r) { return r->role; }
raft_id_t raft_leader(const struct raft *r) { return r->leader; }
raft_term_t raft_term(const struct raft *r) { return r->term; }
raft_index_t raft_commit_index(const struct raft *r) { return r->log.commit; }
raft_index_t raft_applied_index(const struct raft *r) { return r->log.applied; }
raft_index_t raft_last_index(const struct raft *r) { return log_last(&r->log); }
raft_index_t raft_first_index(const struct raft *r) { return r->log.start + 1; }

int raft_term_at(const struct raft *r, raft_index_t index, raft_term_t *term)
{
    bool ok;
    raft_term_t t = log_term(&r->log, index, &ok);
    if (!ok)
        return index < r->log.start ? RAFT_ECOMPACTED : RAFT_EUNAVAILABLE;
    *term = t;
    return 0;
}

void raft_hard_state(const struct raft *r, struct raft_hard_state *out)
{
    out->term = r->term;
    out->vote = r->vote;
    out->commit = r->log.commit;
}

void raft_conf_state(const struct raft *r, struct raft_conf_state *out)
{
    *out = r->conf;
}

int raft_progress(const struct raft *r, raft_id_t id, struct raft_progress *out)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    const struct progress *pr = pr_get((struct raft *)r, id);
    if (!pr)
        return RAFT_EINVAL;
    out->match = pr->match;
    out->next = pr->next;
    out->state = pr->state;
    out->learner = pr->learner;
    out->recent_active = pr->recent_active;
    return 0;
}

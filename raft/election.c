/* election.c — campaigns, pre-vote, vote granting, the leader-lost hint and leader
 * transfer (Figure 2 RequestVote; §5.2, §5.4.1; dissertation §3.10, §4.2.3, §9.6). */
#include "raft/raft_int.h"

/* Whether a (pre)vote at a higher term must be ignored because we still believe in a
 * live leader (dissertation §4.2.3: "if a server receives a RequestVote request within
 * the minimum election timeout of hearing from a current leader, it does not update
 * its term or grant its vote"). A TimeoutNow campaign overrides it (§3.10). A campaign
 * started because the candidate lost its connection to the leader passes only if we
 * have lost the leader too: we got the same report, or we have not heard from it for
 * half an election timeout. */
bool in_lease(const struct raft *r, const struct raft_msg *m)
{
    if (!r->check_quorum && !r->pre_vote)
        return false;
    if (m->flags & RAFT_MSG_F_TRANSFER)
        return false;
    if (r->role == RAFT_LEADER)
        return true;
    if (r->leader == RAFT_NONE || r->election_elapsed >= r->election_timeout)
        return false;
    if ((m->flags & RAFT_MSG_F_LEADER_LOST) &&
        (r->leader_lost || 2 * r->election_elapsed >= r->election_timeout))
        return false;
    return true;
}

static size_t tally(struct raft *r, bool granted)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        if (!p->learner && p->vote_known && p->vote_granted == granted)
            n++;
    }
    return n;
}

static void record_vote(struct raft *r, raft_id_t id, bool granted)
{
    struct progress *p = pr_get(r, id);
    if (p && !p->vote_known) {
        p->vote_known = true;
        p->vote_granted = granted;
    }
}

/* Starts a pre-vote (§9.6: ask whether we could win before disturbing anyone's term)
 * or a real election (§5.2: increment term, vote for self, request votes). */
void campaign(struct raft *r, bool pre, uint32_t flags)
{
    if (!promotable(r))
        return;
    raft_term_t term;
    enum raft_msg_type type;
    if (pre) {
        raft_term_t keep = r->term;
        become_follower(r, r->term, RAFT_NONE);
        r->role = RAFT_PRE_CANDIDATE;
        term = keep + 1;
        type = RAFT_MSG_PREVOTE;
    } else {
        become_follower(r, r->term + 1, RAFT_NONE);
        r->role = RAFT_CANDIDATE;
        r->vote = r->id;
        term = r->term;
        type = RAFT_MSG_VOTE;
    }
    r->campaign_flags = flags;
    record_vote(r, r->id, true);
    if (tally(r, true) >= quorum(r)) {
        /* a single voter wins at once */
        if (pre)
            campaign(r, false, flags);
        else
            become_leader(r);
        return;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        if (p->learner || p->id == r->id)
            continue;
        struct raft_msg m = {
            .type = type, .to = p->id, .term = term, .index = log_last(&r->log),
            .log_term = log_last_term(&r->log), .flags = flags,
        };
        /* A vote request announces a term and a self-vote that must be durable
         * first; a pre-vote changes nothing. */
        send_msg(r, &m, !pre);
    }
}

/* RequestVote receiver (Figure 2; §5.4.1 election restriction). */
int step_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->leader == RAFT_NONE) ||
                    (pre && m->term > r->term);
    raft_index_t last = log_last(&r->log);
    raft_term_t last_term = log_last_term(&r->log);
    bool up_to_date = m->log_term > last_term || (m->log_term == last_term && m->index >= last);
    struct raft_msg resp = {.type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP,
                            .to = m->from};
    if (pre && r->role == RAFT_PRE_CANDIDATE && (r->campaign_flags & RAFT_MSG_F_LEADER_LOST) &&
        (m->flags & RAFT_MSG_F_LEADER_LOST)) {
        /* Every follower of a crashed leader hears of it at once and pre-votes at once;
         * without timers to break the tie they would split the vote. The better log
         * (then the lower id) goes on, the other yields. Refusing or yielding a
         * pre-vote is always safe. */
        bool equal = m->log_term == last_term && m->index == last;
        if (!up_to_date || (equal && m->from > r->id)) {
            resp.reject = true;
            return send_msg(r, &resp, false);
        }
        become_follower(r, r->term, RAFT_NONE);
    }
    if (can_vote && up_to_date) {
        /* A granted pre-vote answers in the term asked about, so the candidate can
         * tell it from a stale answer. */
        resp.term = m->term;
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        resp.reject = true;
    }
    /* The vote must be on disk before the candidate learns of it (Figure 2). */
    return send_msg(r, &resp, !pre);
}

void step_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
    if (pre ? r->role != RAFT_PRE_CANDIDATE : r->role != RAFT_CANDIDATE)
        return;
    if (!pre && m->term != r->term)
        return;
    record_vote(r, m->from, !m->reject);
    if (tally(r, true) >= quorum(r)) {
        if (pre)
            campaign(r, false, r->campaign_flags);
        else
            become_leader(r);
    } else if (tally(r, false) >= quorum(r)) {
        become_follower(r, r->term, RAFT_NONE);
    }
}

/* Sends TimeoutNow once the transferee has the whole log (§3.10). */
void transfer_check(struct raft *r, struct progress *pr)
{
    if (r->transferee == pr->id && pr->match == log_last(&r->log)) {
        struct raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = pr->id};
        send_msg(r, &m, false);
    }
}

int transfer_request(struct raft *r, raft_id_t to)
{
    if (to == r->id || !is_voter(r, to))
        return RAFT_EINVAL;
    if (r->transferee == to)
        return 0;
    r->transferee = to;
    r->election_elapsed = 0; /* the transfer must finish within an election timeout */
    struct progress *pr = pr_get(r, to);
    if (pr->match == log_last(&r->log)) {
        transfer_check(r, pr);
    } else {
        /* Catch it up from its match now rather than trusting the pipeline, which
         * may have lost appends: the transfer has an election timeout to finish. */
        if (pr->state == RAFT_PROGRESS_REPLICATE)
            pr_become_probe(r, pr);
        send_append(r, pr, false);
    }
    return 0;
}

int raft_transfer_leader(struct raft *r, raft_id_t to)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (r->role == RAFT_LEADER)
        return transfer_request(r, to);
    if (r->leader == RAFT_NONE)
        return RAFT_ENOLEADER;
    if (to == RAFT_NONE)
        return RAFT_EINVAL;
    struct raft_msg m = {.type = RAFT_MSG_TRANSFER_LEADER, .to = r->leader, .index = to};
    return send_msg(r, &m, false);
}

/* progress.c — the leader's view of each member (match/next) and append flow control:
 * probe, pipelined replicate with a bounded window of in-flight appends, snapshot. */
#include "raft/raft_int.h"

bool is_voter(const struct raft *r, raft_id_t id)
{
    for (size_t i = 0; i < r->conf.n_voters; i++)
        if (r->conf.voters[i] == id)
            return true;
    return false;
}

bool is_member(const struct raft *r, raft_id_t id)
{
    if (is_voter(r, id))
        return true;
    for (size_t i = 0; i < r->conf.n_learners; i++)
        if (r->conf.learners[i] == id)
            return true;
    return false;
}

/* Majority of voters (§5.2). */
size_t quorum(const struct raft *r)
{
    return r->conf.n_voters / 2 + 1;
}

struct progress *pr_get(struct raft *r, raft_id_t id)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static void infl_reset(struct progress *pr)
{
    pr->infl_start = 0;
    pr->infl_count = 0;
}

void pr_become_probe(struct raft *r, struct progress *pr)
{
    /* After a snapshot, resume right after it (or after match if that is further). */
    if (pr->state == RAFT_PROGRESS_SNAPSHOT) {
        raft_index_t ps = pr->pending_snapshot;
        pr->next = (pr->match > ps ? pr->match : ps) + 1;
    } else {
        pr->next = pr->match + 1;
    }
    (void)r;
    pr->state = RAFT_PROGRESS_PROBE;
    pr->probe_sent = false;
    pr->pending_snapshot = 0;
    infl_reset(pr);
}

void pr_become_replicate(struct raft *r, struct progress *pr)
{
    (void)r;
    pr->state = RAFT_PROGRESS_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    infl_reset(pr);
}

void pr_become_snapshot(struct progress *pr)
{
    pr->state = RAFT_PROGRESS_SNAPSHOT;
    pr->probe_sent = false;
    pr->pending_snapshot = 0; /* set when the ready batch fixes the snapshot index */
    infl_reset(pr);
}

bool pr_paused(const struct raft *r, const struct progress *pr)
{
    switch (pr->state) {
    case RAFT_PROGRESS_PROBE:
        return pr->probe_sent;
    case RAFT_PROGRESS_REPLICATE:
        return pr->infl_count >= r->max_inflight;
    default:
        return true;
    }
}

void pr_infl_add(struct raft *r, struct progress *pr, raft_index_t last)
{
    assert(pr->infl_count < r->max_inflight);
    pr->infl[(pr->infl_start + pr->infl_count) % r->max_inflight] = last;
    pr->infl_count++;
}

/* Frees the window slots of appends ending at or below idx (acknowledged). */
void pr_infl_free_to(struct raft *r, struct progress *pr, raft_index_t idx)
{
    while (pr->infl_count && pr->infl[pr->infl_start] <= idx) {
        pr->infl_start = (pr->infl_start + 1) % r->max_inflight;
        pr->infl_count--;
    }
}

/* Keeps r->prs in step with r->conf: new members start probing at the leader's last
 * index + 1, departed members are dropped. */
int pr_sync_conf(struct raft *r)
{
    struct progress old[RAFT_MAX_MEMBERS];
    size_t n_old = r->n_prs;
    memcpy(old, r->prs, sizeof(old));
    r->n_prs = 0;
    raft_index_t last = log_last(&r->log);
    for (int pass = 0; pass < 2; pass++) {
        const raft_id_t *ids = pass ? r->conf.learners : r->conf.voters;
        size_t n = pass ? r->conf.n_learners : r->conf.n_voters;
        for (size_t i = 0; i < n; i++) {
            struct progress *p = &r->prs[r->n_prs++];
            struct progress *o = NULL;
            for (size_t j = 0; j < n_old; j++)
                if (old[j].id == ids[i]) {
                    o = &old[j];
                    break;
                }
            if (o) {
                *p = *o;
                o->id = RAFT_NONE; /* taken */
            } else {
                memset(p, 0, sizeof(*p));
                p->id = ids[i];
                p->next = last + 1;
                p->state = RAFT_PROGRESS_PROBE;
                p->recent_active = true;
                p->infl = calloc(r->max_inflight, sizeof(raft_index_t));
                if (!p->infl) {
                    r->n_prs--;
                    return RAFT_ENOMEM;
                }
                if (ids[i] == r->id)
                    p->match = r->log.stable;
            }
            p->learner = pass == 1;
        }
    }
    for (size_t j = 0; j < n_old; j++)
        if (old[j].id != RAFT_NONE)
            free(old[j].infl);
    return 0;
}

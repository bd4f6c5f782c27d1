/* readindex.c — linearizable reads without log writes (dissertation §6.4 ReadIndex):
 * the leader records its commit index, confirms it is still leader with one heartbeat
 * round acknowledged by a majority, then the read may be served once applied. */
#include "raft/raft_int.h"

void reads_reset(struct raft *r)
{
    r->n_reads_pending = 0; /* the requesters time out and retry */
}

int add_read_state(struct raft *r, raft_index_t index, const void *ctx, size_t len)
{
    if (r->n_reads_out == r->cap_reads_out) {
        size_t cap = r->cap_reads_out ? r->cap_reads_out * 2 : 8;
        struct readstate *v = realloc(r->reads_out, cap * sizeof(*v));
        if (!v)
            return RAFT_ENOMEM;
        r->reads_out = v;
        r->cap_reads_out = cap;
    }
    struct readstate *s = &r->reads_out[r->n_reads_out++];
    s->index = index;
    s->len = len;
    if (len)
        memcpy(s->ctx, ctx, len);
    return 0;
}

static bool committed_in_term(const struct raft *r)
{
    bool ok;
    return log_term(&r->log, r->log.commit, &ok) == r->term && ok;
}

static int release(struct raft *r, const struct pending_read *p)
{
    if (p->from == r->id)
        return add_read_state(r, p->index, p->ctx, p->len);
    struct raft_msg m = {.type = RAFT_MSG_READ_INDEX_RESP, .to = p->from, .index = p->index,
                         .context = {p->ctx, p->len}};
    return send_msg(r, &m, false);
}

int read_request(struct raft *r, raft_id_t from, const void *ctx, size_t len)
{
    if (len > RAFT_MAX_CTX)
        return RAFT_ETOOBIG;
    /* With a single voter there is nobody to confirm with. */
    if (quorum(r) == 1 && is_voter(r, r->id) && committed_in_term(r)) {
        struct pending_read p = {.index = r->log.commit, .from = from, .len = len};
        if (len)
            memcpy(p.ctx, ctx, len);
        return release(r, &p);
    }
    if (r->n_reads_pending == r->cap_reads_pending) {
        size_t cap = r->cap_reads_pending ? r->cap_reads_pending * 2 : 8;
        struct pending_read *v = realloc(r->reads_pending, cap * sizeof(*v));
        if (!v)
            return RAFT_ENOMEM;
        r->reads_pending = v;
        r->cap_reads_pending = cap;
    }
    struct pending_read *p = &r->reads_pending[r->n_reads_pending++];
    p->from = from;
    p->len = len;
    if (len)
        memcpy(p->ctx, ctx, len);
    /* Until the leader commits an entry of its term its commit index may be behind
     * (§6.4 step 1): park the request, seq 0 marks it as waiting. */
    p->seq = 0;
    p->index = 0;
    if (committed_in_term(r)) {
        p->index = r->log.commit;
        p->seq = ++r->read_seq;
        bcast_heartbeat(r);
    }
    return 0;
}

/* Called when the commit index moves: parked requests get their index now. */
void reads_on_commit(struct raft *r)
{
    if (!r->n_reads_pending || !committed_in_term(r))
        return;
    bool any = false;
    for (size_t i = 0; i < r->n_reads_pending; i++) {
        struct pending_read *p = &r->reads_pending[i];
        if (p->seq == 0) {
            p->index = r->log.commit;
            p->seq = r->read_seq + 1;
            any = true;
        }
    }
    if (any) {
        r->read_seq++;
        bcast_heartbeat(r);
        if (quorum(r) == 1)
            read_acked(r);
    }
}

/* Releases, in order, every request whose heartbeat round a majority acknowledged. */
void read_acked(struct raft *r)
{
    size_t done = 0;
    for (; done < r->n_reads_pending; done++) {
        struct pending_read *p = &r->reads_pending[done];
        if (p->seq == 0)
            break;
        size_t acks = 0;
        for (size_t i = 0; i < r->n_prs; i++) {
            struct progress *pr = &r->prs[i];
            if (!pr->learner && (pr->id == r->id || pr->read_ack >= p->seq))
                acks++;
        }
        if (acks < quorum(r))
            break;
        release(r, p);
    }
    if (done) {
        memmove(r->reads_pending, r->reads_pending + done,
                (r->n_reads_pending - done) * sizeof(*r->reads_pending));
        r->n_reads_pending -= done;
    }
}

int raft_read_index(struct raft *r, struct raft_buf ctx)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (ctx.len > RAFT_MAX_CTX)
        return RAFT_ETOOBIG;
    if (ctx.len && !ctx.base)
        return RAFT_EINVAL;
    if (r->role == RAFT_LEADER)
        return read_request(r, r->id, ctx.base, ctx.len);
    if (r->leader == RAFT_NONE)
        return RAFT_ENOLEADER;
    struct raft_msg m = {.type = RAFT_MSG_READ_INDEX, .to = r->leader, .context = ctx};
    return send_msg(r, &m, false);
}

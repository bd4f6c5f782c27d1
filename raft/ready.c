/* ready.c — the outbox and the ready/advance handshake: what to persist, apply and
 * send, released in the order the durability contract requires. */
#include "raft/raft_int.h"

static void msg_release(struct raft_msg *m)
{
    for (size_t i = 0; i < m->n_entries; i++)
        entry_unref(&m->entries[i]);
    free((void *)m->entries);
    free((void *)m->context.base);
    free((void *)m->snapshot);
}

void msgvec_clear(struct msgvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        msg_release(&v->v[i]);
    v->n = 0;
}

int send_msg(struct raft *r, const struct raft_msg *src, bool after)
{
    struct msgvec *v = after ? &r->msgs_after : &r->msgs;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct raft_msg *nv = realloc(v->v, cap * sizeof(*nv));
        if (!nv)
            return RAFT_ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    struct raft_msg m = *src;
    m.from = r->id;
    if (m.term == 0)
        m.term = r->term;
    m.entries = NULL;
    m.context.base = NULL;
    m.snapshot = NULL;
    if (src->n_entries) {
        struct raft_entry *e = malloc(src->n_entries * sizeof(*e));
        if (!e)
            return RAFT_ENOMEM;
        memcpy(e, src->entries, src->n_entries * sizeof(*e));
        for (size_t i = 0; i < src->n_entries; i++)
            entry_ref(&e[i]);
        m.entries = e;
    }
    if (src->context.len) {
        void *c = malloc(src->context.len);
        if (!c)
            goto nomem;
        memcpy(c, src->context.base, src->context.len);
        m.context.base = c;
    }
    if (src->snapshot) {
        struct raft_snapshot_meta *s = malloc(sizeof(*s));
        if (!s)
            goto nomem;
        *s = *src->snapshot;
        m.snapshot = s;
    }
    v->v[v->n++] = m;
    return 0;
nomem:
    msg_release(&m);
    return RAFT_ENOMEM;
}

static bool reads_releasable(const struct raft *r)
{
    for (size_t i = 0; i < r->n_reads_out; i++)
        if (r->reads_out[i].index <= r->log.commit)
            return true;
    return false;
}

bool raft_has_ready(const struct raft *r)
{
    if (r->in_ready)
        return false;
    struct raft_hard_state hs;
    raft_hard_state(r, &hs);
    return r->leader != r->prev_ss.leader || r->role != r->prev_ss.role ||
           hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
           hs.commit != r->prev_hs.commit || r->snapshot_pending ||
           r->log.stable < log_last(&r->log) || r->log.applied < r->log.commit ||
           r->msgs.n || r->msgs_after.n || r->conf_dirty || reads_releasable(r);
}

int raft_ready_get(struct raft *r, struct raft_ready *rd)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    memset(rd, 0, sizeof(*rd));
    struct rlog *l = &r->log;

    /* Committed entries are handed out now; conf changes take effect at this point on
     * every member (the same log position everywhere). */
    raft_index_t upto = l->commit;
    if (upto > l->applied) {
        rd->committed = log_get(l, l->applied + 1);
        rd->n_committed = (size_t)(upto - l->applied);
        for (size_t i = 0; i < rd->n_committed; i++)
            if (rd->committed[i].type == RAFT_ENTRY_CONF_CHANGE) {
                int rc = conf_apply(r, &rd->committed[i], &rd->conf_state_changed);
                if (rc)
                    return rc;
            }
        l->applied = upto;
    }
    if (r->snapshot_pending) {
        rd->snapshot = &r->snapshot;
        rd->conf_state_changed = true;
        r->snapshot_pending = false;
    }
    if (r->conf_dirty) {
        rd->conf_state_changed = true;
        r->conf_dirty = false;
    }
    rd->conf_state = r->conf;

    /* Snapshots sent now describe the state after this batch is applied. */
    for (size_t i = 0; i < r->msgs.n; i++) {
        struct raft_msg *m = &r->msgs.v[i];
        if (m->type != RAFT_MSG_SNAPSHOT)
            continue;
        struct raft_snapshot_meta *s = (struct raft_snapshot_meta *)m->snapshot;
        bool ok;
        s->index = l->applied;
        s->term = log_term(l, l->applied, &ok);
        s->conf = r->conf;
        struct progress *pr = pr_get(r, m->to);
        if (pr && pr->state == RAFT_PROGRESS_SNAPSHOT)
            pr->pending_snapshot = s->index;
    }

    raft_hard_state(r, &rd->hard_state);
    rd->hard_state_changed = memcmp(&rd->hard_state, &r->prev_hs, sizeof(rd->hard_state)) != 0;
    r->prev_hs = rd->hard_state;
    rd->soft_state.leader = r->leader;
    rd->soft_state.role = r->role;
    rd->soft_state_changed = r->leader != r->prev_ss.leader || r->role != r->prev_ss.role;
    r->prev_ss = rd->soft_state;

    if (l->stable < log_last(l)) {
        rd->entries = log_get(l, l->stable + 1);
        rd->n_entries = (size_t)(log_last(l) - l->stable);
    }
    r->rd_last = log_last(l);

    struct msgvec t = r->rd_msgs;
    r->rd_msgs = r->msgs;
    r->msgs = t;
    t = r->rd_after;
    r->rd_after = r->msgs_after;
    r->msgs_after = t;
    rd->msgs = r->rd_msgs.v;
    rd->n_msgs = r->rd_msgs.n;
    rd->msgs_after_persist = r->rd_after.v;
    rd->n_msgs_after_persist = r->rd_after.n;

    /* Reads whose index is applied once this batch is. */
    size_t k = 0, n = 0;
    for (size_t i = 0; i < r->n_reads_out; i++)
        if (r->reads_out[i].index <= l->applied)
            n++;
    if (n) {
        free(r->rd_reads);
        r->rd_reads = malloc(n * sizeof(*r->rd_reads) + n * sizeof(struct readstate));
        if (!r->rd_reads)
            return RAFT_ENOMEM;
        struct readstate *keep = (struct readstate *)(r->rd_reads + n);
        size_t j = 0;
        for (size_t i = 0; i < r->n_reads_out; i++) {
            struct readstate *s = &r->reads_out[i];
            if (s->index <= l->applied) {
                keep[j] = *s;
                r->rd_reads[j].index = s->index;
                r->rd_reads[j].ctx.base = keep[j].ctx;
                r->rd_reads[j].ctx.len = s->len;
                j++;
            } else {
                r->reads_out[k++] = *s;
            }
        }
        r->n_reads_out = k;
        rd->reads = r->rd_reads;
        rd->n_reads = n;
    }
    r->n_rd_reads = n;
    r->in_ready = true;
    return 0;
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    (void)rd;
    if (!r->in_ready)
        return;
    r->in_ready = false;
    if (r->rd_last > r->log.stable && r->rd_last <= log_last(&r->log))
        r->log.stable = r->rd_last;
    msgvec_clear(&r->rd_msgs);
    msgvec_clear(&r->rd_after);
    free(r->rd_reads);
    r->rd_reads = NULL;
    r->n_rd_reads = 0;
    self_persisted(r);
}

struct raft_msg *raft_msg_clone(const struct raft_msg *m)
{
    size_t sz = sizeof(*m) + m->n_entries * sizeof(struct raft_entry) + m->context.len +
                (m->snapshot ? sizeof(*m->snapshot) : 0);
    for (size_t i = 0; i < m->n_entries; i++)
        sz += m->entries[i].len;
    struct raft_msg *c = malloc(sz + 16);
    if (!c)
        return NULL;
    *c = *m;
    unsigned char *p = (unsigned char *)(c + 1);
    if (m->snapshot) {
        memcpy(p, m->snapshot, sizeof(*m->snapshot));
        c->snapshot = (struct raft_snapshot_meta *)p;
        p += sizeof(*m->snapshot);
    }
    if (m->n_entries) {
        struct raft_entry *e = (struct raft_entry *)p;
        memcpy(e, m->entries, m->n_entries * sizeof(*e));
        c->entries = e;
        p += m->n_entries * sizeof(*e);
        for (size_t i = 0; i < m->n_entries; i++) {
            if (e[i].len) {
                memcpy(p, m->entries[i].data, e[i].len);
                e[i].data = p;
                p += e[i].len;
            } else {
                e[i].data = NULL;
            }
        }
    } else {
        c->entries = NULL;
    }
    if (m->context.len) {
        memcpy(p, m->context.base, m->context.len);
        c->context.base = p;
    } else {
        c->context.base = NULL;
    }
    return c;
}

void raft_msg_free(struct raft_msg *m)
{
    free(m);
}

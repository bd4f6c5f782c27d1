/* membership.c — single-server membership changes and learners (dissertation §4.1,
 * §4.2.1): the conf change entry format, proposal checks and applying a change. */
#include "raft/raft_int.h"

#define CC_HDR 9 /* type (1) + node id (8, little-endian) */

int raft_conf_change_decode(const void *data, size_t len, struct raft_conf_change *out)
{
    const unsigned char *p = data;
    if (!data || len < CC_HDR || p[0] > RAFT_CC_REMOVE)
        return RAFT_EINVAL;
    out->type = (enum raft_conf_change_type)p[0];
    out->node = 0;
    for (int i = 0; i < 8; i++)
        out->node |= (raft_id_t)p[1 + i] << (8 * i);
    out->context.base = len > CC_HDR ? p + CC_HDR : NULL;
    out->context.len = len - CC_HDR;
    return out->node == RAFT_NONE ? RAFT_EINVAL : 0;
}

static bool id_in(const raft_id_t *v, size_t n, raft_id_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static void id_del(raft_id_t *v, size_t *n, raft_id_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i] == id) {
            v[i] = v[--*n];
            return;
        }
}

int conf_from_lists(struct raft_conf_state *c, const raft_id_t *v, size_t nv,
                    const raft_id_t *l, size_t nl)
{
    memset(c, 0, sizeof(*c));
    if (nv + nl > RAFT_MAX_MEMBERS || (nv && !v) || (nl && !l))
        return RAFT_EINVAL;
    for (size_t i = 0; i < nv; i++) {
        if (v[i] == RAFT_NONE || id_in(c->voters, c->n_voters, v[i]))
            return RAFT_EINVAL;
        c->voters[c->n_voters++] = v[i];
    }
    for (size_t i = 0; i < nl; i++) {
        if (l[i] == RAFT_NONE || id_in(c->voters, c->n_voters, l[i]) ||
            id_in(c->learners, c->n_learners, l[i]))
            return RAFT_EINVAL;
        c->learners[c->n_learners++] = l[i];
    }
    return 0;
}

/* Applies cc to c; returns 0 or RAFT_EINVAL / RAFT_ETOOBIG without changing c. */
static int conf_change(struct raft_conf_state *c, const struct raft_conf_change *cc)
{
    bool voter = id_in(c->voters, c->n_voters, cc->node);
    bool learner = id_in(c->learners, c->n_learners, cc->node);
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER:
        if (voter || learner)
            return RAFT_EINVAL;
        if (c->n_voters + c->n_learners >= RAFT_MAX_MEMBERS)
            return RAFT_ETOOBIG;
        if (cc->type == RAFT_CC_ADD_VOTER)
            c->voters[c->n_voters++] = cc->node;
        else
            c->learners[c->n_learners++] = cc->node;
        return 0;
    case RAFT_CC_PROMOTE:
        if (!learner)
            return RAFT_EINVAL;
        id_del(c->learners, &c->n_learners, cc->node);
        c->voters[c->n_voters++] = cc->node;
        return 0;
    case RAFT_CC_REMOVE:
        if (!voter && !learner)
            return RAFT_EINVAL;
        if (voter && c->n_voters == 1)
            return RAFT_EINVAL; /* a cluster never loses its last voter */
        id_del(c->voters, &c->n_voters, cc->node);
        id_del(c->learners, &c->n_learners, cc->node);
        return 0;
    }
    return RAFT_EINVAL;
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             raft_index_t *index)
{
    if (r->in_ready)
        return RAFT_EBUSY;
    if (!cc || cc->node == RAFT_NONE || (cc->context.len && !cc->context.base))
        return RAFT_EINVAL;
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    /* One change at a time, and only after the leader's start-of-term entry is applied
     * (§4.1, §4.1.3): the log holds no unapplied change, so r->conf is current. */
    if (r->transferee != RAFT_NONE || r->pending_conf_index > r->log.applied)
        return RAFT_EBUSY;
    struct raft_conf_state c = r->conf;
    int rc = conf_change(&c, cc);
    if (rc)
        return rc;
    size_t len = CC_HDR + cc->context.len;
    unsigned char *buf = malloc(len);
    if (!buf)
        return RAFT_ENOMEM;
    buf[0] = (unsigned char)cc->type;
    for (int i = 0; i < 8; i++)
        buf[1 + i] = (unsigned char)(cc->node >> (8 * i));
    if (cc->context.len)
        memcpy(buf + CC_HDR, cc->context.base, cc->context.len);
    rc = append_local(r, RAFT_ENTRY_CONF_CHANGE, buf, len);
    free(buf);
    if (rc)
        return rc;
    r->pending_conf_index = log_last(&r->log);
    if (index)
        *index = r->pending_conf_index;
    bcast_append(r);
    return 0;
}

/* Applies a committed conf change entry (called when it is handed out, so every member
 * switches at the same log position). Invalid changes are skipped. */
int conf_apply(struct raft *r, const struct raft_entry *e, bool *changed)
{
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc))
        return 0;
    struct raft_conf_state c = r->conf;
    if (conf_change(&c, &cc))
        return 0;
    r->conf = c;
    *changed = true;
    int rc = pr_sync_conf(r);
    if (rc)
        return rc;
    if (r->transferee != RAFT_NONE && !is_voter(r, r->transferee))
        r->transferee = RAFT_NONE;
    if (r->role == RAFT_LEADER) {
        if (!is_voter(r, r->id)) {
            /* A removed (or never-voting) leader steps down; the rest elect. */
            become_follower(r, r->term, RAFT_NONE);
            return 0;
        }
        /* Fewer voters may commit more; a new member needs the log. */
        maybe_commit(r);
        bcast_append(r);
    } else if (r->role != RAFT_FOLLOWER && !is_voter(r, r->id)) {
        become_follower(r, r->term, RAFT_NONE);
    }
    return 0;
}

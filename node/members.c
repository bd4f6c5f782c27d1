/* members — the member list (kept in the store as meta "members"), the Raft conf state
 * blob, and applying membership changes and the node's own replicated requests. */
#include "node/node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"

struct node_member *node_member_find(struct node *n, uint64_t id)
{
    int i;
    for (i = 0; i < n->members.n; i++)
        if (n->members.m[i].id == id)
            return &n->members.m[i];
    return NULL;
}

/* ---- struct node_member <-> Etcdserverpb__Member -------------------------------------- */

/* Fills pb from m; strings point into m and into urls (2 * NODE_MAX_URLS pointers). */
void node_member_to_pb(const struct node_member *m, Etcdserverpb__Member *pb, char **urls)
{
    int i;
    etcdserverpb__member__init(pb);
    pb->id = m->id;
    pb->name = (char *)m->name;
    pb->islearner = m->learner;
    for (i = 0; i < m->peer_urls.n; i++)
        urls[i] = (char *)m->peer_urls.u[i].raw;
    pb->n_peerurls = (size_t)m->peer_urls.n;
    pb->peerurls = urls;
    for (i = 0; i < m->client_urls.n; i++)
        urls[NODE_MAX_URLS + i] = (char *)m->client_urls.u[i].raw;
    pb->n_clienturls = (size_t)m->client_urls.n;
    pb->clienturls = urls + NODE_MAX_URLS;
}

static void urls_from_pb(struct node_url_list *l, char **s, size_t n)
{
    char err[128];
    size_t i;
    l->n = 0;
    for (i = 0; i < n && l->n < NODE_MAX_URLS; i++) {
        struct node_url_list one;
        if (node_url_list_parse(&one, s[i], err, sizeof err) == 0)
            l->u[l->n++] = one.u[0];
    }
}

void node_member_from_pb(const Etcdserverpb__Member *pb, struct node_member *m)
{
    memset(m, 0, sizeof(*m));
    m->id = pb->id;
    snprintf(m->name, sizeof m->name, "%s", pb->name ? pb->name : "");
    m->learner = pb->islearner;
    urls_from_pb(&m->peer_urls, pb->peerurls, pb->n_peerurls);
    urls_from_pb(&m->client_urls, pb->clienturls, pb->n_clienturls);
}

/* Packs the member list (with the cluster id) into a malloc'd buffer. */
int node_members_pack(const struct node *n, const struct node_members *ms, uint8_t **out, size_t *len)
{
    Plinthraftpb__MemberList ml = PLINTHRAFTPB__MEMBER_LIST__INIT;
    Etcdserverpb__Member pbs[RAFT_MAX_MEMBERS], *ptrs[RAFT_MAX_MEMBERS];
    char *urls[RAFT_MAX_MEMBERS][2 * NODE_MAX_URLS];
    int i;
    ml.cluster_id = n->cluster_id;
    for (i = 0; i < ms->n; i++) {
        node_member_to_pb(&ms->m[i], &pbs[i], urls[i]);
        ptrs[i] = &pbs[i];
    }
    ml.n_members = (size_t)ms->n;
    ml.members = ptrs;
    *len = plinthraftpb__member_list__get_packed_size(&ml);
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return -1;
    plinthraftpb__member_list__pack(&ml, *out);
    return 0;
}

int node_members_save(struct node *n, kv_wtxn *w)
{
    n->ts.meta_written = true;
    uint8_t *buf;
    size_t len;
    int rc;
    if (node_members_pack(n, &n->members, &buf, &len) < 0)
        return KV_ENOMEM;
    rc = kv_meta_put(w, "members", buf, len);
    free(buf);
    return rc;
}

/* Loads the member list and cluster id from the store. Returns 0, or KV_ENOTFOUND. */
bool node_id_removed(const struct node *n, uint64_t id)
{
    size_t i;
    for (i = 0; i < n->n_removed; i++)
        if (n->removed_ids[i] == id)
            return true;
    return false;
}

/* Stored as 8-byte big-endian ids, in the order of removal. */
int node_removed_add(struct node *n, kv_wtxn *w, uint64_t id)
{
    uint64_t *ids;
    uint8_t *buf;
    size_t i;
    int rc;
    if (!node_id_removed(n, id)) { /* written again if present: the turn may be a retry */
        ids = realloc(n->removed_ids, (n->n_removed + 1) * sizeof(*ids));
        if (!ids)
            return KV_ENOMEM;
        n->removed_ids = ids;
        ids[n->n_removed++] = id;
    }
    ids = n->removed_ids;
    buf = malloc(8 * n->n_removed);
    if (!buf)
        return KV_ENOMEM;
    for (i = 0; i < n->n_removed; i++) {
        int k;
        for (k = 0; k < 8; k++)
            buf[8 * i + k] = (uint8_t)(ids[i] >> (56 - 8 * k));
    }
    rc = kv_meta_put(w, "removed_ids", buf, 8 * n->n_removed);
    free(buf);
    return rc;
}

static void removed_load(struct node *n)
{
    void *data;
    size_t len, i;
    free(n->removed_ids);
    n->removed_ids = NULL;
    n->n_removed = 0;
    if (kv_meta_get(n->kv, "removed_ids", &data, &len) != 0)
        return;
    n->removed_ids = malloc(len >= 8 ? len : 8);
    if (n->removed_ids) {
        for (i = 0; i + 8 <= len; i += 8) {
            const uint8_t *p = (const uint8_t *)data + i;
            uint64_t v = 0;
            int k;
            for (k = 0; k < 8; k++)
                v = v << 8 | p[k];
            n->removed_ids[n->n_removed++] = v;
        }
    }
    free(data);
}

int node_members_load(struct node *n)
{
    void *data;
    size_t len, i;
    Plinthraftpb__MemberList *ml;
    int rc;
    removed_load(n);
    rc = kv_meta_get(n->kv, "members", &data, &len);
    if (rc)
        return rc;
    ml = plinthraftpb__member_list__unpack(NULL, len, data);
    free(data);
    if (!ml)
        return KV_ECORRUPT;
    n->members.n = 0;
    for (i = 0; i < ml->n_members && i < RAFT_MAX_MEMBERS; i++)
        node_member_from_pb(ml->members[i], &n->members.m[n->members.n++]);
    if (ml->cluster_id)
        n->cluster_id = ml->cluster_id;
    plinthraftpb__member_list__free_unpacked(ml, NULL);
    return 0;
}

int node_conf_state_save(struct node *n, kv_wtxn *w, const struct raft_conf_state *c)
{
    Plinthraftpb__ConfState pc = PLINTHRAFTPB__CONF_STATE__INIT;
    uint8_t buf[8 + 2 * RAFT_MAX_MEMBERS * 11 + 8];
    size_t len;
    (void)n;
    pc.n_voters = c->n_voters;
    pc.voters = (uint64_t *)c->voters;
    pc.n_learners = c->n_learners;
    pc.learners = (uint64_t *)c->learners;
    len = plinthraftpb__conf_state__pack(&pc, buf);
    return kv_conf_state_set(w, buf, len);
}

int node_conf_state_load(struct node *n, struct raft_conf_state *c)
{
    void *data;
    size_t len;
    Plinthraftpb__ConfState *pc;
    int rc = kv_conf_state_get(n->kv, &data, &len);
    memset(c, 0, sizeof(*c));
    if (rc)
        return rc;
    pc = plinthraftpb__conf_state__unpack(NULL, len, data);
    free(data);
    if (!pc)
        return KV_ECORRUPT;
    c->n_voters = pc->n_voters > RAFT_MAX_MEMBERS ? RAFT_MAX_MEMBERS : pc->n_voters;
    if (c->n_voters)
        memcpy(c->voters, pc->voters, c->n_voters * sizeof(uint64_t));
    c->n_learners = pc->n_learners > RAFT_MAX_MEMBERS ? RAFT_MAX_MEMBERS : pc->n_learners;
    if (c->n_learners)
        memcpy(c->learners, pc->learners, c->n_learners * sizeof(uint64_t));
    plinthraftpb__conf_state__free_unpacked(pc, NULL);
    return 0;
}

/* ---- applying ---------------------------------------------------------------------------- */

int node_apply_conf_change(struct node *n, kv_wtxn *w, const struct raft_entry *e,
                           struct turn_state *ts)
{
    struct raft_conf_change cc;
    Plinthraftpb__ConfContext *ctx = NULL;
    struct waiter *wt;
    size_t i;
    int rc;

    if (raft_conf_change_decode(e->data, e->len, &cc) != 0) {
        node_log(n, LOG_WARN, "apply: conf change at %" PRIu64 " does not decode", e->index);
        return 0;
    }
    if (cc.context.len)
        ctx = plinthraftpb__conf_context__unpack(NULL, cc.context.len, cc.context.base);
    if (ctx && ctx->n_members) {
        n->members.n = 0;
        for (i = 0; i < ctx->n_members && i < RAFT_MAX_MEMBERS; i++)
            node_member_from_pb(ctx->members[i], &n->members.m[n->members.n++]);
        if (ctx->cluster_id && ctx->cluster_id != n->cluster_id) {
            n->cluster_id = ctx->cluster_id;
            kv_ids_set(w, n->cluster_id, n->id);
        }
    } else {
        /* no list: apply the change itself */
        struct node_member *m = node_member_find(n, cc.node);
        if (cc.type == RAFT_CC_REMOVE && m) {
            *m = n->members.m[--n->members.n];
        } else if (cc.type == RAFT_CC_PROMOTE && m) {
            m->learner = false;
        } else if ((cc.type == RAFT_CC_ADD_VOTER || cc.type == RAFT_CC_ADD_LEARNER) && !m &&
                   n->members.n < RAFT_MAX_MEMBERS) {
            struct node_member *nm = &n->members.m[n->members.n++];
            memset(nm, 0, sizeof(*nm));
            if (ctx && ctx->member)
                node_member_from_pb(ctx->member, nm);
            nm->id = cc.node;
            nm->learner = cc.type == RAFT_CC_ADD_LEARNER;
        }
    }
    node_log(n, LOG_INFO, "membership change at %" PRIu64 ": %s %016" PRIx64 " (%d members)",
             e->index,
             cc.type == RAFT_CC_ADD_VOTER     ? "add"
             : cc.type == RAFT_CC_ADD_LEARNER ? "add learner"
             : cc.type == RAFT_CC_PROMOTE     ? "promote"
                                              : "remove",
             cc.node, n->members.n);
    ts->members_changed = true;
    if (cc.type == RAFT_CC_REMOVE && (rc = node_removed_add(n, w, cc.node)) != 0) {
        if (ctx)
            plinthraftpb__conf_context__free_unpacked(ctx, NULL);
        return rc;
    }
    if (cc.type == RAFT_CC_REMOVE && cc.node == n->id)
        ts->removed_self = true;
    if (ctx && ctx->request_id && (wt = waiter_find_pub(n, ctx->request_id)) != NULL)
        turn_done_own(ts, wt);
    if (ctx)
        plinthraftpb__conf_context__free_unpacked(ctx, NULL);
    return node_members_save(n, w);
}

int node_apply_own(struct node *n, kv_wtxn *w, const struct raft_entry *e, uint64_t id,
                   struct turn_state *ts)
{
    Plinthraftpb__NodeRequest *r = plinthraftpb__node_request__unpack(NULL, e->len, e->data);
    struct node_member *m;
    struct waiter *wt;
    if (!r)
        return 0;
    if (r->publish && (m = node_member_find(n, r->publish->id)) != NULL) {
        char err[64];
        struct node_member tmp;
        node_member_from_pb(r->publish, &tmp);
        snprintf(m->name, sizeof m->name, "%s", tmp.name);
        m->client_urls = tmp.client_urls;
        (void)err;
        ts->members_changed = true;
    }
    if (r->update && (m = node_member_find(n, r->update->id)) != NULL) {
        struct node_member tmp;
        node_member_from_pb(r->update, &tmp);
        m->peer_urls = tmp.peer_urls;
        ts->members_changed = true;
    }
    plinthraftpb__node_request__free_unpacked(r, NULL);
    if ((wt = waiter_find_pub(n, id)) != NULL)
        turn_done_own(ts, wt);
    return node_members_save(n, w);
}

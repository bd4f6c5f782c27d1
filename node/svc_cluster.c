/* svc_cluster — etcd's Cluster service: MemberList from the replicated member list;
 * MemberAdd (voter or learner), MemberRemove and MemberPromote as Raft membership changes
 * (forwarded to the leader by followers), MemberUpdate as a replicated node request. */
#include "node/node_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/log.h"

static void fill_members(const struct node_members *ms, Etcdserverpb__Member *pbs,
                         Etcdserverpb__Member **ptrs, char **urlp)
{
    int i;
    for (i = 0; i < ms->n; i++) {
        node_member_to_pb(&ms->m[i], &pbs[i], urlp + i * 2 * NODE_MAX_URLS);
        ptrs[i] = &pbs[i];
    }
}

struct member_reply {
    Etcdserverpb__ResponseHeader h;
    Etcdserverpb__Member pbs[RAFT_MAX_MEMBERS], *ptrs[RAFT_MAX_MEMBERS];
    char *urls[RAFT_MAX_MEMBERS * 2 * NODE_MAX_URLS];
    Etcdserverpb__Member one;
    char *one_urls[2 * NODE_MAX_URLS];
};

static void member_reply_fill(struct node *n, struct member_reply *mr)
{
    etcdserverpb__response_header__init(&mr->h);
    node_fill_header(n, &mr->h, 0);
    fill_members(&n->members, mr->pbs, mr->ptrs, mr->urls);
}

static void member_list_reply(struct node *n, struct net_grpc_call *call)
{
    Etcdserverpb__MemberListResponse r = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
    struct member_reply *mr = calloc(1, sizeof(*mr));
    if (!mr) {
        node_reply_status(call, ST_NO_MEMORY);
        return;
    }
    member_reply_fill(n, mr);
    r.header = &mr->h;
    r.n_members = (size_t)n->members.n;
    r.members = mr->ptrs;
    net_grpc_call_reply_msg(call, &r.base);
    free(mr);
}

static void member_list_serve(struct node *n, struct read_req *r, struct node_status st)
{
    if (!r->call)
        return;
    if (st.code)
        node_reply_status(r->call, st);
    else
        member_list_reply(n, r->call);
}

/* MemberList{linearizable} (etcd 3.5) waits for a ReadIndex round; otherwise the local
 * list is answered at once (also on learners). */
static void member_list_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__MemberListRequest *req = node_unpack(call, &etcdserverpb__member_list_request__descriptor, msg, len);
    bool lin;
    if (!req)
        return;
    lin = req->linearizable;
    etcdserverpb__member_list_request__free_unpacked(req, NULL);
    if (lin) {
        struct node_status st = node_can_serve(n, false);
        if (st.code)
            node_reply_status(call, st);
        else
            node_read(n, call, member_list_serve, NULL);
        return;
    }
    member_list_reply(n, call);
}

/* ---- proposing membership changes ------------------------------------------------------ */

enum conf_kind { CK_ADD, CK_REMOVE, CK_PROMOTE };

struct conf_arg {
    enum conf_kind kind;
    struct node_member member;
};

static void conf_done(struct node *n, struct waiter *w, struct node_status st, kv_result *res)
{
    struct conf_arg *ca = w->arg;
    struct member_reply *mr;
    (void)res;
    if (w->call) {
        if (st.code) {
            node_reply_status(w->call, st);
        } else if ((mr = calloc(1, sizeof(*mr))) == NULL) {
            node_reply_status(w->call, ST_NO_MEMORY);
        } else {
            member_reply_fill(n, mr);
            if (ca->kind == CK_ADD) {
                Etcdserverpb__MemberAddResponse r = ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
                struct node_member *m = node_member_find(n, ca->member.id);
                node_member_to_pb(m ? m : &ca->member, &mr->one, mr->one_urls);
                r.header = &mr->h;
                r.member = &mr->one;
                r.n_members = (size_t)n->members.n;
                r.members = mr->ptrs;
                net_grpc_call_reply_msg(w->call, &r.base);
            } else if (ca->kind == CK_REMOVE) {
                Etcdserverpb__MemberRemoveResponse r = ETCDSERVERPB__MEMBER_REMOVE_RESPONSE__INIT;
                r.header = &mr->h;
                r.n_members = (size_t)n->members.n;
                r.members = mr->ptrs;
                net_grpc_call_reply_msg(w->call, &r.base);
            } else {
                Etcdserverpb__MemberPromoteResponse r = ETCDSERVERPB__MEMBER_PROMOTE_RESPONSE__INIT;
                r.header = &mr->h;
                r.n_members = (size_t)n->members.n;
                r.members = mr->ptrs;
                net_grpc_call_reply_msg(w->call, &r.base);
            }
            free(mr);
        }
    }
    free(ca);
}

static struct node_status raft_conf_status(int rc)
{
    switch (rc) {
    case 0:
        return ST_OK;
    case RAFT_ENOTLEADER:
        return ST_LEADER_CHANGED;
    case RAFT_EBUSY:
        return NODE_ST(GRPC_UNAVAILABLE, "etcdserver: unhealthy cluster");
    case RAFT_ETOOBIG:
        return NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: too many members in cluster");
    default:
        return ST_MEMBER_NOT_FOUND;
    }
}

/* Learner promotion is allowed once its log is within 10% of the leader's (etcd). */
static bool learner_ready(struct node *n, uint64_t id)
{
    struct raft_progress p;
    raft_index_t last = raft_last_index(n->raft);
    if (raft_progress(n->raft, id, &p) != 0)
        return false;
    return (double)p.match >= 0.9 * (double)last;
}

/* Leader: proposes cc now. Returns a status for the client (ST_OK = proposed). */
static struct node_status conf_propose_local(struct node *n, const struct raft_conf_change *cc)
{
    if (cc->type == RAFT_CC_PROMOTE && !learner_ready(n, cc->node))
        return ST_LEARNER_NOT_READY;
    return raft_conf_status(raft_propose_conf_change(n->raft, cc, NULL));
}

void node_conf_forwarded(struct node *n, uint64_t from, const Plinthraftpb__ConfProposal *cp)
{
    struct raft_conf_change cc;
    struct node_status st;
    int reason;
    cc.type = (enum raft_conf_change_type)cp->type;
    cc.node = cp->node;
    cc.context.base = cp->context.data;
    cc.context.len = cp->context.len;
    if (!node_is_leader(n)) {
        node_forward_refuse(n, from, &cp->request_id, 1, 1);
        return;
    }
    st = conf_propose_local(n, &cc);
    if (st.code == 0) {
        node_kick(n);
        return;
    }
    reason = st.msg == ST_LEARNER_NOT_READY.msg ? 3 : st.code == GRPC_NOT_FOUND ? 4 : 2;
    node_forward_refuse(n, from, &cp->request_id, 1, reason);
}

/* Builds the context (request id, member, whole list after the change) and proposes the
 * change here or at the leader. Takes ownership of ca. */
static void conf_submit(struct node *n, struct net_grpc_call *call, enum raft_conf_change_type type,
                        struct conf_arg *ca, const struct node_members *after)
{
    Plinthraftpb__ConfContext ctx = PLINTHRAFTPB__CONF_CONTEXT__INIT;
    struct member_reply *mr = calloc(1, sizeof(*mr));
    struct raft_conf_change cc;
    struct node_status st = ST_OK;
    struct waiter *w;
    uint8_t *buf = NULL;
    size_t len;
    uint64_t id = node_new_request_id(n);

    if (!mr) {
        node_reply_status(call, ST_NO_MEMORY);
        free(ca);
        return;
    }
    fill_members(after, mr->pbs, mr->ptrs, mr->urls);
    node_member_to_pb(&ca->member, &mr->one, mr->one_urls);
    ctx.request_id = id;
    ctx.member = &mr->one;
    ctx.cluster_id = n->cluster_id;
    ctx.n_members = (size_t)after->n;
    ctx.members = mr->ptrs;
    len = plinthraftpb__conf_context__get_packed_size(&ctx);
    buf = malloc(len);
    if (!buf) {
        free(mr);
        free(ca);
        node_reply_status(call, ST_NO_MEMORY);
        return;
    }
    plinthraftpb__conf_context__pack(&ctx, buf);
    free(mr);
    cc.type = type;
    cc.node = ca->member.id;
    cc.context.base = buf;
    cc.context.len = len;
    w = node_waiter_add(n, id, call, conf_done, ca);
    if (!w) {
        free(buf);
        free(ca);
        return;
    }
    if (node_is_leader(n))
        st = conf_propose_local(n, &cc);
    else
        node_forward_conf(n, id, &cc);
    free(buf);
    if (st.code)
        node_waiter_fail(n, w, st); /* frees ca through conf_done */
    else
        node_kick(n);
}

static int voters_started(struct node *n, int *voters)
{
    int i, started = 0;
    *voters = 0;
    for (i = 0; i < n->members.n; i++) {
        if (n->members.m[i].learner)
            continue;
        (*voters)++;
        if (n->members.m[i].id == n->id || net_peer_connected(n->peers, n->members.m[i].id))
            started++;
    }
    return started;
}

static void member_add_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__MemberAddRequest *req = node_unpack(call, &etcdserverpb__member_add_request__descriptor, msg, len);
    struct node_status st;
    struct conf_arg *ca;
    struct node_members after;
    char err[128];
    size_t i;
    int k, learners = 0, voters, started;

    if (!req)

        return;
    st = node_can_serve(n, true);
    ca = calloc(1, sizeof(*ca));
    if (!st.code && !ca)
        st = ST_NO_MEMORY;
    if (!st.code && (req->n_peerurls == 0 || req->n_peerurls > NODE_MAX_URLS))
        st = ST_MEMBER_BAD_URLS;
    for (i = 0; !st.code && i < req->n_peerurls; i++) {
        struct node_url_list one;
        if (node_url_list_parse(&one, req->peerurls[i], err, sizeof err) != 0)
            st = ST_MEMBER_BAD_URLS;
        else
            ca->member.peer_urls.u[ca->member.peer_urls.n++] = one.u[0];
    }
    for (k = 0; !st.code && k < n->members.n; k++) {
        int a, b;
        if (n->members.m[k].learner)
            learners++;
        for (a = 0; a < n->members.m[k].peer_urls.n; a++)
            for (b = 0; b < ca->member.peer_urls.n; b++)
                if (!strcmp(n->members.m[k].peer_urls.u[a].raw, ca->member.peer_urls.u[b].raw))
                    st = ST_PEER_URL_EXIST;
    }
    if (!st.code && req->islearner && learners >= 1)
        st = ST_TOO_MANY_LEARNERS;
    if (!st.code && n->members.n >= RAFT_MAX_MEMBERS)
        st = NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: too many members in cluster");
    if (!st.code && !req->islearner && n->cfg.strict_reconfig_check) {
        started = voters_started(n, &voters);
        if (started < (voters + 1) / 2 + 1)
            st = ST_MEMBER_NOT_ENOUGH_STARTED;
    }
    if (st.code) {
        node_reply_status(call, st);
        free(ca);
        etcdserverpb__member_add_request__free_unpacked(req, NULL);
        return;
    }
    /* The id the new member computes itself from its --initial-cluster entry and the
     * cluster token, so it knows who it is when it starts with --initial-cluster-state
     * existing. */
    ca->kind = CK_ADD;
    ca->member.id = node_member_id(&ca->member.peer_urls, n->cfg.initial_cluster_token, 0);
    ca->member.learner = req->islearner;
    if (node_member_find(n, ca->member.id)) {
        node_reply_status(call, ST_MEMBER_EXIST);
        free(ca);
    } else if (node_id_removed(n, ca->member.id)) {
        /* etcd never reuses a removed member's id; plinth's ids come from the peer URLs
         * and the cluster token, so the same URLs would give the removed id back */
        node_reply_status(call, ST_MEMBER_ID_REMOVED);
        free(ca);
    } else {
        after = n->members;
        after.m[after.n++] = ca->member;
        conf_submit(n, call, req->islearner ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER, ca, &after);
    }
    etcdserverpb__member_add_request__free_unpacked(req, NULL);
}

static void member_remove_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__MemberRemoveRequest *req = node_unpack(call, &etcdserverpb__member_remove_request__descriptor, msg, len);
    struct node_status st;
    struct node_member *m;
    struct conf_arg *ca;
    struct node_members after;
    int k, voters, started;
    if (!req)
        return;
    st = node_can_serve(n, true);
    m = node_member_find(n, req->id);
    if (!st.code && !m)
        st = ST_MEMBER_NOT_FOUND;
    if (!st.code && !m->learner && n->cfg.strict_reconfig_check) {
        started = voters_started(n, &voters);
        if (m->id == n->id || net_peer_connected(n->peers, m->id))
            started--;
        if (started < (voters - 1) / 2 + 1)
            st = ST_MEMBER_NOT_ENOUGH_STARTED;
    }
    ca = st.code ? NULL : calloc(1, sizeof(*ca));
    if (!st.code && !ca)
        st = ST_NO_MEMORY;
    if (st.code) {
        node_reply_status(call, st);
        etcdserverpb__member_remove_request__free_unpacked(req, NULL);
        return;
    }
    ca->kind = CK_REMOVE;
    ca->member = *m;
    after.n = 0;
    for (k = 0; k < n->members.n; k++)
        if (n->members.m[k].id != req->id)
            after.m[after.n++] = n->members.m[k];
    conf_submit(n, call, RAFT_CC_REMOVE, ca, &after);
    etcdserverpb__member_remove_request__free_unpacked(req, NULL);
}

static void member_promote_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__MemberPromoteRequest *req = node_unpack(call, &etcdserverpb__member_promote_request__descriptor, msg, len);
    struct node_status st;
    struct node_member *m;
    struct conf_arg *ca;
    struct node_members after;
    int k;
    if (!req)
        return;
    st = node_can_serve(n, true);
    m = node_member_find(n, req->id);
    if (!st.code && !m)
        st = ST_MEMBER_NOT_FOUND;
    if (!st.code && !m->learner)
        st = ST_MEMBER_NOT_LEARNER;
    ca = st.code ? NULL : calloc(1, sizeof(*ca));
    if (!st.code && !ca)
        st = ST_NO_MEMORY;
    if (st.code) {
        node_reply_status(call, st);
        etcdserverpb__member_promote_request__free_unpacked(req, NULL);
        return;
    }
    ca->kind = CK_PROMOTE;
    ca->member = *m;
    after = n->members;
    for (k = 0; k < after.n; k++)
        if (after.m[k].id == req->id)
            after.m[k].learner = false;
    conf_submit(n, call, RAFT_CC_PROMOTE, ca, &after);
    etcdserverpb__member_promote_request__free_unpacked(req, NULL);
}

/* ---- MemberUpdate: a node request through Raft ---------------------------------------- */

static void update_done(struct node *n, struct waiter *w, struct node_status st, kv_result *res)
{
    struct member_reply *mr;
    (void)res;
    if (!w->call)
        return;
    if (st.code) {
        node_reply_status(w->call, st);
        return;
    }
    mr = calloc(1, sizeof(*mr));
    if (!mr) {
        node_reply_status(w->call, ST_NO_MEMORY);
        return;
    }
    {
        Etcdserverpb__MemberUpdateResponse r = ETCDSERVERPB__MEMBER_UPDATE_RESPONSE__INIT;
        member_reply_fill(n, mr);
        r.header = &mr->h;
        r.n_members = (size_t)n->members.n;
        r.members = mr->ptrs;
        net_grpc_call_reply_msg(w->call, &r.base);
    }
    free(mr);
}

static void member_update_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__MemberUpdateRequest *req = node_unpack(call, &etcdserverpb__member_update_request__descriptor, msg, len);
    Plinthraftpb__NodeRequest r = PLINTHRAFTPB__NODE_REQUEST__INIT;
    Etcdserverpb__Member pb;
    struct node_member m, *cur;
    char *urls[2 * NODE_MAX_URLS], err[128];
    struct node_status st;
    size_t i, blen;
    uint8_t *buf;
    uint64_t id;
    if (!req)
        return;
    st = node_can_serve(n, true);
    cur = node_member_find(n, req->id);
    if (!st.code && !cur)
        st = ST_MEMBER_NOT_FOUND;
    if (!st.code) {
        m = *cur;
        m.peer_urls.n = 0;
        if (req->n_peerurls == 0 || req->n_peerurls > NODE_MAX_URLS)
            st = ST_MEMBER_BAD_URLS;
        for (i = 0; !st.code && i < req->n_peerurls; i++) {
            struct node_url_list one;
            if (node_url_list_parse(&one, req->peerurls[i], err, sizeof err) != 0)
                st = ST_MEMBER_BAD_URLS;
            else
                m.peer_urls.u[m.peer_urls.n++] = one.u[0];
        }
    }
    if (st.code) {
        node_reply_status(call, st);
        etcdserverpb__member_update_request__free_unpacked(req, NULL);
        return;
    }
    node_member_to_pb(&m, &pb, urls);
    id = node_new_request_id(n);
    r.id = id;
    r.update = &pb;
    blen = plinthraftpb__node_request__get_packed_size(&r);
    buf = malloc(blen);
    if (!buf) {
        node_reply_status(call, ST_NO_MEMORY);
    } else {
        plinthraftpb__node_request__pack(&r, buf);
        node_propose(n, id, buf, blen, call, update_done, NULL);
    }
    etcdserverpb__member_update_request__free_unpacked(req, NULL);
}

int svc_cluster_register(struct node *n)
{
    struct net_grpc_server *g = n->grpc;
    return net_grpc_server_register(g, "/etcdserverpb.Cluster/MemberList", NET_GRPC_UNARY, member_list_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Cluster/MemberAdd", NET_GRPC_UNARY, member_add_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Cluster/MemberRemove", NET_GRPC_UNARY, member_remove_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Cluster/MemberPromote", NET_GRPC_UNARY, member_promote_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Cluster/MemberUpdate", NET_GRPC_UNARY, member_update_h, n);
}

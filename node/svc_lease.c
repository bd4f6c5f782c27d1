/* svc_lease — etcd's Lease service. Grants and revokes go through Raft; keep-alives are
 * answered by the leader, which alone tracks expiry (followers relay them over the peer
 * transport); the leader proposes revokes for expired leases. */
#include "node/node_int.h"

#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/validate.h"

enum { F_LEASE_GRANT = 6, F_LEASE_REVOKE = 7 };

/* A LeaseKeepAlive stream. */
struct ka_stream {
    struct node *n;
    struct net_grpc_call *call;
};

/* A keep-alive relayed to the leader, waiting for its answer. */
struct renew_wait {
    uint64_t request_id;
    struct ka_stream *ks;        /* NULL once the stream closed */
    int64_t lease_id;
    int64_t deadline_ms;
    struct renew_wait *next;
};

static void answer_kv_status(struct net_grpc_call *call, int err)
{
    kv_status_msg m = kv_etcd_status(err);
    net_grpc_call_finish(call, m.grpc_code, m.message);
}

static void lease_grant_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    Etcdserverpb__LeaseGrantRequest *req = node_unpack(call, &etcdserverpb__lease_grant_request__descriptor, msg, len);
    struct node_status st;
    int rc;
    if (!req)
        return;
    st = node_check_lease_grant(req);
    if (st.code == 0)
        st = node_can_serve(n, true);
    r.request_case = PLINTHPB__REQUEST__REQUEST_LEASE_GRANT;
    r.lease_grant = req;
    if (st.code)
        node_reply_status(call, st);
    else if ((rc = kv_check_request(n->kv, &r)) != 0)
        answer_kv_status(call, rc);
    else if (!node_quota_refuse(n, call, &r))
        node_propose_client(n, call, F_LEASE_GRANT, msg, len);
    etcdserverpb__lease_grant_request__free_unpacked(req, NULL);
}

static void lease_revoke_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__LeaseRevokeRequest *req = node_unpack(call, &etcdserverpb__lease_revoke_request__descriptor, msg, len);
    struct node_status st;
    if (!req)
        return;
    st = node_can_serve(n, true);
    if (st.code)
        node_reply_status(call, st);
    else
        node_propose_client(n, call, F_LEASE_REVOKE, msg, len);
    etcdserverpb__lease_revoke_request__free_unpacked(req, NULL);
}

void node_propose_lease_revoke(struct node *n, int64_t id)
{
    Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    uint8_t buf[32];
    size_t l;
    r.id = id;
    l = etcdserverpb__lease_revoke_request__pack(&r, buf);
    node_propose_client(n, NULL, F_LEASE_REVOKE, buf, l);
}

/* ---- keep-alive ---------------------------------------------------------------------- */

static void ka_send(struct ka_stream *ks, int64_t id, int64_t ttl)
{
    Etcdserverpb__LeaseKeepAliveResponse r = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    node_fill_header(ks->n, &h, 0);
    r.header = &h;
    r.id = id;
    r.ttl = ttl < 0 ? 0 : ttl;
    net_grpc_call_send_msg(ks->call, &r.base);
}

static void ka_close(struct net_grpc_call *call, void *user, int err)
{
    struct ka_stream *ks = user;
    struct renew_wait *rw;
    (void)call;
    (void)err;
    if (!ks)
        return;
    for (rw = ks->n->renews; rw; rw = rw->next)
        if (rw->ks == ks)
            rw->ks = NULL;
    free(ks);
}

static void ka_half_close(struct net_grpc_call *call, void *user)
{
    (void)user;
    net_grpc_call_finish(call, GRPC_OK, NULL);
}

static void lease_keepalive_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    struct ka_stream *ks = net_grpc_call_user(call);
    Etcdserverpb__LeaseKeepAliveRequest *req;
    int64_t ttl = 0;

    if (!ks) {
        ks = calloc(1, sizeof(*ks));
        if (!ks) {
            node_reply_status(call, ST_NO_MEMORY);
            return;
        }
        ks->n = n;
        ks->call = call;
        net_grpc_call_set_user(call, ks);
        net_grpc_call_set_close_cb(call, ka_close);
        net_grpc_call_set_half_close_cb(call, ka_half_close);
    }
    req = node_unpack(call, &etcdserverpb__lease_keep_alive_request__descriptor, msg, len);
    if (!req)
        return;
    if (raft_leader(n->raft) == RAFT_NONE) {
        /* during an election the keep-alive goes unanswered (the client sends another
         * in TTL/3); a member without a leader for longer ends the stream */
        if (!node_leader_pending(n))
            node_reply_status(call, ST_NO_LEADER);
    } else if (node_is_leader(n)) {
        if (kv_lease_renew(n->kv, req->id, node_now_ms(), &ttl) != 0)
            ttl = 0;
        ka_send(ks, req->id, ttl);
    } else {
        struct renew_wait *rw = calloc(1, sizeof(*rw));
        if (rw) {
            rw->request_id = node_new_request_id(n);
            rw->ks = ks;
            rw->lease_id = req->id;
            rw->deadline_ms = node_now_ms() + 2 * (int64_t)n->cfg.election_ms;
            rw->next = n->renews;
            n->renews = rw;
            node_lease_renew_remote(n, rw->request_id, req->id);
        }
    }
    etcdserverpb__lease_keep_alive_request__free_unpacked(req, NULL);
}

void node_lease_renew_answer(struct node *n, uint64_t request_id, int64_t lease_id, int64_t ttl)
{
    struct renew_wait **pp;
    for (pp = &n->renews; *pp; pp = &(*pp)->next) {
        struct renew_wait *rw = *pp;
        if (rw->request_id != request_id)
            continue;
        *pp = rw->next;
        if (rw->ks && ttl < 0 && node_is_leader(n)) {
            /* the peer was not the leader any more, and now we are */
            if (kv_lease_renew(n->kv, lease_id, node_now_ms(), &ttl) != 0)
                ttl = 0;
        }
        /* ttl < 0 otherwise: nobody answered for the lease; the client sends again */
        if (rw->ks && ttl >= 0)
            ka_send(rw->ks, lease_id, ttl);
        free(rw);
        return;
    }
}

static void ttl_tick(struct node *n, int64_t now);

void node_lease_tick(struct node *n, int64_t now)
{
    ttl_tick(n, now);
    struct renew_wait **pp = &n->renews;
    while (*pp) {
        struct renew_wait *rw = *pp;
        if (rw->deadline_ms <= now || !rw->ks) {
            *pp = rw->next;
            free(rw);
        } else {
            pp = &rw->next;
        }
    }
}

/* ---- reads ------------------------------------------------------------------------------ */

/* Answers a TimeToLive from the local store (exact on the leader). */
static void ttl_local(struct node *n, struct net_grpc_call *call, const uint8_t *msg, size_t len)
{
    Etcdserverpb__LeaseTimeToLiveRequest *req = node_unpack(call, &etcdserverpb__lease_time_to_live_request__descriptor, msg, len);
    kv_result res = {0};
    int rc;
    if (!req)
        return;
    rc = kv_lease_time_to_live(n->kv, req, node_now_ms(), &res);
    if (rc)
        answer_kv_status(call, rc);
    else
        node_reply_result(n, call, &res);
    kv_result_free(&res);
    etcdserverpb__lease_time_to_live_request__free_unpacked(req, NULL);
}

/* A TimeToLive asked of the leader on a client's behalf. */
struct ttl_wait {
    uint64_t request_id;
    struct net_grpc_call *call;  /* NULL once the client went away */
    uint8_t *req;
    size_t req_len;
    int64_t deadline_ms;
    struct ttl_wait *next;
};

static void ttl_close(struct net_grpc_call *call, void *user, int err)
{
    struct ttl_wait *t = user;
    (void)call;
    (void)err;
    if (t)
        t->call = NULL;
}

static void ttl_wait_end(struct node *n, struct ttl_wait *t)
{
    struct ttl_wait **pp;
    for (pp = &n->ttl_waits; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    if (t->call) {
        net_grpc_call_set_close_cb(t->call, NULL);
        net_grpc_call_set_user(t->call, NULL);
    }
    free(t->req);
    free(t);
}

void node_lease_ttl_forget(struct node *n, struct ttl_wait *t)
{
    ttl_wait_end(n, t);
}

static void send_ttl(struct node *n, uint64_t to, const Plinthraftpb__LeaseTTL *t)
{
    Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
    size_t len;
    uint8_t *buf;
    f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_TTL;
    f.ttl = (Plinthraftpb__LeaseTTL *)t;
    len = plinthraftpb__peer_frame__get_packed_size(&f);
    buf = malloc(len ? len : 1);
    if (!buf)
        return;
    plinthraftpb__peer_frame__pack(&f, buf);
    net_peer_send(n->peers, to, buf, len);
    free(buf);
}

static void lease_ttl_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Plinthraftpb__LeaseTTL q = PLINTHRAFTPB__LEASE_TTL__INIT;
    struct ttl_wait *t;
    if (node_is_leader(n) || raft_leader(n->raft) == RAFT_NONE) {
        ttl_local(n, call, msg, len); /* without a leader: the full TTL, as etcd's followers */
        return;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->req = malloc(len ? len : 1))) {
        free(t);
        node_reply_status(call, ST_NO_MEMORY);
        return;
    }
    if (len)
        memcpy(t->req, msg, len);
    t->req_len = len;
    t->request_id = node_new_request_id(n);
    t->call = call;
    t->deadline_ms = node_now_ms() + 2 * (int64_t)n->cfg.election_ms;
    t->next = n->ttl_waits;
    n->ttl_waits = t;
    net_grpc_call_set_user(call, t);
    net_grpc_call_set_close_cb(call, ttl_close);
    q.request_id = t->request_id;
    q.request.data = t->req;
    q.request.len = len;
    send_ttl(n, raft_leader(n->raft), &q);
}

void node_lease_ttl_peer(struct node *n, uint64_t from, const Plinthraftpb__LeaseTTL *m)
{
    struct ttl_wait *t;
    if (!m->answer) { /* we are asked, as the leader */
        Plinthraftpb__LeaseTTL a = PLINTHRAFTPB__LEASE_TTL__INIT;
        Etcdserverpb__LeaseTimeToLiveRequest *req =
            etcdserverpb__lease_time_to_live_request__unpack(NULL, m->request.len, m->request.data);
        kv_result res = {0};
        uint8_t *buf = NULL;
        a.request_id = m->request_id;
        a.answer = true;
        if (!node_is_leader(n) || !req ||
            kv_lease_time_to_live(n->kv, req, node_now_ms(), &res) != 0 || res.err || !res.msg) {
            a.not_leader = true;
        } else {
            size_t l = protobuf_c_message_get_packed_size(res.msg);
            buf = malloc(l ? l : 1);
            if (buf) {
                protobuf_c_message_pack(res.msg, buf);
                a.response.data = buf;
                a.response.len = l;
            } else {
                a.not_leader = true;
            }
        }
        send_ttl(n, from, &a);
        free(buf);
        kv_result_free(&res);
        if (req)
            etcdserverpb__lease_time_to_live_request__free_unpacked(req, NULL);
        return;
    }
    for (t = n->ttl_waits; t; t = t->next)
        if (t->request_id == m->request_id)
            break;
    if (!t)
        return;
    if (t->call) {
        if (m->not_leader)
            ttl_local(n, t->call, t->req, t->req_len);
        else
            net_grpc_call_reply(t->call, m->response.data, m->response.len);
    }
    ttl_wait_end(n, t);
}

static void ttl_tick(struct node *n, int64_t now)
{
    struct ttl_wait *t = n->ttl_waits, *next;
    for (; t; t = next) {
        next = t->next;
        if (t->deadline_ms <= now || !t->call) {
            if (t->call)
                ttl_local(n, t->call, t->req, t->req_len);
            ttl_wait_end(n, t);
        }
    }
}

static void lease_leases_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    kv_result res = {0};
    int rc;
    (void)msg;
    (void)len;
    rc = kv_lease_leases(n->kv, &res);
    if (rc)
        answer_kv_status(call, rc);
    else
        node_reply_result(n, call, &res);
    kv_result_free(&res);
}

int svc_lease_register(struct node *n)
{
    return net_grpc_server_register(n->grpc, "/etcdserverpb.Lease/LeaseGrant", NET_GRPC_UNARY, lease_grant_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.Lease/LeaseRevoke", NET_GRPC_UNARY, lease_revoke_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.Lease/LeaseKeepAlive", NET_GRPC_BIDI, lease_keepalive_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.Lease/LeaseTimeToLive", NET_GRPC_UNARY, lease_ttl_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.Lease/LeaseLeases", NET_GRPC_UNARY, lease_leases_h, n);
}

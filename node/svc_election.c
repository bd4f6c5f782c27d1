/* svc_election — etcd's v3election service (Campaign, Proclaim, Leader, Observe, Resign),
 * served by the member as etcd's server does it: the clientv3/concurrency Election recipe
 * on the store. A candidate's key is <name>/<lease in hex>, created by a txn only if its
 * create revision is 0 and attached to the lease; the leader is the key under <name>/
 * with the lowest create revision, and a campaign returns once every key created before
 * its own is deleted. Errors that etcd's recipe returns as plain Go errors are answered
 * with gRPC code 2 (UNKNOWN) and etcd's text. */
#include "node/recipe.h"

#include <stdlib.h>
#include <string.h>

#include "v3election.pb-c.h"

static const char ERR_NOT_LEADER[] = "election: not leader";
static const char ERR_NO_LEADER[] = "election: no leader";
static const char ERR_MISSING_LEADER[] = "\"leader\" field must be provided";

static ProtobufCBinaryData bd(const uint8_t *p, size_t len)
{
    return (ProtobufCBinaryData){len, (uint8_t *)p};
}

static uint8_t *dup_bytes(const ProtobufCBinaryData *b)
{
    uint8_t *p = malloc(b->len + 1);
    if (p && b->len)
        memcpy(p, b->data, b->len);
    return p;
}

/* txn: if create_revision(key) == rev then ops */
static void guarded_txn(Etcdserverpb__TxnRequest *t, Etcdserverpb__Compare *c,
                        Etcdserverpb__Compare **cs, const uint8_t *key, size_t klen, int64_t rev)
{
    etcdserverpb__compare__init(c);
    c->key = bd(key, klen);
    c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    c->create_revision = rev;
    cs[0] = c;
    t->compare = cs;
    t->n_compare = 1;
}

static int64_t txn_rev(const kv_result *res)
{
    const Etcdserverpb__TxnResponse *t = (const Etcdserverpb__TxnResponse *)res->msg;
    return t->header ? t->header->revision : 0;
}

/* Resign as etcd's Election.Resign: delete the key if it is still ours. done may be NULL. */
static int propose_resign(struct node *n, const uint8_t *key, size_t klen, int64_t rev,
                          recipe_done_fn done, void *arg)
{
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare c, *cs[1];
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT, *ops[1] = {&op};
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    guarded_txn(&t, &c, cs, key, klen, rev);
    d.key = bd(key, klen);
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op.request_delete_range = &d;
    t.success = ops;
    t.n_success = 1;
    return recipe_propose(n, RECIPE_TXN, &t.base, done, arg);
}

static void ignore_done(struct node *n, void *arg, int code, const char *msg, kv_result *res)
{
    (void)n, (void)arg, (void)code, (void)msg, (void)res;
}

/* txn: if create_revision(key) == rev then put(key, value, lease) (Election.Proclaim) */
static int propose_proclaim(struct node *n, const uint8_t *key, size_t klen, int64_t rev,
                            const uint8_t *val, size_t vlen, int64_t lease, recipe_done_fn done,
                            void *arg)
{
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare c, *cs[1];
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT, *ops[1] = {&op};
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    guarded_txn(&t, &c, cs, key, klen, rev);
    p.key = bd(key, klen);
    p.value = bd(val, vlen);
    p.lease = lease;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = &p;
    t.success = ops;
    t.n_success = 1;
    return recipe_propose(n, RECIPE_TXN, &t.base, done, arg);
}

/* ---- Campaign ------------------------------------------------------------------------------ */

struct campaign {
    struct node *n;
    struct net_grpc_call *call;      /* NULL once the client went away */
    ProtobufCBinaryData name, value; /* owned */
    int64_t lease;
    uint8_t *key;
    size_t klen;
    int64_t rev, hdr_rev;
    bool key_made;                   /* our key may exist: resign if the client leaves */
    bool busy;                       /* a proposal is in flight */
    struct recipe_wait *wait;
};

static void campaign_free(struct campaign *c)
{
    if (c->call) {
        net_grpc_call_set_close_cb(c->call, NULL);
        net_grpc_call_set_user(c->call, NULL);
    }
    recipe_wait_cancel(c->wait);
    free(c->name.data);
    free(c->value.data);
    free(c->key);
    free(c);
}

/* Ends the campaign: answers the client (code != 0) or resigns when it has left. */
static void campaign_fail(struct campaign *c, int code, const char *msg)
{
    if (c->call)
        net_grpc_call_finish(c->call, code, msg);
    else if (c->key_made && !c->n->stopping)
        propose_resign(c->n, c->key, c->klen, c->rev, ignore_done, NULL);
    campaign_free(c);
}

static void campaign_elected(struct node *n, void *arg, int code, const char *msg)
{
    struct campaign *c = arg;
    c->wait = NULL;
    if (code) {
        campaign_fail(c, code, msg);
        return;
    }
    if (c->call) {
        V3electionpb__CampaignResponse r = V3ELECTIONPB__CAMPAIGN_RESPONSE__INIT;
        V3electionpb__LeaderKey lk = V3ELECTIONPB__LEADER_KEY__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        node_fill_header(n, &h, c->hdr_rev);
        lk.name = c->name;
        lk.key = bd(c->key, c->klen);
        lk.rev = c->rev;
        lk.lease = c->lease;
        r.header = &h;
        r.leader = &lk;
        net_grpc_call_reply_msg(c->call, &r.base);
    }
    campaign_free(c);
}

static void campaign_wait(struct campaign *c)
{
    uint8_t *pfx = malloc(c->name.len + 1);
    if (pfx) {
        if (c->name.len)
            memcpy(pfx, c->name.data, c->name.len);
        pfx[c->name.len] = '/';
        c->wait = recipe_wait_deletes(c->n, pfx, c->name.len + 1, c->rev - 1, campaign_elected, c);
        free(pfx);
    }
    if (!c->wait)
        campaign_fail(c, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
}

static void campaign_proclaimed(struct node *n, void *arg, int code, const char *msg,
                                kv_result *res)
{
    struct campaign *c = arg;
    (void)n;
    c->busy = false;
    if (code) {
        campaign_fail(c, code, msg);
        return;
    }
    if (!((const Etcdserverpb__TxnResponse *)res->msg)->succeeded) {
        c->key_made = false; /* someone else's now: etcd resigns, which deletes nothing */
        campaign_fail(c, GRPC_UNKNOWN, ERR_NOT_LEADER);
        return;
    }
    if (!c->call) {
        campaign_fail(c, GRPC_CANCELLED, NULL);
        return;
    }
    campaign_wait(c);
}

static void campaign_created(struct node *n, void *arg, int code, const char *msg,
                             kv_result *res)
{
    struct campaign *c = arg;
    const Etcdserverpb__TxnResponse *t;
    c->busy = false;
    if (code) {
        campaign_fail(c, code, msg);
        return;
    }
    t = (const Etcdserverpb__TxnResponse *)res->msg;
    c->key_made = true;
    c->rev = c->hdr_rev = txn_rev(res);
    if (!t->succeeded) {
        /* our session already has a key: campaign with it, proclaiming our value */
        const Etcdserverpb__RangeResponse *rr =
            t->n_responses ? t->responses[0]->response_range : NULL;
        if (!rr || rr->n_kvs == 0) {
            campaign_fail(c, GRPC_UNKNOWN, ERR_NOT_LEADER);
            return;
        }
        c->rev = rr->kvs[0]->create_revision;
        if (rr->kvs[0]->value.len != c->value.len ||
            (c->value.len && memcmp(rr->kvs[0]->value.data, c->value.data, c->value.len))) {
            if (!c->call) {
                campaign_fail(c, GRPC_CANCELLED, NULL);
                return;
            }
            c->busy = true;
            if (propose_proclaim(n, c->key, c->klen, c->rev, c->value.data, c->value.len,
                                 c->lease, campaign_proclaimed, c))
                campaign_fail(c, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
            return;
        }
    }
    if (!c->call) {
        campaign_fail(c, GRPC_CANCELLED, NULL);
        return;
    }
    campaign_wait(c);
}

/* txn: if create_revision(key) == 0 then put(key, value, lease) else get(key) */
static void campaign_start(struct campaign *c)
{
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare cmp, *cs[1];
    Etcdserverpb__RequestOp put = ETCDSERVERPB__REQUEST_OP__INIT, get = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *succ[1] = {&put}, *fail[1] = {&get};
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RangeRequest g = ETCDSERVERPB__RANGE_REQUEST__INIT;
    c->key = recipe_session_key(c->name.data, c->name.len, c->lease, &c->klen);
    if (!c->key) {
        campaign_fail(c, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
        return;
    }
    guarded_txn(&t, &cmp, cs, c->key, c->klen, 0);
    p.key = g.key = bd(c->key, c->klen);
    p.value = c->value;
    p.lease = c->lease;
    put.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    put.request_put = &p;
    get.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    get.request_range = &g;
    t.success = succ;
    t.n_success = 1;
    t.failure = fail;
    t.n_failure = 1;
    c->busy = true;
    if (recipe_propose(c->n, RECIPE_TXN, &t.base, campaign_created, c))
        campaign_fail(c, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
}

static void campaign_granted(struct node *n, void *arg, int code, const char *msg,
                             kv_result *res)
{
    struct campaign *c = arg;
    (void)n;
    c->busy = false;
    if (code) {
        campaign_fail(c, code, msg);
        return;
    }
    c->lease = ((const Etcdserverpb__LeaseGrantResponse *)res->msg)->id;
    if (!c->call) {
        campaign_fail(c, GRPC_CANCELLED, NULL);
        return;
    }
    campaign_start(c);
}

static void campaign_close(struct net_grpc_call *call, void *user, int err)
{
    struct campaign *c = user;
    (void)call;
    (void)err;
    if (!c)
        return;
    c->call = NULL;
    if (!c->busy && c->wait) /* waiting for older candidates: give up our key */
        campaign_fail(c, GRPC_CANCELLED, NULL);
    /* with a proposal in flight its completion sees call == NULL and cleans up */
}

static void campaign_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3electionpb__CampaignRequest *req = node_unpack(call, &v3electionpb__campaign_request__descriptor, msg, len);
    struct node_status st;
    struct campaign *c;
    if (!req)
        return;
    if ((st = node_can_serve(n, true)).code) {
        node_reply_status(call, st);
        v3electionpb__campaign_request__free_unpacked(req, NULL);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        node_reply_status(call, ST_NO_MEMORY);
        v3electionpb__campaign_request__free_unpacked(req, NULL);
        return;
    }
    c->n = n;
    c->call = call;
    c->name = (ProtobufCBinaryData){req->name.len, dup_bytes(&req->name)};
    c->value = (ProtobufCBinaryData){req->value.len, dup_bytes(&req->value)};
    c->lease = req->lease;
    v3electionpb__campaign_request__free_unpacked(req, NULL);
    net_grpc_call_set_user(call, c);
    net_grpc_call_set_close_cb(call, campaign_close);
    if (!c->name.data || !c->value.data) {
        campaign_fail(c, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
        return;
    }
    if (c->lease == 0) {
        c->busy = true;
        if (recipe_session_grant(n, campaign_granted, c))
            campaign_fail(c, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
        return;
    }
    campaign_start(c);
}

/* ---- Proclaim, Resign: one guarded txn ---------------------------------------------------- */

struct single { /* a unary call answered when its one proposal is applied */
    struct node *n;
    struct net_grpc_call *call;
    bool proclaim;
};

static void single_close(struct net_grpc_call *call, void *user, int err)
{
    struct single *s = user;
    (void)call;
    (void)err;
    if (s)
        s->call = NULL;
}

static void single_done(struct node *n, void *arg, int code, const char *msg, kv_result *res)
{
    struct single *s = arg;
    if (s->call) {
        net_grpc_call_set_close_cb(s->call, NULL);
        net_grpc_call_set_user(s->call, NULL);
        if (code) {
            net_grpc_call_finish(s->call, code, msg);
        } else if (s->proclaim && !((const Etcdserverpb__TxnResponse *)res->msg)->succeeded) {
            net_grpc_call_finish(s->call, GRPC_UNKNOWN, ERR_NOT_LEADER);
        } else {
            Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
            node_fill_header(n, &h, txn_rev(res));
            if (s->proclaim) {
                V3electionpb__ProclaimResponse r = V3ELECTIONPB__PROCLAIM_RESPONSE__INIT;
                r.header = &h;
                net_grpc_call_reply_msg(s->call, &r.base);
            } else {
                V3electionpb__ResignResponse r = V3ELECTIONPB__RESIGN_RESPONSE__INIT;
                r.header = &h;
                net_grpc_call_reply_msg(s->call, &r.base);
            }
        }
    }
    free(s);
}

static struct single *single_new(struct node *n, struct net_grpc_call *call, bool proclaim)
{
    struct single *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->n = n;
    s->call = call;
    s->proclaim = proclaim;
    net_grpc_call_set_user(call, s);
    net_grpc_call_set_close_cb(call, single_close);
    return s;
}

static void single_abort(struct single *s)
{
    net_grpc_call_set_close_cb(s->call, NULL);
    net_grpc_call_set_user(s->call, NULL);
    node_reply_status(s->call, ST_NO_MEMORY);
    free(s);
}

static void proclaim_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3electionpb__ProclaimRequest *req = node_unpack(call, &v3electionpb__proclaim_request__descriptor, msg, len);
    struct node_status st;
    struct single *s;
    if (!req)
        return;
    if (!req->leader)
        net_grpc_call_finish(call, GRPC_UNKNOWN, ERR_MISSING_LEADER);
    else if ((st = node_can_serve(n, true)).code)
        node_reply_status(call, st);
    else if (!(s = single_new(n, call, true)))
        node_reply_status(call, ST_NO_MEMORY);
    else if (propose_proclaim(n, req->leader->key.data, req->leader->key.len, req->leader->rev,
                              req->value.data, req->value.len, req->leader->lease, single_done, s))
        single_abort(s);
    v3electionpb__proclaim_request__free_unpacked(req, NULL);
}

static void resign_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3electionpb__ResignRequest *req = node_unpack(call, &v3electionpb__resign_request__descriptor, msg, len);
    struct node_status st;
    struct single *s;
    if (!req)
        return;
    if (!req->leader)
        net_grpc_call_finish(call, GRPC_UNKNOWN, ERR_MISSING_LEADER);
    else if ((st = node_can_serve(n, true)).code)
        node_reply_status(call, st);
    else if (!(s = single_new(n, call, false)))
        node_reply_status(call, ST_NO_MEMORY);
    else if (propose_resign(n, req->leader->key.data, req->leader->key.len, req->leader->rev,
                            single_done, s))
        single_abort(s);
    v3electionpb__resign_request__free_unpacked(req, NULL);
}

/* ---- Leader: a linearizable read of the oldest key under <name>/ ---------------------------- */

static uint8_t *name_prefix(const ProtobufCBinaryData *name, size_t *len)
{
    uint8_t *p = malloc(name->len + 1);
    if (!p)
        return NULL;
    if (name->len)
        memcpy(p, name->data, name->len);
    p[name->len] = '/';
    *len = name->len + 1;
    return p;
}

static void serve_leader(struct node *n, struct read_req *r, struct node_status st)
{
    V3electionpb__LeaderRequest *req = r->arg;
    if (r->call && st.code) {
        node_reply_status(r->call, st);
    } else if (r->call) {
        size_t plen;
        uint8_t *pfx = name_prefix(&req->name, &plen);
        kv_result res = {0};
        int rc = pfx ? recipe_read_edge(n, pfx, plen, true, 0, &res) : KV_ENOMEM;
        const Etcdserverpb__RangeResponse *rr = rc ? NULL : (const Etcdserverpb__RangeResponse *)res.msg;
        if (rc) {
            kv_status_msg m = kv_etcd_status(rc);
            net_grpc_call_finish(r->call, m.grpc_code, m.message);
        } else if (rr->n_kvs == 0) {
            net_grpc_call_finish(r->call, GRPC_UNKNOWN, ERR_NO_LEADER);
        } else {
            V3electionpb__LeaderResponse lr = V3ELECTIONPB__LEADER_RESPONSE__INIT;
            Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
            node_fill_header(n, &h, rr->header->revision);
            lr.header = &h;
            lr.kv = rr->kvs[0];
            net_grpc_call_reply_msg(r->call, &lr.base);
        }
        kv_result_free(&res);
        free(pfx);
    }
    v3electionpb__leader_request__free_unpacked(req, NULL);
}

static void leader_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3electionpb__LeaderRequest *req = node_unpack(call, &v3electionpb__leader_request__descriptor, msg, len);
    struct node_status st;
    if (!req)
        return;
    if ((st = node_can_serve(n, false)).code) {
        node_reply_status(call, st);
        v3electionpb__leader_request__free_unpacked(req, NULL);
        return;
    }
    node_read(n, call, serve_leader, req);
}

int svc_election_register(struct node *n)
{
    return net_grpc_server_register(n->grpc, "/v3electionpb.Election/Campaign", NET_GRPC_UNARY, campaign_h, n) ||
           net_grpc_server_register(n->grpc, "/v3electionpb.Election/Proclaim", NET_GRPC_UNARY, proclaim_h, n) ||
           net_grpc_server_register(n->grpc, "/v3electionpb.Election/Leader", NET_GRPC_UNARY, leader_h, n) ||
           net_grpc_server_register(n->grpc, "/v3electionpb.Election/Resign", NET_GRPC_UNARY, resign_h, n) ||
           svc_observe_register(n);
}

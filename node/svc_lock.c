/* svc_lock — etcd's v3lock service (Lock, Unlock), served as etcd's server does it: the
 * clientv3/concurrency Mutex recipe on the store. A waiter's key is <name>/<lease in hex>
 * (created with the lease only if its create revision is 0); the holder is the key under
 * <name>/ with the lowest create revision, and Lock returns once every key created
 * before its own is deleted. Unlock deletes the key. */
#include "node/recipe.h"

#include <stdlib.h>
#include <string.h>

#include "v3lock.pb-c.h"

static const char ERR_SESSION_EXPIRED[] = "mutex: session is expired";

struct lock_op {
    struct node *n;
    struct net_grpc_call *call;      /* NULL once the client went away */
    uint8_t *name;
    size_t nlen;
    int64_t lease;
    uint8_t *key;
    size_t klen;
    int64_t rev;
    bool key_made;
    bool busy;
    struct recipe_wait *wait;
};

static ProtobufCBinaryData bd(const uint8_t *p, size_t len)
{
    return (ProtobufCBinaryData){len, (uint8_t *)p};
}

static void ignore_done(struct node *n, void *arg, int code, const char *msg, kv_result *res)
{
    (void)n, (void)arg, (void)code, (void)msg, (void)res;
}

static int propose_delete(struct node *n, const uint8_t *key, size_t klen, recipe_done_fn done,
                          void *arg)
{
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = bd(key, klen);
    return recipe_propose(n, RECIPE_DELETE, &d.base, done, arg);
}

static void lock_free(struct lock_op *l)
{
    if (l->call) {
        net_grpc_call_set_close_cb(l->call, NULL);
        net_grpc_call_set_user(l->call, NULL);
    }
    recipe_wait_cancel(l->wait);
    free(l->name);
    free(l->key);
    free(l);
}

/* Ends the attempt: answers the client, or (it left) gives the key up as Mutex.Unlock. */
static void lock_fail(struct lock_op *l, int code, const char *msg)
{
    if (l->call)
        net_grpc_call_finish(l->call, code, msg);
    else if (l->key_made && !l->n->stopping)
        propose_delete(l->n, l->key, l->klen, ignore_done, NULL);
    lock_free(l);
}

static void lock_reply(struct lock_op *l, int64_t rev)
{
    V3lockpb__LockResponse r = V3LOCKPB__LOCK_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    node_fill_header(l->n, &h, rev);
    r.header = &h;
    r.key = bd(l->key, l->klen);
    net_grpc_call_reply_msg(l->call, &r.base);
    lock_free(l);
}

/* Every older waiter is gone: check that our key survived (the session may have expired). */
static void lock_turn(struct node *n, void *arg, int code, const char *msg)
{
    struct lock_op *l = arg;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    const Etcdserverpb__RangeResponse *rr;
    kv_result res = {0};
    int rc;
    l->wait = NULL;
    if (code) {
        lock_fail(l, code, msg);
        return;
    }
    q.key = bd(l->key, l->klen);
    if ((rc = kv_range(n->kv, &q, &res)) != 0 || res.err) {
        kv_status_msg m = kv_etcd_status(rc ? rc : res.err);
        kv_result_free(&res);
        lock_fail(l, m.grpc_code, m.message);
        return;
    }
    rr = (const Etcdserverpb__RangeResponse *)res.msg;
    if (rr->n_kvs == 0) {
        kv_result_free(&res);
        l->key_made = false;
        lock_fail(l, GRPC_UNKNOWN, ERR_SESSION_EXPIRED);
        return;
    }
    lock_reply(l, rr->header->revision);
    kv_result_free(&res);
}

static void lock_acquired_try(struct node *n, void *arg, int code, const char *msg,
                              kv_result *res)
{
    struct lock_op *l = arg;
    const Etcdserverpb__TxnResponse *t;
    const Etcdserverpb__RangeResponse *owner;
    uint8_t *pfx;
    l->busy = false;
    if (code) {
        lock_fail(l, code, msg);
        return;
    }
    t = (const Etcdserverpb__TxnResponse *)res->msg;
    l->key_made = true;
    l->rev = t->header->revision;
    if (!t->succeeded) { /* this session already waits or holds: reuse its key */
        const Etcdserverpb__RangeResponse *mine =
            t->n_responses > 0 ? t->responses[0]->response_range : NULL;
        if (mine && mine->n_kvs)
            l->rev = mine->kvs[0]->create_revision;
    }
    if (!l->call) {
        lock_fail(l, GRPC_CANCELLED, NULL);
        return;
    }
    owner = t->n_responses > 1 ? t->responses[1]->response_range : NULL;
    if (!owner || owner->n_kvs == 0 || owner->kvs[0]->create_revision == l->rev) {
        lock_reply(l, t->header->revision);
        return;
    }
    pfx = malloc(l->nlen + 1);
    if (pfx) {
        if (l->nlen)
            memcpy(pfx, l->name, l->nlen);
        pfx[l->nlen] = '/';
        l->wait = recipe_wait_deletes(n, pfx, l->nlen + 1, l->rev - 1, lock_turn, l);
        free(pfx);
    }
    if (!l->wait)
        lock_fail(l, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
}

/* Mutex.tryAcquire: if create_revision(key) == 0 then put(key, "", lease), get(owner)
 * else get(key), get(owner); owner = the first-created key under <name>/. */
static void lock_try(struct lock_op *l)
{
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT, *cs[1] = {&c};
    Etcdserverpb__RequestOp put = ETCDSERVERPB__REQUEST_OP__INIT, get = ETCDSERVERPB__REQUEST_OP__INIT,
                            own = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *succ[2] = {&put, &own}, *fail[2] = {&get, &own};
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RangeRequest g = ETCDSERVERPB__RANGE_REQUEST__INIT, o = ETCDSERVERPB__RANGE_REQUEST__INIT;
    uint8_t *pfx = malloc(l->nlen + 1), *end = malloc(l->nlen + 2);
    l->key = recipe_session_key(l->name, l->nlen, l->lease, &l->klen);
    if (!l->key || !pfx || !end) {
        free(pfx);
        free(end);
        lock_fail(l, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
        return;
    }
    if (l->nlen)
        memcpy(pfx, l->name, l->nlen);
    pfx[l->nlen] = '/';
    c.key = bd(l->key, l->klen);
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    c.create_revision = 0;
    p.key = g.key = bd(l->key, l->klen);
    p.lease = l->lease;
    o.key = bd(pfx, l->nlen + 1);
    o.range_end = bd(end, recipe_prefix_end(pfx, l->nlen + 1, end));
    o.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
    o.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    o.limit = 1;
    put.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    put.request_put = &p;
    get.request_case = own.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    get.request_range = &g;
    own.request_range = &o;
    t.compare = cs;
    t.n_compare = 1;
    t.success = succ;
    t.n_success = 2;
    t.failure = fail;
    t.n_failure = 2;
    l->busy = true;
    if (recipe_propose(l->n, RECIPE_TXN, &t.base, lock_acquired_try, l)) {
        l->busy = false;
        lock_fail(l, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
    }
    free(pfx);
    free(end);
}

static void lock_granted(struct node *n, void *arg, int code, const char *msg, kv_result *res)
{
    struct lock_op *l = arg;
    (void)n;
    l->busy = false;
    if (code) {
        lock_fail(l, code, msg);
        return;
    }
    l->lease = ((const Etcdserverpb__LeaseGrantResponse *)res->msg)->id;
    if (!l->call) {
        lock_fail(l, GRPC_CANCELLED, NULL);
        return;
    }
    lock_try(l);
}

static void lock_close(struct net_grpc_call *call, void *user, int err)
{
    struct lock_op *l = user;
    (void)call;
    (void)err;
    if (!l)
        return;
    l->call = NULL;
    if (!l->busy && l->wait) /* waiting behind older holders: give our key up */
        lock_fail(l, GRPC_CANCELLED, NULL);
}

static void lock_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3lockpb__LockRequest *req = node_unpack(call, &v3lockpb__lock_request__descriptor, msg, len);
    struct node_status st;
    struct lock_op *l;
    if (!req)
        return;
    if ((st = node_can_serve(n, true)).code) {
        node_reply_status(call, st);
        v3lockpb__lock_request__free_unpacked(req, NULL);
        return;
    }
    l = calloc(1, sizeof(*l));
    if (l && !(l->name = malloc(req->name.len + 1))) {
        free(l);
        l = NULL;
    }
    if (!l) {
        node_reply_status(call, ST_NO_MEMORY);
        v3lockpb__lock_request__free_unpacked(req, NULL);
        return;
    }
    l->n = n;
    l->call = call;
    if (req->name.len)
        memcpy(l->name, req->name.data, req->name.len);
    l->nlen = req->name.len;
    l->lease = req->lease;
    v3lockpb__lock_request__free_unpacked(req, NULL);
    net_grpc_call_set_user(call, l);
    net_grpc_call_set_close_cb(call, lock_close);
    if (l->lease == 0) {
        l->busy = true;
        if (recipe_session_grant(n, lock_granted, l)) {
            l->busy = false;
            lock_fail(l, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
        }
        return;
    }
    lock_try(l);
}

/* ---- Unlock: delete the key ------------------------------------------------------------- */

struct unlock_op {
    struct net_grpc_call *call;
};

static void unlock_close(struct net_grpc_call *call, void *user, int err)
{
    struct unlock_op *u = user;
    (void)call;
    (void)err;
    if (u)
        u->call = NULL;
}

static void unlock_done(struct node *n, void *arg, int code, const char *msg, kv_result *res)
{
    struct unlock_op *u = arg;
    if (u->call) {
        net_grpc_call_set_close_cb(u->call, NULL);
        net_grpc_call_set_user(u->call, NULL);
        if (code) {
            net_grpc_call_finish(u->call, code, msg);
        } else {
            V3lockpb__UnlockResponse r = V3LOCKPB__UNLOCK_RESPONSE__INIT;
            Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
            const Etcdserverpb__DeleteRangeResponse *d = (const Etcdserverpb__DeleteRangeResponse *)res->msg;
            node_fill_header(n, &h, d->header ? d->header->revision : 0);
            r.header = &h;
            net_grpc_call_reply_msg(u->call, &r.base);
        }
    }
    free(u);
}

static void unlock_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3lockpb__UnlockRequest *req = node_unpack(call, &v3lockpb__unlock_request__descriptor, msg, len);
    struct node_status st;
    struct unlock_op *u;
    if (!req)
        return;
    if (req->key.len == 0) {
        node_reply_status(call, ST_EMPTY_KEY);
    } else if ((st = node_can_serve(n, true)).code) {
        node_reply_status(call, st);
    } else if (!(u = calloc(1, sizeof(*u)))) {
        node_reply_status(call, ST_NO_MEMORY);
    } else {
        u->call = call;
        net_grpc_call_set_user(call, u);
        net_grpc_call_set_close_cb(call, unlock_close);
        if (propose_delete(n, req->key.data, req->key.len, unlock_done, u)) {
            net_grpc_call_set_close_cb(call, NULL);
            net_grpc_call_set_user(call, NULL);
            node_reply_status(call, ST_NO_MEMORY);
            free(u);
        }
    }
    v3lockpb__unlock_request__free_unpacked(req, NULL);
}

int svc_lock_register(struct node *n)
{
    return net_grpc_server_register(n->grpc, "/v3lockpb.Lock/Lock", NET_GRPC_UNARY, lock_h, n) ||
           net_grpc_server_register(n->grpc, "/v3lockpb.Lock/Unlock", NET_GRPC_UNARY, unlock_h, n);
}

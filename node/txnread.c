/* txnread — read-only Txns (no put or delete in any branch, at any depth) served like a
 * Range, without going through Raft: linearizable after a ReadIndex round, or from the
 * local store when every op is a serializable Range (etcd's isTxnReadonly and
 * isTxnSerializable, v3_server.go).
 *
 * The compares and ranges are evaluated with kv_range calls one after another inside one
 * callback of the loop. The loop is the store's only writer and commits only inside its
 * own turn, so every one of those reads sees the same committed revision: the txn is
 * evaluated against one consistent state, as etcd's read view gives it. */
#include "node/node_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- classification ------------------------------------------------------------------ */

static bool ops_readonly(Etcdserverpb__RequestOp *const *ops, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            return false;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            if (!node_txn_readonly(ops[i]->request_txn))
                return false;
            break;
        default:
            break;
        }
    }
    return true;
}

bool node_txn_readonly(const Etcdserverpb__TxnRequest *t)
{
    return ops_readonly(t->success, t->n_success) && ops_readonly(t->failure, t->n_failure);
}

/* etcd's rule: every op of both branches is a Range with serializable set (a nested txn
 * makes the whole txn linearizable; a txn of compares only is serializable). */
bool node_txn_serializable(const Etcdserverpb__TxnRequest *t)
{
    size_t i;
    for (i = 0; i < t->n_success; i++)
        if (t->success[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE ||
            !t->success[i]->request_range->serializable)
            return false;
    for (i = 0; i < t->n_failure; i++)
        if (t->failure[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE ||
            !t->failure[i]->request_range->serializable)
            return false;
    return true;
}

/* ---- evaluation ------------------------------------------------------------------------ */

/* Everything a response points into: kv_range results and the structs built here. */
struct tr_pool {
    kv_result *res;
    size_t n_res, cap_res;
    void **blocks;
    size_t n_blocks, cap_blocks;
    kv_rev_t rev;
    struct node *n;
};

static void *pool_alloc(struct tr_pool *p, size_t size)
{
    void *b;
    if (p->n_blocks == p->cap_blocks) {
        size_t cap = p->cap_blocks ? 2 * p->cap_blocks : 16;
        void **nb = realloc(p->blocks, cap * sizeof(*nb));
        if (!nb)
            return NULL;
        p->blocks = nb;
        p->cap_blocks = cap;
    }
    b = calloc(1, size ? size : 1);
    if (b)
        p->blocks[p->n_blocks++] = b;
    return b;
}

/* A kv_range into the pool. Returns 0 with *out (NULL when out_err was set: a client-visible
 * error such as a compacted revision) or a KV_E failure code. */
static int pool_range(struct tr_pool *p, const Etcdserverpb__RangeRequest *q,
                      Etcdserverpb__RangeResponse **out, int *out_err)
{
    kv_result r = {0};
    int rc;
    *out = NULL;
    *out_err = 0;
    if (p->n_res == p->cap_res) {
        size_t cap = p->cap_res ? 2 * p->cap_res : 8;
        kv_result *nr = realloc(p->res, cap * sizeof(*nr));
        if (!nr)
            return KV_ENOMEM;
        p->res = nr;
        p->cap_res = cap;
    }
    if ((rc = kv_range(p->n->kv, q, &r)) != 0)
        return rc;
    p->res[p->n_res++] = r;
    if (r.err) {
        *out_err = r.err;
        return 0;
    }
    *out = (Etcdserverpb__RangeResponse *)r.msg;
    return 0;
}

static void pool_free(struct tr_pool *p)
{
    size_t i;
    for (i = 0; i < p->n_res; i++)
        kv_result_free(&p->res[i]);
    for (i = 0; i < p->n_blocks; i++)
        free(p->blocks[i]);
    free(p->res);
    free(p->blocks);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return cmp_i64((int64_t)al, (int64_t)bl);
}

/* etcd's compareKV; kv NULL is the zero KeyValue of a missing key. */
static bool compare_kv(const Etcdserverpb__Compare *c, const Mvccpb__KeyValue *kv)
{
    int res = 0;
    int64_t want = 0;
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE)
            res = cmp_bytes(kv ? kv->value.data : NULL, kv ? kv->value.len : 0, c->value.data,
                            c->value.len);
        else
            res = cmp_bytes(kv ? kv->value.data : NULL, kv ? kv->value.len : 0, NULL, 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
            want = c->create_revision;
        res = cmp_i64(kv ? kv->create_revision : 0, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
            want = c->mod_revision;
        res = cmp_i64(kv ? kv->mod_revision : 0, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION)
            want = c->version;
        res = cmp_i64(kv ? kv->version : 0, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE)
            want = c->lease;
        res = cmp_i64(kv ? kv->lease : 0, want);
        break;
    default:
        break;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
        return res == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
        return res != 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
        return res > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS:
        return res < 0;
    default:
        return true;
    }
}

/* etcd's applyCompare: every key in [key, range_end) must pass; no key compares the zero
 * KeyValue, except that a VALUE compare on nothing fails. */
static int apply_compare(struct tr_pool *p, const Etcdserverpb__Compare *c, bool *ok)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    kv_result r = {0};
    const Etcdserverpb__RangeResponse *rr;
    size_t i;
    int rc;
    q.key = c->key;
    q.range_end = c->range_end;
    if ((rc = kv_range(p->n->kv, &q, &r)) != 0)
        return rc;
    if (r.err) {
        rc = r.err;
        kv_result_free(&r);
        return rc;
    }
    rr = (const Etcdserverpb__RangeResponse *)r.msg;
    if (rr->n_kvs == 0) {
        *ok = c->target != ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE && compare_kv(c, NULL);
    } else {
        *ok = true;
        for (i = 0; i < rr->n_kvs && *ok; i++)
            *ok = compare_kv(c, rr->kvs[i]);
    }
    kv_result_free(&r);
    return 0;
}

static Etcdserverpb__ResponseHeader *rev_header(struct tr_pool *p)
{
    Etcdserverpb__ResponseHeader *h = pool_alloc(p, sizeof(*h));
    if (h) {
        etcdserverpb__response_header__init(h);
        h->revision = p->rev;
    }
    return h;
}

/* Evaluates t into resp. *cerr receives a client-visible KV_E code (the whole txn fails
 * with it, as etcd's checkRequests does); the return value is a failure code. */
static int eval_txn(struct tr_pool *p, const Etcdserverpb__TxnRequest *t,
                    Etcdserverpb__TxnResponse *resp, int *cerr)
{
    Etcdserverpb__RequestOp **ops;
    bool ok = true;
    size_t i, n;
    int rc;
    for (i = 0; i < t->n_compare && ok; i++)
        if ((rc = apply_compare(p, t->compare[i], &ok)) != 0) {
            if (rc < KV_EEMPTYKEY)
                return rc;
            *cerr = rc;
            return 0;
        }
    ops = ok ? t->success : t->failure;
    n = ok ? t->n_success : t->n_failure;
    resp->succeeded = ok;
    if (n) {
        resp->responses = pool_alloc(p, n * sizeof(*resp->responses));
        if (!resp->responses)
            return KV_ENOMEM;
        resp->n_responses = n;
    }
    for (i = 0; i < n; i++) {
        Etcdserverpb__ResponseOp *ro = pool_alloc(p, sizeof(*ro));
        if (!ro)
            return KV_ENOMEM;
        etcdserverpb__response_op__init(ro);
        resp->responses[i] = ro;
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
            Etcdserverpb__RangeResponse *rr;
            if ((rc = pool_range(p, ops[i]->request_range, &rr, cerr)) != 0)
                return rc;
            if (*cerr)
                return 0;
            if (!(rr->header = rev_header(p))) /* nested headers carry the revision only */
                return KV_ENOMEM;
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            ro->response_range = rr;
        } else if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) {
            Etcdserverpb__TxnResponse *tr = pool_alloc(p, sizeof(*tr));
            if (!tr)
                return KV_ENOMEM;
            etcdserverpb__txn_response__init(tr);
            if ((rc = eval_txn(p, ops[i]->request_txn, tr, cerr)) != 0 || *cerr)
                return rc;
            if (!(tr->header = rev_header(p)))
                return KV_ENOMEM;
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
            ro->response_txn = tr;
        }
    }
    return 0;
}

void node_txn_read_reply(struct node *n, struct net_grpc_call *call,
                         const Etcdserverpb__TxnRequest *t)
{
    struct tr_pool p = {.n = n};
    Etcdserverpb__TxnResponse resp = ETCDSERVERPB__TXN_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    int cerr = 0, rc;
    if (!call)
        return;
    p.rev = kv_current_revision(n->kv);
    rc = eval_txn(&p, t, &resp, &cerr);
    if (rc || cerr) {
        kv_status_msg m = kv_etcd_status(rc ? rc : cerr);
        net_grpc_call_finish(call, m.grpc_code, m.message);
    } else {
        node_fill_header(n, &h, p.rev);
        resp.header = &h;
        net_grpc_call_reply_msg(call, &resp.base);
    }
    pool_free(&p);
}

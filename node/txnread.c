/* txnread — read-only Txns (no put or delete in any branch, at any depth) served like a
 * Range, without going through Raft: linearizable after a ReadIndex round, or from the
 * local store when every op is a serializable Range (etcd's isTxnReadonly and
 * isTxnSerializable, v3_server.go).
 *
 * kv_txn_read evaluates the txn as kv_apply would, over one read transaction of committed
 * data, so the answer is the one the same txn would get through Raft at that revision. */
#include "node/node_int.h"


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

void node_txn_read_reply(struct node *n, struct net_grpc_call *call,
                         const Etcdserverpb__TxnRequest *t)
{
    kv_result r = {0};
    int rc;
    if (!call)
        return;
    rc = kv_txn_read(n->kv, t, &r);
    if (rc || r.err) {
        kv_status_msg m = kv_etcd_status(rc ? rc : r.err);
        net_grpc_call_finish(call, m.grpc_code, m.message);
    } else {
        Etcdserverpb__TxnResponse *resp = (Etcdserverpb__TxnResponse *)r.msg;
        node_fill_header(n, resp->header, resp->header->revision);
        net_grpc_call_reply_msg(call, &resp->base);
    }
    kv_result_free(&r);
}

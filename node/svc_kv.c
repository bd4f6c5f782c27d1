/* svc_kv — etcd's KV service: Range and read-only Txn (linearizable by ReadIndex, or
 * serializable from the local store), Put, DeleteRange, Txn and Compact (proposed through
 * Raft). */
#include "node/node_int.h"

#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/validate.h"

/* Request field numbers in plinthpb.Request. */
enum { F_PUT = 2, F_DELETE = 3, F_TXN = 4, F_COMPACT = 5, F_LEASE_GRANT = 6, F_LEASE_REVOKE = 7,
       F_ALARM = 9 };

static void answer_kv_status(struct net_grpc_call *call, int err)
{
    kv_status_msg m = kv_etcd_status(err);
    net_grpc_call_finish(call, m.grpc_code, m.message);
}

/* ---- Range ------------------------------------------------------------------------------- */

static void serve_range(struct node *n, struct read_req *r, struct node_status st)
{
    Etcdserverpb__RangeRequest *req = r->arg;
    if (r->call) {
        if (st.code) {
            node_reply_status(r->call, st);
        } else {
            kv_result res = {0};
            int rc = kv_range(n->kv, req, &res);
            if (rc)
                answer_kv_status(r->call, rc);
            else
                node_reply_result(n, r->call, &res);
            kv_result_free(&res);
        }
    }
    etcdserverpb__range_request__free_unpacked(req, NULL);
}

static void kv_range_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__RangeRequest *req = node_unpack(call, &etcdserverpb__range_request__descriptor, msg, len);
    struct node_status st;
    int rc;
    if (!req)
        return;
    st = node_check_range(req);
    if (st.code == 0 && (rc = kv_check_range(n->kv, req)) != 0) {
        answer_kv_status(call, rc);
        etcdserverpb__range_request__free_unpacked(req, NULL);
        return;
    }
    if (st.code == 0 && !req->serializable)
        st = node_can_serve(n, false);
    if (st.code) {
        node_reply_status(call, st);
        etcdserverpb__range_request__free_unpacked(req, NULL);
        return;
    }
    if (req->serializable) {
        struct read_req r = {.call = call, .arg = req};
        serve_range(n, &r, ST_OK);
        return;
    }
    node_read(n, call, serve_range, req);
}

/* ---- writes ---------------------------------------------------------------------------- */

/* Proposes the client's request bytes wrapped in a plinthpb.Request; the answer goes out
 * when the entry is applied on this member. */
void node_propose_client(struct node *n, struct net_grpc_call *call, int field, const uint8_t *msg,
                         size_t len)
{
    uint64_t id;
    size_t elen;
    uint8_t *env;
    if (len > n->cfg.max_request_bytes) {
        node_reply_status(call, ST_REQUEST_TOO_LARGE);
        return;
    }
    /* etcd: too far behind in applying, refuse new work (maxGapBetweenApplyAndCommitIndex) */
    if (raft_commit_index(n->raft) > n->applied + 5000) {
        node_reply_status(call, ST_TOO_MANY_REQUESTS);
        return;
    }
    id = node_new_request_id(n);
    env = node_envelope(id, field, msg, len, &elen);
    if (!env) {
        node_reply_status(call, ST_NO_MEMORY);
        return;
    }
    node_propose(n, id, env, elen, call, node_reply_done, NULL);
}

/* The quota check etcd's leader makes before proposing a write that grows the store; on
 * refusal the NOSPACE alarm is raised through Raft. Returns true when refused. */
bool node_quota_refuse(struct node *n, struct net_grpc_call *call, const Plinthpb__Request *req)
{
    uint64_t cost = kv_request_cost(req);
    if (cost == 0 || kv_quota_check(n->kv, cost) == 0)
        return false;
    if (!n->nospace_raised) {
        Etcdserverpb__AlarmRequest a = ETCDSERVERPB__ALARM_REQUEST__INIT;
        uint8_t buf[64];
        size_t l;
        a.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
        a.memberid = n->id;
        a.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
        l = etcdserverpb__alarm_request__pack(&a, buf);
        node_propose_client(n, NULL, F_ALARM, buf, l);
        n->nospace_raised = true;
        node_log(n, LOG_WARN, "backend quota exceeded: raising the NOSPACE alarm");
    }
    node_reply_status(call, ST_NO_SPACE);
    return true;
}

static bool write_prelude(struct node *n, struct net_grpc_call *call, Plinthpb__Request *req)
{
    struct node_status st = node_can_serve(n, true);
    int rc;
    if (st.code) {
        node_reply_status(call, st);
        return false;
    }
    if ((rc = kv_check_request(n->kv, req)) != 0) {
        answer_kv_status(call, rc);
        return false;
    }
    if (node_quota_refuse(n, call, req))
        return false;
    return true;
}

static void kv_put_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    Etcdserverpb__PutRequest *req = node_unpack(call, &etcdserverpb__put_request__descriptor, msg, len);
    struct node_status st;
    if (!req)
        return;
    st = node_check_put(req);
    r.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    r.put = req;
    if (st.code)
        node_reply_status(call, st);
    else if (write_prelude(n, call, &r))
        node_propose_client(n, call, F_PUT, msg, len);
    etcdserverpb__put_request__free_unpacked(req, NULL);
}

static void kv_delete_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    Etcdserverpb__DeleteRangeRequest *req = node_unpack(call, &etcdserverpb__delete_range_request__descriptor, msg, len);
    struct node_status st;
    if (!req)
        return;
    st = node_check_delete(req);
    r.request_case = PLINTHPB__REQUEST__REQUEST_DELETE_RANGE;
    r.delete_range = req;
    if (st.code)
        node_reply_status(call, st);
    else if (write_prelude(n, call, &r))
        node_propose_client(n, call, F_DELETE, msg, len);
    etcdserverpb__delete_range_request__free_unpacked(req, NULL);
}

static void serve_txn(struct node *n, struct read_req *r, struct node_status st)
{
    Etcdserverpb__TxnRequest *req = r->arg;
    if (r->call) {
        if (st.code)
            node_reply_status(r->call, st);
        else
            node_txn_read_reply(n, r->call, req);
    }
    etcdserverpb__txn_request__free_unpacked(req, NULL);
}

/* A txn with no put or delete anywhere is a read (etcd's isTxnReadonly): answered from
 * the local store after a ReadIndex round, or at once when it is serializable. Takes req. */
static void read_txn(struct node *n, struct net_grpc_call *call, Etcdserverpb__TxnRequest *req,
                     const Plinthpb__Request *r)
{
    struct node_status st = ST_OK;
    int rc;
    if ((rc = kv_check_request(n->kv, r)) != 0) {
        answer_kv_status(call, rc);
        etcdserverpb__txn_request__free_unpacked(req, NULL);
        return;
    }
    if (node_txn_serializable(req)) {
        serve_txn(n, &(struct read_req){.call = call, .arg = req}, ST_OK);
        return;
    }
    if ((st = node_can_serve(n, false)).code) {
        node_reply_status(call, st);
        etcdserverpb__txn_request__free_unpacked(req, NULL);
        return;
    }
    node_read(n, call, serve_txn, req);
}

static void kv_txn_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    Etcdserverpb__TxnRequest *req = node_unpack(call, &etcdserverpb__txn_request__descriptor, msg, len);
    struct node_status st;
    if (!req)
        return;
    st = node_check_txn(req, n->cfg.max_txn_ops);
    r.request_case = PLINTHPB__REQUEST__REQUEST_TXN;
    r.txn = req;
    if (st.code == 0 && node_txn_readonly(req)) {
        read_txn(n, call, req, &r);
        return;
    }
    if (st.code)
        node_reply_status(call, st);
    else if (write_prelude(n, call, &r))
        node_propose_client(n, call, F_TXN, msg, len);
    etcdserverpb__txn_request__free_unpacked(req, NULL);
}

static void kv_compact_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    Etcdserverpb__CompactionRequest *req = node_unpack(call, &etcdserverpb__compaction_request__descriptor, msg, len);
    if (!req)
        return;
    r.request_case = PLINTHPB__REQUEST__REQUEST_COMPACTION;
    r.compaction = req;
    if (write_prelude(n, call, &r))
        node_propose_client(n, call, F_COMPACT, msg, len);
    etcdserverpb__compaction_request__free_unpacked(req, NULL);
}

int svc_kv_register(struct node *n)
{
    return net_grpc_server_register(n->grpc, "/etcdserverpb.KV/Range", NET_GRPC_UNARY, kv_range_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.KV/Put", NET_GRPC_UNARY, kv_put_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.KV/DeleteRange", NET_GRPC_UNARY, kv_delete_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.KV/Txn", NET_GRPC_UNARY, kv_txn_h, n) ||
           net_grpc_server_register(n->grpc, "/etcdserverpb.KV/Compact", NET_GRPC_UNARY, kv_compact_h, n);
}

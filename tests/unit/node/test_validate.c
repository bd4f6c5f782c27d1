/* test_validate — request checks the server makes before proposing, with etcd's errors. */
#include "tests/lib/testlib.h"

#include <string.h>

#include "node/validate.h"

#define B(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

static void empty_keys(void **state)
{
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    (void)state;
    assert_string_equal(node_check_range(&r).msg, "etcdserver: key is not provided");
    assert_int_equal(node_check_put(&p).code, GRPC_INVALID_ARGUMENT);
    assert_int_equal(node_check_delete(&d).code, GRPC_INVALID_ARGUMENT);
    r.key = B("a");
    p.key = B("a");
    d.key = B("a");
    assert_int_equal(node_check_range(&r).code, GRPC_OK);
    assert_int_equal(node_check_put(&p).code, GRPC_OK);
    assert_int_equal(node_check_delete(&d).code, GRPC_OK);
    r.sort_target = 9;
    assert_string_equal(node_check_range(&r).msg, "etcdserver: invalid sort option");
}

static void ignore_flags(void **state)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    (void)state;
    p.key = B("k");
    p.value = B("v");
    p.ignore_value = 1;
    assert_string_equal(node_check_put(&p).msg, "etcdserver: value is provided");
    p.value = B("");
    p.ignore_lease = 1;
    p.lease = 5;
    assert_string_equal(node_check_put(&p).msg, "etcdserver: lease is provided");
    p.lease = 0;
    assert_int_equal(node_check_put(&p).code, GRPC_OK);
}

static Etcdserverpb__RequestOp *put_op(Etcdserverpb__RequestOp *op, Etcdserverpb__PutRequest *p,
                                       const char *k)
{
    etcdserverpb__request_op__init(op);
    etcdserverpb__put_request__init(p);
    p->key = B(k);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = p;
    return op;
}

static Etcdserverpb__RequestOp *del_op(Etcdserverpb__RequestOp *op,
                                       Etcdserverpb__DeleteRangeRequest *d, const char *k,
                                       const char *end)
{
    etcdserverpb__request_op__init(op);
    etcdserverpb__delete_range_request__init(d);
    d->key = B(k);
    d->range_end = B(end);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op->request_delete_range = d;
    return op;
}

static void txn_rules(void **state)
{
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT, inner = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp ops[8], *succ[8], *fail[8];
    Etcdserverpb__PutRequest puts[8];
    Etcdserverpb__DeleteRangeRequest dels[4];
    (void)state;

    succ[0] = put_op(&ops[0], &puts[0], "a");
    succ[1] = put_op(&ops[1], &puts[1], "b");
    t.success = succ;
    t.n_success = 2;
    assert_int_equal(node_check_txn(&t, 128).code, GRPC_OK);
    assert_string_equal(node_check_txn(&t, 1).msg, "etcdserver: too many operations in txn request");

    succ[1] = put_op(&ops[1], &puts[1], "a");
    assert_string_equal(node_check_txn(&t, 128).msg, "etcdserver: duplicate key given in txn request");

    /* put inside a deleted range of the same branch */
    succ[1] = del_op(&ops[1], &dels[0], "0", "z");
    assert_int_equal(node_check_txn(&t, 128).code, GRPC_INVALID_ARGUMENT);
    succ[1] = del_op(&ops[1], &dels[0], "b", "z");
    assert_int_equal(node_check_txn(&t, 128).code, GRPC_OK);

    /* the same key in success and failure is fine */
    fail[0] = put_op(&ops[2], &puts[2], "a");
    t.failure = fail;
    t.n_failure = 1;
    assert_int_equal(node_check_txn(&t, 128).code, GRPC_OK);

    /* a nested txn putting a key the outer level also puts */
    inner.success = &succ[3];
    succ[3] = put_op(&ops[3], &puts[3], "a");
    inner.n_success = 1;
    etcdserverpb__request_op__init(&ops[4]);
    ops[4].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    ops[4].request_txn = &inner;
    succ[1] = &ops[4];
    assert_int_equal(node_check_txn(&t, 128).code, GRPC_INVALID_ARGUMENT);
    puts[3].key = B("q");
    assert_int_equal(node_check_txn(&t, 128).code, GRPC_OK);
    /* an empty key deep inside */
    puts[3].key = B("");
    assert_string_equal(node_check_txn(&t, 128).msg, "etcdserver: key is not provided");
}

static void lease_ttl(void **state)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    (void)state;
    g.ttl = 60;
    assert_int_equal(node_check_lease_grant(&g).code, GRPC_OK);
    g.ttl = 9000000001LL;
    assert_string_equal(node_check_lease_grant(&g).msg, "etcdserver: too large lease TTL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_keys),
        cmocka_unit_test(ignore_flags),
        cmocka_unit_test(txn_rules),
        cmocka_unit_test(lease_ttl),
    };
    return PLINTH_RUN_TESTS("node_validate", tests);
}

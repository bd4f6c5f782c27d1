/* test_kv_basic — kv/'s store API case by case: MVCC revisions and versions, ranges,
 * txns and their refusals, compaction, the Raft log and metadata, quota and alarms. */
#include "tests/unit/kv/kvtest.h"

static void test_put_get_revisions(void **state)
{
    (void)state;
    kvt t;
    char buf[64];
    kvt_init(&t, "kv-basic", NULL);
    assert_int_equal(kv_current_revision(t.s), 1);
    kv_result r;
    assert_int_equal(kvt_put(&t, "a", "1", 0, &r), 0);
    Etcdserverpb__PutResponse *pr = (Etcdserverpb__PutResponse *)r.msg;
    assert_int_equal(pr->header->revision, 2);
    assert_null(pr->prev_kv);
    kv_result_free(&r);
    assert_int_equal(kvt_put(&t, "a", "2", 0, &r), 0);
    pr = (Etcdserverpb__PutResponse *)r.msg;
    assert_int_equal(pr->header->revision, 3);
    assert_non_null(pr->prev_kv);
    assert_int_equal(pr->prev_kv->mod_revision, 2);
    assert_memory_equal(pr->prev_kv->value.data, "1", 1);
    kv_result_free(&r);

    assert_int_equal(kvt_range(&t, "a", NULL, 0, &r), 0);
    Mvccpb__KeyValue *kv = kvt_rr(&r)->kvs[0];
    assert_int_equal(kv->create_revision, 2);
    assert_int_equal(kv->mod_revision, 3);
    assert_int_equal(kv->version, 2);
    assert_int_equal(kvt_rr(&r)->header->revision, 3);
    kv_result_free(&r);
    assert_string_equal(kvt_get(&t, "a", 2, buf, sizeof buf), "1");

    /* delete leaves a tombstone; a new put starts at version 1 */
    assert_int_equal(kvt_del(&t, "a", NULL, &r), 0);
    Etcdserverpb__DeleteRangeResponse *dr = (Etcdserverpb__DeleteRangeResponse *)r.msg;
    assert_int_equal(dr->deleted, 1);
    assert_int_equal(dr->header->revision, 4);
    assert_int_equal(dr->n_prev_kvs, 1);
    kv_result_free(&r);
    assert_null(kvt_get(&t, "a", 0, buf, sizeof buf));
    assert_string_equal(kvt_get(&t, "a", 3, buf, sizeof buf), "2");
    /* deleting nothing does not raise the revision */
    assert_int_equal(kvt_del(&t, "a", NULL, &r), 0);
    assert_int_equal(((Etcdserverpb__DeleteRangeResponse *)r.msg)->deleted, 0);
    assert_int_equal(((Etcdserverpb__DeleteRangeResponse *)r.msg)->header->revision, 4);
    kv_result_free(&r);
    assert_int_equal(kvt_put1(&t, "a", "3"), 0);
    assert_int_equal(kvt_range(&t, "a", NULL, 0, &r), 0);
    assert_int_equal(kvt_rr(&r)->kvs[0]->version, 1);
    assert_int_equal(kvt_rr(&r)->kvs[0]->create_revision, 5);
    kv_result_free(&r);

    /* future revision */
    assert_int_equal(kvt_range(&t, "a", NULL, 99, &r), KV_EFUTUREREV);
    kv_result_free(&r);
    /* survives reopen */
    kvt_reopen(&t);
    assert_int_equal(kv_current_revision(t.s), 5);
    assert_string_equal(kvt_get(&t, "a", 0, buf, sizeof buf), "3");
    assert_string_equal(kvt_get(&t, "a", 2, buf, sizeof buf), "1");
    kvt_done(&t);
}

static void test_ranges(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    kvt_init(&t, "kv-range", NULL);
    const char *keys[] = {"a", "b", "b/1", "b/2", "c", "d"};
    for (int i = 0; i < 6; i++)
        assert_int_equal(kvt_put1(&t, keys[i], keys[i]), 0);
    assert_int_equal(kvt_range(&t, "b", "c", 0, &r), 0); /* [b, c) */
    assert_int_equal(kvt_rr(&r)->n_kvs, 3);
    assert_int_equal(kvt_rr(&r)->count, 3);
    kv_result_free(&r);
    assert_int_equal(kvt_range(&t, "b/", "b0", 0, &r), 0); /* prefix b/ */
    assert_int_equal(kvt_rr(&r)->n_kvs, 2);
    kv_result_free(&r);
    assert_int_equal(kvt_range(&t, "c", "", 0, &r), 0); /* from key: "\0" end */
    assert_int_equal(kvt_rr(&r)->n_kvs, 2);
    kv_result_free(&r);

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = (ProtobufCBinaryData){1, (uint8_t *)""};
    q.range_end = (ProtobufCBinaryData){1, (uint8_t *)""};
    q.limit = 2;
    assert_int_equal(kv_range(t.s, &q, &r), 0);
    assert_int_equal(kvt_rr(&r)->n_kvs, 2);
    assert_true(kvt_rr(&r)->more);
    assert_int_equal(kvt_rr(&r)->count, 6);
    kv_result_free(&r);
    q.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    assert_int_equal(kv_range(t.s, &q, &r), 0);
    assert_memory_equal(kvt_rr(&r)->kvs[0]->key.data, "d", 1);
    kv_result_free(&r);
    q.limit = 0;
    q.sort_order = 0;
    q.count_only = true;
    assert_int_equal(kv_range(t.s, &q, &r), 0);
    assert_int_equal(kvt_rr(&r)->n_kvs, 0);
    assert_int_equal(kvt_rr(&r)->count, 6);
    kv_result_free(&r);
    q.count_only = false;
    q.keys_only = true;
    q.min_mod_revision = 5;
    assert_int_equal(kv_range(t.s, &q, &r), 0);
    assert_int_equal(kvt_rr(&r)->n_kvs, 3); /* mod 5, 6, 7 */
    assert_int_equal(kvt_rr(&r)->kvs[0]->value.len, 0);
    kv_result_free(&r);
    q.sort_target = 9;
    assert_int_equal(kv_range(t.s, &q, &r), 0);
    assert_int_equal(r.err, KV_EINVALIDSORT);
    kv_result_free(&r);
    /* delete a prefix */
    assert_int_equal(kvt_del(&t, "b/", "b0", &r), 0);
    assert_int_equal(((Etcdserverpb__DeleteRangeResponse *)r.msg)->deleted, 2);
    kv_result_free(&r);
    kvt_done(&t);
}

static void test_key_limits(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    char big[KV_MAX_KEY + 2];
    kvt_init(&t, "kv-limits", NULL);
    memset(big, 'k', sizeof big);
    big[KV_MAX_KEY + 1] = 0;
    assert_int_equal(kvt_put1(&t, big, "v"), KV_EKEYTOOLONG);
    assert_int_equal(kvt_put1(&t, "", "v"), KV_EEMPTYKEY);
    assert_int_equal(kv_current_revision(t.s), 1);
    big[KV_MAX_KEY] = 0;
    assert_int_equal(kvt_put1(&t, big, "v"), 0); /* exactly the limit works */
    big[KV_MAX_KEY] = 'k';
    assert_int_equal(kvt_range(&t, big, NULL, 0, &r), 0); /* long key: nothing, no error */
    assert_int_equal(kvt_rr(&r)->n_kvs, 0);
    kv_result_free(&r);
    assert_string_equal(kv_etcd_status(KV_EEMPTYKEY).message, "etcdserver: key is not provided");
    assert_int_equal(kv_etcd_status(KV_ECOMPACTED).grpc_code, 11);
    kvt_done(&t);
}

static Etcdserverpb__RequestOp *op_put(Etcdserverpb__RequestOp *op, Etcdserverpb__PutRequest *p,
                                       const char *k, const char *v)
{
    etcdserverpb__request_op__init(op);
    etcdserverpb__put_request__init(p);
    p->key = kvt_b(k);
    p->value = kvt_b(v);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = p;
    return op;
}

static void test_txn(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    char buf[64];
    kvt_init(&t, "kv-txn", NULL);
    assert_int_equal(kvt_put1(&t, "x", "1"), 0); /* rev 2 */

    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    c.key = kvt_b("x");
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = kvt_b("1");
    Etcdserverpb__Compare *cs[] = {&c};
    Etcdserverpb__RequestOp o1, o2, o3;
    Etcdserverpb__PutRequest p1, p2, p3;
    Etcdserverpb__RequestOp *succ[] = {op_put(&o1, &p1, "y", "a"), op_put(&o2, &p2, "z", "b")};
    Etcdserverpb__RequestOp *fail[] = {op_put(&o3, &p3, "q", "c")};
    Etcdserverpb__TxnRequest tx = ETCDSERVERPB__TXN_REQUEST__INIT;
    tx.n_compare = 1;
    tx.compare = cs;
    tx.n_success = 2;
    tx.success = succ;
    tx.n_failure = 1;
    tx.failure = fail;
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_TXN;
    req.txn = &tx;
    assert_int_equal(kvt_apply(&t, &req, &r), 0);
    Etcdserverpb__TxnResponse *tr = (Etcdserverpb__TxnResponse *)r.msg;
    assert_true(tr->succeeded);
    assert_int_equal(tr->header->revision, 3); /* one revision for both puts */
    assert_int_equal(tr->n_responses, 2);
    kv_result_free(&r);
    assert_int_equal(kvt_range(&t, "y", NULL, 0, &r), 0);
    assert_int_equal(kvt_rr(&r)->kvs[0]->mod_revision, 3);
    kv_result_free(&r);
    assert_int_equal(kvt_range(&t, "z", NULL, 0, &r), 0);
    assert_int_equal(kvt_rr(&r)->kvs[0]->mod_revision, 3);
    kv_result_free(&r);

    /* compare fails now: failure branch */
    c.value = kvt_b("nope");
    assert_int_equal(kvt_apply(&t, &req, &r), 0);
    tr = (Etcdserverpb__TxnResponse *)r.msg;
    assert_false(tr->succeeded);
    assert_int_equal(tr->header->revision, 4);
    kv_result_free(&r);
    assert_string_equal(kvt_get(&t, "q", 0, buf, sizeof buf), "c");

    /* duplicate key in one branch: refused, nothing written */
    p2.key = kvt_b("y");
    assert_int_equal(kvt_apply(&t, &req, &r), KV_EDUPKEY);
    kv_result_free(&r);
    assert_int_equal(kv_current_revision(t.s), 4);
    assert_int_equal(kv_check_request(t.s, &req), KV_EDUPKEY);
    p2.key = kvt_b("z");

    /* too many ops */
    Etcdserverpb__RequestOp **many = calloc(129, sizeof(*many));
    Etcdserverpb__RequestOp *ops = calloc(129, sizeof(*ops));
    Etcdserverpb__PutRequest *ps = calloc(129, sizeof(*ps));
    char (*names)[16] = calloc(129, 16);
    for (int i = 0; i < 129; i++) {
        snprintf(names[i], 16, "k%d", i);
        many[i] = op_put(&ops[i], &ps[i], names[i], "v");
    }
    tx.n_success = 129;
    tx.success = many;
    assert_int_equal(kvt_apply(&t, &req, &r), KV_ETOOMANYOPS);
    kv_result_free(&r);
    tx.n_success = 128;
    c.value = kvt_b("1");
    assert_int_equal(kvt_apply(&t, &req, &r), 0);
    assert_int_equal(((Etcdserverpb__TxnResponse *)r.msg)->header->revision, 5);
    kv_result_free(&r);
    free(many);
    free(ops);
    free(ps);
    free(names);

    /* put with a missing lease: refused, nothing written */
    assert_int_equal(kvt_put(&t, "l", "v", 12345, &r), KV_ELEASENOTFOUND);
    kv_result_free(&r);
    assert_int_equal(kv_current_revision(t.s), 5);
    kvt_done(&t);
}

/* kv_txn_read answers a read-only txn exactly as kv_apply does at the same revision,
 * writes nothing, refuses a txn that writes and reports compacted revisions. */
static void test_txn_read(void **state)
{
    (void)state;
    kvt t;
    kv_result r, ra;
    kvt_init(&t, "kv-txnread", NULL);
    assert_int_equal(kvt_put1(&t, "x", "1"), 0); /* 2 */
    assert_int_equal(kvt_put1(&t, "x", "2"), 0); /* 3 */
    assert_int_equal(kvt_put1(&t, "y", "1"), 0); /* 4 */

    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    c.key = kvt_b("x");
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 2;
    Etcdserverpb__Compare *cs[] = {&c};
    Etcdserverpb__RangeRequest q1 = ETCDSERVERPB__RANGE_REQUEST__INIT, q2 = q1;
    q1.key = kvt_b("x");
    q1.revision = 2;
    q2.key = kvt_b("y");
    Etcdserverpb__RequestOp o1 = ETCDSERVERPB__REQUEST_OP__INIT, o2 = o1;
    o1.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o1.request_range = &q1;
    o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o2.request_range = &q2;
    Etcdserverpb__RequestOp *succ[] = {&o1, &o2};
    Etcdserverpb__TxnRequest tx = ETCDSERVERPB__TXN_REQUEST__INIT;
    tx.n_compare = 1;
    tx.compare = cs;
    tx.n_success = 2;
    tx.success = succ;

    assert_int_equal(kv_txn_read(t.s, &tx, &r), 0);
    assert_int_equal(r.err, 0);
    Etcdserverpb__TxnResponse *tr = (Etcdserverpb__TxnResponse *)r.msg;
    assert_true(tr->succeeded);
    assert_int_equal(tr->header->revision, 4);
    assert_int_equal(tr->n_responses, 2);
    const Mvccpb__KeyValue *old = tr->responses[0]->response_range->kvs[0];
    assert_int_equal(old->value.len, 1);
    assert_memory_equal(old->value.data, "1", 1); /* x as of revision 2 */
    size_t n = etcdserverpb__txn_response__get_packed_size(tr);
    uint8_t *b1 = malloc(n);
    etcdserverpb__txn_response__pack(tr, b1);
    assert_int_equal(kv_current_revision(t.s), 4); /* nothing written */

    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_TXN;
    req.txn = &tx;
    assert_int_equal(kvt_apply(&t, &req, &ra), 0);
    Etcdserverpb__TxnResponse *ta = (Etcdserverpb__TxnResponse *)ra.msg;
    assert_int_equal(etcdserverpb__txn_response__get_packed_size(ta), n);
    uint8_t *b2 = malloc(n);
    etcdserverpb__txn_response__pack(ta, b2);
    assert_memory_equal(b1, b2, n);
    free(b1);
    free(b2);
    kv_result_free(&r);
    kv_result_free(&ra);

    /* a txn that writes is not for this path */
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RequestOp o3 = ETCDSERVERPB__REQUEST_OP__INIT;
    p.key = kvt_b("z");
    o3.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o3.request_put = &p;
    Etcdserverpb__RequestOp *wsucc[] = {&o3};
    tx.success = wsucc;
    tx.n_success = 1;
    assert_int_equal(kv_txn_read(t.s, &tx, &r), KV_EINVAL);
    assert_int_equal(kv_current_revision(t.s), 4);

    /* a range below the compacted revision */
    assert_int_equal(kvt_compact(&t, 3), 0);
    tx.success = succ;
    tx.n_success = 2;
    assert_int_equal(kv_txn_read(t.s, &tx, &r), 0);
    assert_int_equal(r.err, KV_ECOMPACTED);
    kv_result_free(&r);
    kvt_done(&t);
}

static void test_compaction(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    char buf[64];
    kvt_init(&t, "kv-compact", NULL);
    assert_int_equal(kvt_put1(&t, "a", "1"), 0); /* 2 */
    assert_int_equal(kvt_put1(&t, "a", "2"), 0); /* 3 */
    assert_int_equal(kvt_put1(&t, "b", "1"), 0); /* 4 */
    assert_int_equal(kvt_del(&t, "b", NULL, &r), 0); /* 5 */
    kv_result_free(&r);
    assert_int_equal(kvt_put1(&t, "c", "1"), 0); /* 6 */
    assert_int_equal(kv_hash_kv(t.s, 0, &r), 0);
    uint32_t h0 = ((Etcdserverpb__HashKVResponse *)r.msg)->hash;
    kv_result_free(&r);
    assert_int_equal(kvt_compact(&t, 5), 0);
    /* the history below 5 is gone from the store, not just hidden */
    assert_int_equal(kv_hash_kv(t.s, 0, &r), 0);
    assert_int_not_equal(((Etcdserverpb__HashKVResponse *)r.msg)->hash, h0);
    kv_result_free(&r);
    assert_int_equal(kv_compact_revision(t.s), 5);
    assert_int_equal(kvt_range(&t, "a", NULL, 4, &r), KV_ECOMPACTED);
    kv_result_free(&r);
    assert_string_equal(kvt_get(&t, "a", 5, buf, sizeof buf), "2");
    assert_null(kvt_get(&t, "b", 5, buf, sizeof buf));
    assert_int_equal(kvt_compact(&t, 5), KV_ECOMPACTED);
    assert_int_equal(kvt_compact(&t, 7), KV_EFUTUREREV);
    assert_int_equal(kvt_compact(&t, 6), 0);
    kvt_reopen(&t);
    assert_int_equal(kv_compact_revision(t.s), 6);
    assert_string_equal(kvt_get(&t, "a", 0, buf, sizeof buf), "2");
    assert_string_equal(kvt_get(&t, "c", 6, buf, sizeof buf), "1");
    /* HashKV agrees with itself and refuses compacted revisions */
    assert_int_equal(kv_hash_kv(t.s, 0, &r), 0);
    assert_int_equal(r.err, 0);
    uint32_t h = ((Etcdserverpb__HashKVResponse *)r.msg)->hash;
    kv_result_free(&r);
    assert_int_equal(kv_hash_kv(t.s, 6, &r), 0);
    assert_int_equal(((Etcdserverpb__HashKVResponse *)r.msg)->hash, h);
    kv_result_free(&r);
    assert_int_equal(kv_hash_kv(t.s, 3, &r), 0);
    assert_int_equal(r.err, KV_ECOMPACTED);
    kv_result_free(&r);
    kvt_done(&t);
}

static void test_raft_log(void **state)
{
    (void)state;
    kvt t;
    kvt_init(&t, "kv-log", NULL);
    assert_int_equal(kv_log_first_index(t.s), 1);
    assert_int_equal(kv_log_last_index(t.s), 0);
    kv_wtxn *w;
    kv_entry e[10];
    char data[10][24];
    for (int i = 0; i < 10; i++) {
        snprintf(data[i], 24, "entry-%d", i + 1);
        e[i] = (kv_entry){(kv_index_t)i + 1, 1, 0, data[i], strlen(data[i])};
    }
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_log_append(w, e, 10), 0);
    kv_hard_state hs = {3, 2, 7};
    assert_int_equal(kv_hard_state_set(w, &hs), 0);
    assert_int_equal(kv_meta_put(w, "members", "[1,2]", 5), 0);
    assert_int_equal(kv_ids_set(w, 77, 88), 0);
    assert_int_equal(kv_log_last_index(t.s), 10); /* the open txn is visible */
    assert_int_equal(kv_wtxn_commit(w), 0);

    /* conflicting suffix from 6 with term 2 */
    kv_entry f[2] = {{6, 2, 1, "six", 3}, {7, 2, 0, "seven", 5}};
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_log_append(w, f, 2), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    assert_int_equal(kv_log_last_index(t.s), 7);
    kv_term_t term;
    assert_int_equal(kv_log_term(t.s, 6, &term), 0);
    assert_int_equal(term, 2);
    assert_int_equal(kv_log_term(t.s, 8, &term), KV_ELOGUNAVAIL);

    kvt_reopen(&t);
    kv_entry *got;
    size_t n;
    assert_int_equal(kv_log_entries(t.s, 3, 8, 0, &got, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(got[3].index, 6);
    assert_int_equal(got[3].type, 1);
    assert_memory_equal(got[4].data, "seven", 5);
    free(got);
    assert_int_equal(kv_log_entries(t.s, 1, 8, 10, &got, &n), 0); /* byte limit */
    assert_int_equal(n, 1);
    free(got);

    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_log_compact(w, 4), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    assert_int_equal(kv_log_first_index(t.s), 5);
    assert_int_equal(kv_log_term(t.s, 4, &term), 0);
    assert_int_equal(term, 1);
    assert_int_equal(kv_log_term(t.s, 3, &term), KV_ELOGCOMPACTED);
    assert_int_equal(kv_log_entries(t.s, 4, 6, 0, &got, &n), KV_ELOGCOMPACTED);

    kv_hard_state h2;
    assert_int_equal(kv_hard_state_get(t.s, &h2), 0);
    assert_int_equal(h2.term, 3);
    assert_int_equal(h2.vote, 2);
    assert_int_equal(h2.commit, 7);
    void *blob;
    size_t len;
    assert_int_equal(kv_meta_get(t.s, "members", &blob, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(blob, "[1,2]", 5);
    free(blob);
    assert_int_equal(kv_meta_get(t.s, "nothing", &blob, &len), KV_ENOTFOUND);
    uint64_t cid, mid;
    kv_ids_get(t.s, &cid, &mid);
    assert_int_equal(cid, 77);
    assert_int_equal(mid, 88);

    /* an aborted turn leaves nothing */
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_log_truncate(w, 5), 0);
    kv_wtxn_abort(w);
    assert_int_equal(kv_log_last_index(t.s), 7);
    kvt_done(&t);
}

static void test_applied_once(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    kvt_init(&t, "kv-applied", NULL);
    assert_int_equal(kvt_put1(&t, "a", "1"), 0);
    assert_int_equal(kv_applied_index(t.s), 1);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = kvt_b("a");
    p.value = kvt_b("2");
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = &p;
    kv_wtxn *w;
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_apply(w, 1, 1, &req, &r), KV_EAPPLIED); /* replayed entry */
    assert_int_equal(kv_apply(w, 2, 1, &req, &r), 0);
    kv_result_free(&r);
    kv_wtxn_abort(w); /* crash before commit: neither effect nor index */
    assert_int_equal(kv_applied_index(t.s), 1);
    assert_int_equal(kv_current_revision(t.s), 2);
    kvt_reopen(&t);
    assert_int_equal(kv_applied_index(t.s), 1);
    Plinthpb__Request unk = PLINTHPB__REQUEST__INIT;
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_apply(w, 2, 1, &unk, &r), KV_EUNKNOWNREQ);
    assert_int_equal(kv_applied_set(w, 2, 1), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    assert_int_equal(kv_applied_index(t.s), 2);
    kvt_done(&t);
}

static void test_alarm_quota(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    kvt_init(&t, "kv-alarm", NULL);
    assert_int_equal(kvt_put1(&t, "a", "1"), 0);
    assert_int_equal(kv_quota_check(t.s, 100), 0);
    assert_int_equal(kv_quota_check(t.s, 3ull << 30), KV_ENOSPACE);
    Etcdserverpb__AlarmRequest al = ETCDSERVERPB__ALARM_REQUEST__INIT;
    al.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
    al.memberid = 5;
    al.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_ALARM;
    req.alarm = &al;
    assert_int_equal(kvt_apply(&t, &req, &r), 0);
    assert_int_equal(((Etcdserverpb__AlarmResponse *)r.msg)->n_alarms, 1);
    kv_result_free(&r);
    assert_int_equal(kvt_put1(&t, "b", "1"), KV_ENOSPACE);
    assert_int_equal(kvt_grant(&t, 0, 10, NULL), KV_ENOSPACE);
    assert_int_equal(kvt_del(&t, "a", NULL, &r), 0); /* deletes still work */
    kv_result_free(&r);
    char buf[8];
    assert_null(kvt_get(&t, "a", 0, buf, sizeof buf));
    kvt_reopen(&t); /* the alarm is replicated state: it survives */
    kv_stats st;
    assert_int_equal(kv_stat(t.s, &st), 0);
    assert_true(st.alarm_nospace);
    assert_true(st.db_size > 0 && st.db_size_in_use > 0 && st.db_size_in_use <= st.db_size);
    al.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE;
    assert_int_equal(kvt_apply(&t, &req, &r), 0);
    kv_result_free(&r);
    assert_int_equal(kvt_put1(&t, "b", "1"), 0);
    assert_int_equal(kv_alarms(t.s, &r), 0);
    assert_int_equal(((Etcdserverpb__AlarmResponse *)r.msg)->n_alarms, 0);
    kv_result_free(&r);
    kvt_done(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_revisions),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_key_limits),
        cmocka_unit_test(test_txn),
        cmocka_unit_test(test_txn_read),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_raft_log),
        cmocka_unit_test(test_applied_once),
        cmocka_unit_test(test_alarm_quota),
    };
    return PLINTH_RUN_TESTS("kv_basic", tests);
}

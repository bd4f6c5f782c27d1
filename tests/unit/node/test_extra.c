/* test_extra — one plinth member in a child process (h2c on loopback) driven through the
 * gRPC client: read-only txns served without Raft (their answers equal the answers the
 * same txn gets through Raft), watch fragments, and the v3election / v3lock services. */
#include "tests/lib/testlib.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/grpc_client.h"
#include "node/config.h"
#include "node/node.h"
#include "rpc.pb-c.h"
#include "v3election.pb-c.h"
#include "v3lock.pb-c.h"

static char *dir;
static int port;
static pid_t child = -1;
/* small enough that one revision of a few hundred values needs fragments */
#define MAX_REQUEST_BYTES 2048
static const char *extra_flag = "--max-request-bytes=2048";

static pid_t start_member(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        static struct node_config cfg;
        char url[64], purl[64], cluster[96], dd[512], err[NODE_ERRLEN];
        char *argv[] = {"plinth", "--name=s1", dd, url, purl, cluster, "--log-level=warn",
                        (char *)extra_flag, NULL};
        int argc = 8;
        struct event_base *base;
        struct node *n;
        alarm(90); /* never outlive the test */
        snprintf(dd, sizeof dd, "--data-dir=%s/s1", dir);
        snprintf(url, sizeof url, "--listen-client-urls=http://127.0.0.1:%d", port);
        snprintf(purl, sizeof purl, "--initial-advertise-peer-urls=http://127.0.0.1:%d", port + 1);
        snprintf(cluster, sizeof cluster, "--initial-cluster=s1=http://127.0.0.1:%d", port + 1);
        node_config_defaults(&cfg);
        if (node_config_parse(&cfg, argc, argv, err, sizeof err, NULL) != NODE_CONFIG_OK) {
            fprintf(stderr, "config: %s\n", err);
            _exit(3);
        }
        cfg.listen_peer_urls = cfg.initial_advertise_peer_urls;
        base = event_base_new();
        if (node_start(&cfg, base, &n, err, sizeof err) != 0) {
            fprintf(stderr, "start: %s\n", err);
            _exit(4);
        }
        event_base_dispatch(base);
        _exit(0);
    }
    return pid;
}

static void stop_member(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
}

static struct net_grpc_client *client(void)
{
    struct net_grpc_client_opts o;
    char ep[64];
    memset(&o, 0, sizeof o);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", port);
    o.endpoints = ep;
    o.dial_timeout_ms = 1000;
    o.call_timeout_ms = 5000;
    return net_grpc_client_new(&o, NULL);
}

static ProtobufCBinaryData bin(const char *s)
{
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static int put(struct net_grpc_client *c, const char *k, const char *v, int64_t lease)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    int rc;
    req.key = bin(k);
    req.value = bin(v);
    req.lease = lease;
    rc = net_grpc_unary(c, "/etcdserverpb.KV/Put", &req.base, &etcdserverpb__put_response__descriptor,
                        &resp, &st, 0);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* Waits until the member answers a put (it elects itself leader). A member that exits
 * at once lost its port to another process: it is started again on other ports. */
static struct net_grpc_client *wait_ready(void)
{
    struct net_grpc_client *c = client();
    int i, status;
    for (i = 0; i < 300; i++) {
        if (put(c, "ready", "1", 0) == NET_GRPC_OK)
            return c;
        if (waitpid(child, &status, WNOHANG) == child) {
            port = 20000 + (port + 7919 - 20000) % 40000;
            child = start_member();
            net_grpc_client_free(c);
            c = client();
        }
        usleep(100000);
    }
    net_grpc_client_free(c);
    fail_msg("member not ready");
    return NULL;
}

static void status(struct net_grpc_client *c, uint64_t *raft_index, int64_t *rev)
{
    Etcdserverpb__StatusRequest r = ETCDSERVERPB__STATUS_REQUEST__INIT;
    Etcdserverpb__StatusResponse *resp = NULL;
    struct net_grpc_status st;
    assert_int_equal(net_grpc_unary(c, "/etcdserverpb.Maintenance/Status", &r.base,
                                    &etcdserverpb__status_response__descriptor,
                                    (ProtobufCMessage **)&resp, &st, 0),
                     NET_GRPC_OK);
    *raft_index = resp->raftindex;
    *rev = resp->header->revision;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* The raft index once nothing more is being proposed (the member publishes its name and
 * client URLs shortly after it starts). */
static void status_settled(struct net_grpc_client *c, uint64_t *raft_index, int64_t *rev)
{
    uint64_t prev = 0;
    int i;
    for (i = 0; i < 50; i++) {
        status(c, raft_index, rev);
        if (*raft_index == prev)
            return;
        prev = *raft_index;
        usleep(200000);
    }
}

/* Runs a txn; returns the gRPC code, *out the packed response (malloc'd) when OK. */
static int txn_raw(struct net_grpc_client *c, const Etcdserverpb__TxnRequest *t, uint8_t **out,
                   size_t *out_len, struct net_grpc_status *st)
{
    size_t len = protobuf_c_message_get_packed_size(&t->base);
    uint8_t *buf = malloc(len + 1);
    int rc;
    protobuf_c_message_pack(&t->base, buf);
    *out = NULL;
    rc = net_grpc_unary_raw(c, "/etcdserverpb.KV/Txn", buf, len, out, out_len, st, 0);
    free(buf);
    return rc;
}

static Etcdserverpb__TxnResponse *txn(struct net_grpc_client *c, const Etcdserverpb__TxnRequest *t)
{
    struct net_grpc_status st;
    uint8_t *out;
    size_t len;
    Etcdserverpb__TxnResponse *r;
    if (txn_raw(c, t, &out, &len, &st) != NET_GRPC_OK)
        fail_msg("txn: %s", st.message);
    r = etcdserverpb__txn_response__unpack(NULL, len, out);
    free(out);
    assert_non_null(r);
    return r;
}

/* ---- read-only txns ------------------------------------------------------------------------ */

struct ops { /* a small builder for txns in a test */
    Etcdserverpb__RequestOp op[8];
    Etcdserverpb__RequestOp *p[8];
    Etcdserverpb__RangeRequest rr[8];
    Etcdserverpb__DeleteRangeRequest dr[8];
    int n;
};

static void add_range(struct ops *o, const char *key, const char *end, int64_t rev, bool ser)
{
    int i = o->n++;
    etcdserverpb__request_op__init(&o->op[i]);
    etcdserverpb__range_request__init(&o->rr[i]);
    o->rr[i].key = bin(key);
    if (end)
        o->rr[i].range_end = bin(end);
    o->rr[i].revision = rev;
    o->rr[i].serializable = ser;
    o->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o->op[i].request_range = &o->rr[i];
    o->p[i] = &o->op[i];
}

static void add_delete(struct ops *o, const char *key)
{
    int i = o->n++;
    etcdserverpb__request_op__init(&o->op[i]);
    etcdserverpb__delete_range_request__init(&o->dr[i]);
    o->dr[i].key = bin(key);
    o->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    o->op[i].request_delete_range = &o->dr[i];
    o->p[i] = &o->op[i];
}

static void add_txn(struct ops *o, Etcdserverpb__TxnRequest *t)
{
    int i = o->n++;
    etcdserverpb__request_op__init(&o->op[i]);
    o->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    o->op[i].request_txn = t;
    o->p[i] = &o->op[i];
}

static void cmp_init(Etcdserverpb__Compare *c, const char *key, const char *end,
                     Etcdserverpb__Compare__CompareTarget target,
                     Etcdserverpb__Compare__CompareResult result)
{
    etcdserverpb__compare__init(c);
    c->key = bin(key);
    if (end)
        c->range_end = bin(end);
    c->target = target;
    c->result = result;
}

static void readonly_txns(void **state)
{
    struct net_grpc_client *c;
    uint64_t idx0, idx1;
    int64_t rev0, rev1;
    (void)state;
    c = wait_ready();
    assert_int_equal(put(c, "a", "1", 0), NET_GRPC_OK);
    assert_int_equal(put(c, "b", "2", 0), NET_GRPC_OK);
    assert_int_equal(put(c, "p/x", "3", 0), NET_GRPC_OK);
    assert_int_equal(put(c, "p/y", "4", 0), NET_GRPC_OK);
    status_settled(c, &idx0, &rev0);

    /* if value(a) == "1" and mod(p/ prefix) > 0 then get a, [if version(b) > 0 then get
     * p/ prefix else get b] else get b */
    {
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT,
                                 in = ETCDSERVERPB__TXN_REQUEST__INIT;
        Etcdserverpb__Compare c1, c2, c3, *cs[2] = {&c1, &c2}, *ics[1] = {&c3};
        struct ops s = {0}, f = {0}, is = {0}, inf = {0};
        Etcdserverpb__TxnResponse *r;
        cmp_init(&c1, "a", NULL, ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE,
                 ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL);
        c1.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        c1.value = bin("1");
        cmp_init(&c2, "p/", "p0", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD,
                 ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER);
        c2.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        c2.mod_revision = 0;
        cmp_init(&c3, "b", NULL, ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION,
                 ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER);
        c3.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        add_range(&is, "p/", "p0", 0, false);
        add_range(&inf, "b", NULL, 0, false);
        in.compare = ics;
        in.n_compare = 1;
        in.success = is.p;
        in.n_success = is.n;
        in.failure = inf.p;
        in.n_failure = inf.n;
        add_range(&s, "a", NULL, 0, false);
        add_txn(&s, &in);
        add_range(&f, "b", NULL, 0, false);
        t.compare = cs;
        t.n_compare = 2;
        t.success = s.p;
        t.n_success = s.n;
        t.failure = f.p;
        t.n_failure = f.n;

        r = txn(c, &t);
        assert_true(r->succeeded);
        assert_int_equal(r->header->revision, rev0);
        assert_int_equal(r->n_responses, 2);
        assert_int_equal(r->responses[0]->response_case, ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE);
        assert_int_equal(r->responses[0]->response_range->n_kvs, 1);
        assert_memory_equal(r->responses[0]->response_range->kvs[0]->value.data, "1", 1);
        assert_int_equal(r->responses[1]->response_case, ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
        assert_true(r->responses[1]->response_txn->succeeded);
        assert_int_equal(r->responses[1]->response_txn->responses[0]->response_range->n_kvs, 2);
        etcdserverpb__txn_response__free_unpacked(r, NULL);

        /* the same txn with a delete added to the branch not taken goes through Raft
         * (it is not read-only) and must give exactly the same answer, byte for byte */
        {
            uint8_t *ro, *rw;
            size_t lro, lrw;
            struct net_grpc_status st;
            struct ops f2 = {0};
            add_range(&f2, "b", NULL, 0, false);
            add_delete(&f2, "never");
            assert_int_equal(txn_raw(c, &t, &ro, &lro, &st), NET_GRPC_OK);
            t.failure = f2.p;
            t.n_failure = f2.n;
            assert_int_equal(txn_raw(c, &t, &rw, &lrw, &st), NET_GRPC_OK);
            assert_int_equal(lro, lrw);
            assert_memory_equal(ro, rw, lro);
            free(ro);
            free(rw);
            t.failure = f.p;
            t.n_failure = f.n;
        }
        status(c, &idx1, &rev1);
        assert_int_equal(rev1, rev0);
        if (idx1 != idx0 + 1) /* only the txn with a delete was proposed */
            fail_msg("raft index %llu -> %llu", (unsigned long long)idx0, (unsigned long long)idx1);
        idx0 = idx1;

        /* value compare fails -> failure branch */
        c1.value = bin("2");
        r = txn(c, &t);
        assert_false(r->succeeded);
        assert_int_equal(r->n_responses, 1);
        assert_memory_equal(r->responses[0]->response_range->kvs[0]->value.data, "2", 1);
        etcdserverpb__txn_response__free_unpacked(r, NULL);
    }
    /* a VALUE compare on a missing key fails; CREATE == 0 on a missing key holds */
    {
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        Etcdserverpb__Compare c1, *cs[1] = {&c1};
        Etcdserverpb__TxnResponse *r;
        cmp_init(&c1, "missing", NULL, ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE,
                 ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL);
        c1.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        c1.value = bin("");
        t.compare = cs;
        t.n_compare = 1;
        r = txn(c, &t);
        assert_false(r->succeeded);
        etcdserverpb__txn_response__free_unpacked(r, NULL);
        cmp_init(&c1, "missing", NULL, ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE,
                 ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL);
        c1.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        r = txn(c, &t);
        assert_true(r->succeeded);
        etcdserverpb__txn_response__free_unpacked(r, NULL);
    }
    /* revisions: a range at a future revision fails the whole txn; a past one is read */
    {
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        struct ops s = {0};
        struct net_grpc_status st;
        uint8_t *out;
        size_t len;
        Etcdserverpb__TxnResponse *r;
        add_range(&s, "a", NULL, rev0 - 3, true); /* a=1 was written at rev0 - 3 */
        t.success = s.p;
        t.n_success = s.n;
        r = txn(c, &t);
        assert_int_equal(r->responses[0]->response_range->n_kvs, 1);
        etcdserverpb__txn_response__free_unpacked(r, NULL);
        add_range(&s, "a", NULL, rev0 + 100, true);
        t.n_success = s.n;
        assert_int_equal(txn_raw(c, &t, &out, &len, &st), NET_GRPC_OUT_OF_RANGE);
        assert_string_equal(st.message, "etcdserver: mvcc: required revision is a future revision");
    }
    status(c, &idx1, &rev1);
    assert_int_equal(idx1, idx0);
    net_grpc_client_free(c);
}

/* ---- watch fragments ----------------------------------------------------------------------- */

static void watch_create(struct net_grpc_stream *st, const char *prefix, bool fragment)
{
    Etcdserverpb__WatchRequest w = ETCDSERVERPB__WATCH_REQUEST__INIT;
    Etcdserverpb__WatchCreateRequest c = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    Etcdserverpb__WatchCreateRequest__FilterType noput =
        ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
    char end[64];
    snprintf(end, sizeof end, "%s", prefix);
    end[strlen(end) - 1]++;
    c.key = bin(prefix);
    c.range_end = bin(end);
    c.prev_kv = true;
    c.fragment = fragment;
    c.filters = &noput;
    c.n_filters = 1;
    w.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    w.create_request = &c;
    assert_int_equal(net_grpc_stream_send_msg(st, &w.base), 0);
}

/* Deletes of many keys with large previous values make revisions of ~1.2 MB; several
 * are written before the client reads anything, so the server's queue for the stream
 * fills up (4 MiB) and fragments wait in the watcher, then the hub catches up. */
static void watch_fragments(void **state)
{
    enum { KEYS = 800, VLEN = 1500, ROUNDS = 8 };
    const size_t limit = MAX_REQUEST_BYTES + 512 * 1024;
    struct net_grpc_client *c, *wc;
    struct net_grpc_stream *st;
    struct net_grpc_stream_opts so = {0};
    char *val = malloc(VLEN + 1), key[32];
    int64_t frag_id = -2, whole_id = -2, cur_rev = 0, last_rev = 0;
    size_t frag_events = 0, whole_events = 0, frag_msgs = 0, whole_msgs = 0, in_rev = 0, i, r;
    size_t frag_flagged = 0;
    (void)state;
    c = wait_ready();
    wc = client();
    assert_int_equal(net_grpc_stream_open(wc, "/etcdserverpb.Watch/Watch", &so, &st), 0);
    watch_create(st, "frag/", true);
    watch_create(st, "frag/", false);
    for (i = 0; i < 2; i++) {
        Etcdserverpb__WatchResponse *wr = NULL;
        assert_int_equal(net_grpc_stream_recv_msg(st, &etcdserverpb__watch_response__descriptor,
                                                  (ProtobufCMessage **)&wr, 5000),
                         NET_GRPC_RECV_MSG);
        assert_true(wr->created);
        if (i == 0)
            frag_id = wr->watch_id;
        else
            whole_id = wr->watch_id;
        protobuf_c_message_free_unpacked(&wr->base, NULL);
    }
    memset(val, 'v', VLEN);
    val[VLEN] = 0;
    for (r = 0; r < ROUNDS; r++) {
        Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
        Etcdserverpb__DeleteRangeResponse *dr = NULL;
        struct net_grpc_status gs;
        for (i = 0; i < KEYS; i++) {
            snprintf(key, sizeof key, "frag/%04zu", i);
            assert_int_equal(put(c, key, val, 0), NET_GRPC_OK);
        }
        /* one revision deleting every key: 800 events with 1.5 KB previous values each */
        d.key = bin("frag/");
        d.range_end = bin("frag0");
        assert_int_equal(net_grpc_unary(c, "/etcdserverpb.KV/DeleteRange", &d.base,
                                        &etcdserverpb__delete_range_response__descriptor,
                                        (ProtobufCMessage **)&dr, &gs, 0),
                         NET_GRPC_OK);
        assert_int_equal(dr->deleted, KEYS);
        protobuf_c_message_free_unpacked(&dr->base, NULL);
    }
    while (frag_events < ROUNDS * KEYS || whole_events < ROUNDS * KEYS) {
        uint8_t *msg = NULL;
        size_t len = 0, k;
        Etcdserverpb__WatchResponse *wr;
        assert_int_equal(net_grpc_stream_recv(st, &msg, &len, 10000), NET_GRPC_RECV_MSG);
        wr = etcdserverpb__watch_response__unpack(NULL, len, msg);
        assert_non_null(wr);
        if (wr->watch_id == frag_id) {
            frag_msgs++;
            frag_events += wr->n_events;
            assert_true(len < limit || wr->n_events == 1);
            /* revisions come whole and in order; a response's pieces come together */
            for (k = 0; k < wr->n_events; k++) {
                int64_t rev = wr->events[k]->kv->mod_revision;
                if (in_rev == 0) {
                    assert_true(rev > last_rev);
                    cur_rev = rev;
                }
                assert_int_equal(rev, cur_rev);
                in_rev++;
                if (in_rev == KEYS) {
                    last_rev = cur_rev;
                    in_rev = 0;
                }
            }
            if (!wr->fragment) /* a response (all its pieces) holds whole revisions */
                assert_int_equal(in_rev, 0);
            else
                frag_flagged++;
        } else if (wr->watch_id == whole_id) {
            whole_msgs++;
            whole_events += wr->n_events;
            assert_false(wr->fragment);
        }
        protobuf_c_message_free_unpacked(&wr->base, NULL);
        free(msg);
    }
    assert_int_equal(in_rev, 0);
    assert_true(frag_msgs >= 2 * ROUNDS);
    assert_true(frag_flagged >= ROUNDS);
    /* catch-up batches from the store may carry several revisions in one response */
    assert_true(whole_msgs >= 1 && whole_msgs <= ROUNDS);
    assert_int_equal(frag_events, ROUNDS * KEYS);
    assert_int_equal(whole_events, ROUNDS * KEYS);
    net_grpc_stream_free(st);
    net_grpc_client_free(wc);
    net_grpc_client_free(c);
    free(val);
}

/* ---- v3lock and v3election ------------------------------------------------------------ */

static int64_t grant(struct net_grpc_client *c, int64_t ttl)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    Etcdserverpb__LeaseGrantResponse *r = NULL;
    struct net_grpc_status st;
    int64_t id;
    g.ttl = ttl;
    assert_int_equal(net_grpc_unary(c, "/etcdserverpb.Lease/LeaseGrant", &g.base,
                                    &etcdserverpb__lease_grant_response__descriptor,
                                    (ProtobufCMessage **)&r, &st, 0),
                     NET_GRPC_OK);
    id = r->id;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return id;
}

static void lease_revoke(struct net_grpc_client *c, int64_t id)
{
    Etcdserverpb__LeaseRevokeRequest g = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    ProtobufCMessage *r = NULL;
    struct net_grpc_status st;
    g.id = id;
    assert_int_equal(net_grpc_unary(c, "/etcdserverpb.Lease/LeaseRevoke", &g.base,
                                    &etcdserverpb__lease_revoke_response__descriptor, &r, &st, 0),
                     NET_GRPC_OK);
    protobuf_c_message_free_unpacked(r, NULL);
}

static bool key_exists(struct net_grpc_client *c, const uint8_t *k, size_t len)
{
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *resp = NULL;
    struct net_grpc_status st;
    bool found;
    req.key = (ProtobufCBinaryData){len, (uint8_t *)k};
    assert_int_equal(net_grpc_unary(c, "/etcdserverpb.KV/Range", &req.base,
                                    &etcdserverpb__range_response__descriptor,
                                    (ProtobufCMessage **)&resp, &st, 0),
                     NET_GRPC_OK);
    found = resp->n_kvs == 1;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return found;
}

struct pending { /* an async call's outcome */
    bool done;
    int code;
    char msg[600];
    ProtobufCMessage *resp;
};

static void pending_cb(void *ud, const struct net_grpc_status *st, ProtobufCMessage *resp)
{
    struct pending *p = ud;
    p->done = true;
    p->code = st->code;
    snprintf(p->msg, sizeof p->msg, "%s", st->message);
    p->resp = resp;
}

/* Polls c until p is done or ms pass. */
static bool wait_pending(struct net_grpc_client *c, struct pending *p, int ms)
{
    int i;
    for (i = 0; i < ms / 20 && !p->done; i++)
        net_grpc_client_poll(c, 20);
    return p->done;
}

static V3lockpb__LockResponse *lock(struct net_grpc_client *c, const char *name, int64_t lease,
                                    struct net_grpc_status *st)
{
    V3lockpb__LockRequest r = V3LOCKPB__LOCK_REQUEST__INIT;
    V3lockpb__LockResponse *resp = NULL;
    r.name = bin(name);
    r.lease = lease;
    net_grpc_unary(c, "/v3lockpb.Lock/Lock", &r.base, &v3lockpb__lock_response__descriptor,
                   (ProtobufCMessage **)&resp, st, 0);
    return resp;
}

static void unlock(struct net_grpc_client *c, const ProtobufCBinaryData *key)
{
    V3lockpb__UnlockRequest r = V3LOCKPB__UNLOCK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    r.key = *key;
    assert_int_equal(net_grpc_unary(c, "/v3lockpb.Lock/Unlock", &r.base,
                                    &v3lockpb__unlock_response__descriptor, &resp, &st, 0),
                     NET_GRPC_OK);
    protobuf_c_message_free_unpacked(resp, NULL);
}

static void lock_service(void **state)
{
    struct net_grpc_client *c;
    struct net_grpc_status st;
    V3lockpb__LockResponse *l1, *l2;
    V3lockpb__LockRequest r = V3LOCKPB__LOCK_REQUEST__INIT;
    struct pending p = {0};
    int64_t lease1, lease2;
    char want[64];
    (void)state;
    c = wait_ready();
    lease1 = grant(c, 30);
    lease2 = grant(c, 30);

    /* uncontended: the key is <name>/<lease in hex> */
    l1 = lock(c, "lk", lease1, &st);
    assert_non_null(l1);
    snprintf(want, sizeof want, "lk/%llx", (unsigned long long)lease1);
    assert_int_equal(l1->key.len, strlen(want));
    assert_memory_equal(l1->key.data, want, strlen(want));
    assert_true(l1->header->revision > 0 && l1->header->member_id != 0);

    /* a second session waits until the first unlocks */
    r.name = bin("lk");
    r.lease = lease2;
    assert_int_equal(net_grpc_unary_msg_async(c, "/v3lockpb.Lock/Lock", &r.base,
                                              &v3lockpb__lock_response__descriptor, 10000,
                                              pending_cb, &p),
                     0);
    assert_false(wait_pending(c, &p, 400));
    unlock(c, &l1->key);
    assert_true(wait_pending(c, &p, 5000));
    assert_int_equal(p.code, NET_GRPC_OK);
    l2 = (V3lockpb__LockResponse *)p.resp;
    snprintf(want, sizeof want, "lk/%llx", (unsigned long long)lease2);
    assert_memory_equal(l2->key.data, want, strlen(want));
    assert_true(l2->header->revision > l1->header->revision);

    /* a waiter that gives up (deadline) leaves no key behind */
    memset(&p, 0, sizeof p);
    r.lease = lease1;
    assert_int_equal(net_grpc_unary_msg_async(c, "/v3lockpb.Lock/Lock", &r.base,
                                              &v3lockpb__lock_response__descriptor, 300,
                                              pending_cb, &p),
                     0);
    assert_true(wait_pending(c, &p, 3000));
    assert_int_equal(p.code, NET_GRPC_DEADLINE_EXCEEDED);
    {
        int i;
        bool gone = false;
        for (i = 0; i < 50 && !gone; i++) {
            gone = !key_exists(c, l1->key.data, l1->key.len);
            if (!gone)
                usleep(50000);
        }
        assert_true(gone);
    }

    /* a waiter whose session ends while it waits: "mutex: session is expired" */
    memset(&p, 0, sizeof p);
    assert_int_equal(net_grpc_unary_msg_async(c, "/v3lockpb.Lock/Lock", &r.base,
                                              &v3lockpb__lock_response__descriptor, 10000,
                                              pending_cb, &p),
                     0);
    assert_false(wait_pending(c, &p, 300));
    lease_revoke(c, lease1);
    unlock(c, &l2->key);
    assert_true(wait_pending(c, &p, 5000));
    assert_int_equal(p.code, NET_GRPC_UNKNOWN);
    assert_string_equal(p.msg, "mutex: session is expired");

    /* no lease: the server starts a session of its own; a missing lease is refused */
    protobuf_c_message_free_unpacked(&l1->base, NULL);
    l1 = lock(c, "lk", 0, &st);
    assert_non_null(l1);
    assert_memory_equal(l1->key.data, "lk/", 3);
    assert_null(lock(c, "lk-other", 12345, &st));
    assert_int_equal(st.code, NET_GRPC_NOT_FOUND);
    assert_string_equal(st.message, "etcdserver: requested lease not found");

    protobuf_c_message_free_unpacked(&l1->base, NULL);
    protobuf_c_message_free_unpacked(&l2->base, NULL);
    net_grpc_client_free(c);
}

static V3electionpb__CampaignResponse *campaign(struct net_grpc_client *c, const char *name,
                                                int64_t lease, const char *value)
{
    V3electionpb__CampaignRequest r = V3ELECTIONPB__CAMPAIGN_REQUEST__INIT;
    V3electionpb__CampaignResponse *resp = NULL;
    struct net_grpc_status st;
    r.name = bin(name);
    r.lease = lease;
    r.value = bin(value);
    if (net_grpc_unary(c, "/v3electionpb.Election/Campaign", &r.base,
                       &v3electionpb__campaign_response__descriptor, (ProtobufCMessage **)&resp,
                       &st, 0) != NET_GRPC_OK)
        fail_msg("campaign: %s", st.message);
    return resp;
}

/* The leader's value (malloc'd), or NULL with *st set. */
static char *leader_value(struct net_grpc_client *c, const char *name, struct net_grpc_status *st)
{
    V3electionpb__LeaderRequest r = V3ELECTIONPB__LEADER_REQUEST__INIT;
    V3electionpb__LeaderResponse *resp = NULL;
    char *v;
    r.name = bin(name);
    if (net_grpc_unary(c, "/v3electionpb.Election/Leader", &r.base,
                       &v3electionpb__leader_response__descriptor, (ProtobufCMessage **)&resp,
                       st, 0) != NET_GRPC_OK)
        return NULL;
    v = calloc(1, resp->kv->value.len + 1);
    memcpy(v, resp->kv->value.data, resp->kv->value.len);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return v;
}

static int proclaim(struct net_grpc_client *c, V3electionpb__LeaderKey *lk, const char *value,
                    struct net_grpc_status *st)
{
    V3electionpb__ProclaimRequest r = V3ELECTIONPB__PROCLAIM_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;
    r.leader = lk;
    r.value = bin(value);
    rc = net_grpc_unary(c, "/v3electionpb.Election/Proclaim", &r.base,
                        &v3electionpb__proclaim_response__descriptor, &resp, st, 0);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* The next value the Observe stream sends (malloc'd). */
static char *observed(struct net_grpc_stream *s)
{
    V3electionpb__LeaderResponse *r = NULL;
    char *v;
    assert_int_equal(net_grpc_stream_recv_msg(s, &v3electionpb__leader_response__descriptor,
                                              (ProtobufCMessage **)&r, 5000),
                     NET_GRPC_RECV_MSG);
    v = calloc(1, r->kv->value.len + 1);
    memcpy(v, r->kv->value.data, r->kv->value.len);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return v;
}

static void election_service(void **state)
{
    struct net_grpc_client *c, *oc;
    struct net_grpc_status st;
    struct net_grpc_stream *obs;
    struct net_grpc_stream_opts so = {0};
    V3electionpb__CampaignResponse *c1, *c2;
    V3electionpb__CampaignRequest cr = V3ELECTIONPB__CAMPAIGN_REQUEST__INIT;
    V3electionpb__LeaderRequest lr = V3ELECTIONPB__LEADER_REQUEST__INIT;
    struct pending p = {0};
    int64_t lease1, lease2;
    char *v, want[64];
    (void)state;
    c = wait_ready();
    oc = client();
    lease1 = grant(c, 30);
    lease2 = grant(c, 30);

    assert_null(leader_value(c, "el", &st));
    assert_int_equal(st.code, NET_GRPC_UNKNOWN);
    assert_string_equal(st.message, "election: no leader");

    /* an observer started before anyone campaigns sees the first leader */
    lr.name = bin("el");
    assert_int_equal(net_grpc_stream_open(oc, "/v3electionpb.Election/Observe", &so, &obs), 0);
    assert_int_equal(net_grpc_stream_send_msg(obs, &lr.base), 0);
    net_grpc_stream_close_send(obs);

    c1 = campaign(c, "el", lease1, "a");
    snprintf(want, sizeof want, "el/%llx", (unsigned long long)lease1);
    assert_memory_equal(c1->leader->key.data, want, strlen(want));
    assert_int_equal(c1->leader->lease, lease1);
    assert_int_equal(c1->leader->rev, c1->header->revision);
    v = observed(obs);
    assert_string_equal(v, "a");
    free(v);
    v = leader_value(c, "el", &st);
    assert_string_equal(v, "a");
    free(v);

    /* a second candidate waits */
    cr.name = bin("el");
    cr.lease = lease2;
    cr.value = bin("b");
    assert_int_equal(net_grpc_unary_msg_async(c, "/v3electionpb.Election/Campaign", &cr.base,
                                              &v3electionpb__campaign_response__descriptor,
                                              10000, pending_cb, &p),
                     0);
    assert_false(wait_pending(c, &p, 400));

    /* the leader proclaims a new value; observers see it; a stale key is refused */
    assert_int_equal(proclaim(c, c1->leader, "a2", &st), NET_GRPC_OK);
    v = observed(obs);
    assert_string_equal(v, "a2");
    free(v);
    v = leader_value(c, "el", &st);
    assert_string_equal(v, "a2");
    free(v);
    c1->leader->rev++;
    assert_int_equal(proclaim(c, c1->leader, "x", &st), NET_GRPC_UNKNOWN);
    assert_string_equal(st.message, "election: not leader");
    c1->leader->rev--;
    {
        V3electionpb__ProclaimRequest r = V3ELECTIONPB__PROCLAIM_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        assert_int_equal(net_grpc_unary(c, "/v3electionpb.Election/Proclaim", &r.base,
                                        &v3electionpb__proclaim_response__descriptor, &resp,
                                        &st, 0),
                         NET_GRPC_UNKNOWN);
        assert_string_equal(st.message, "\"leader\" field must be provided");
    }

    /* resigning hands the election to the waiting candidate */
    {
        V3electionpb__ResignRequest r = V3ELECTIONPB__RESIGN_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        r.leader = c1->leader;
        assert_int_equal(net_grpc_unary(c, "/v3electionpb.Election/Resign", &r.base,
                                        &v3electionpb__resign_response__descriptor, &resp, &st, 0),
                         NET_GRPC_OK);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    assert_true(wait_pending(c, &p, 5000));
    assert_int_equal(p.code, NET_GRPC_OK);
    c2 = (V3electionpb__CampaignResponse *)p.resp;
    snprintf(want, sizeof want, "el/%llx", (unsigned long long)lease2);
    assert_memory_equal(c2->leader->key.data, want, strlen(want));
    v = observed(obs);
    assert_string_equal(v, "b");
    free(v);
    v = leader_value(c, "el", &st);
    assert_string_equal(v, "b");
    free(v);

    /* the leader's lease ends: no leader */
    lease_revoke(c, lease2);
    assert_null(leader_value(c, "el", &st));
    assert_string_equal(st.message, "election: no leader");

    net_grpc_stream_free(obs);
    protobuf_c_message_free_unpacked(&c1->base, NULL);
    protobuf_c_message_free_unpacked(&c2->base, NULL);
    net_grpc_client_free(oc);
    net_grpc_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readonly_txns),
        cmocka_unit_test(watch_fragments),
        cmocka_unit_test(lock_service),
        cmocka_unit_test(election_service),
    };
    int rc;
    dir = test_tmpdir("node-extra");
    setenv("PLINTH_UNSAFE_NO_FSYNC", "1", 1); /* many small writes; durability is not tested here */
    port = 20000 + (int)((getpid() * 7) % 20000) * 2 % 40000;
    if (port > 60000)
        port -= 30000;
    child = start_member();
    rc = PLINTH_RUN_TESTS("node_extra", tests);
    stop_member();
    test_rmdir(dir);
    free(dir);
    return rc;
}

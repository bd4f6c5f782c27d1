/* test_smoke — one plinth member in a child process (h2c on loopback), driven through the
 * gRPC client: put, get, txn, watch-free checks of etcd's errors, restart with the same
 * data dir keeps the data. */
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

static char *dir;
static int port;
static pid_t child = -1;

static pid_t start_member(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        static struct node_config cfg;
        char url[64], purl[64], cluster[96], dd[512], err[NODE_ERRLEN];
        char *argv[] = {"plinth", "--name=s1", dd, url, purl, cluster, "--log-level=warn", NULL};
        struct event_base *base;
        struct node *n;
        alarm(60); /* never outlive the test */
        snprintf(dd, sizeof dd, "--data-dir=%s/s1", dir);
        snprintf(url, sizeof url, "--listen-client-urls=http://127.0.0.1:%d", port);
        snprintf(purl, sizeof purl, "--initial-advertise-peer-urls=http://127.0.0.1:%d", port + 1);
        snprintf(cluster, sizeof cluster, "--initial-cluster=s1=http://127.0.0.1:%d", port + 1);
        node_config_defaults(&cfg);
        if (node_config_parse(&cfg, 7, argv, err, sizeof err, NULL) != NODE_CONFIG_OK) {
            fprintf(stderr, "config: %s\n", err);
            _exit(3);
        }
        node_config_parse(&cfg, 7, argv, err, sizeof err, NULL);
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
    o.call_timeout_ms = 3000;
    return net_grpc_client_new(&o, NULL);
}

static int put(struct net_grpc_client *c, const char *k, const char *v, struct net_grpc_status *st)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;
    req.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
    req.value = (ProtobufCBinaryData){strlen(v), (uint8_t *)v};
    rc = net_grpc_unary(c, "/etcdserverpb.KV/Put", &req.base, &etcdserverpb__put_response__descriptor,
                        &resp, st, 0);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* The value of k (malloc'd) or NULL. */
static char *get(struct net_grpc_client *c, const char *k)
{
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *resp = NULL;
    struct net_grpc_status st;
    char *v = NULL;
    req.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
    if (net_grpc_unary(c, "/etcdserverpb.KV/Range", &req.base, &etcdserverpb__range_response__descriptor,
                       (ProtobufCMessage **)&resp, &st, 0) != NET_GRPC_OK)
        return NULL;
    if (resp->n_kvs == 1) {
        v = calloc(1, resp->kvs[0]->value.len + 1);
        memcpy(v, resp->kvs[0]->value.data, resp->kvs[0]->value.len);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return v;
}

/* Waits until the member answers a put (it elects itself leader). A member that exits
 * at once lost its port to another process: it is started again on other ports. */
static struct net_grpc_client *wait_ready(bool may_move)
{
    struct net_grpc_client *c = client();
    struct net_grpc_status st = {0};
    int i, status;
    for (i = 0; i < 300; i++) {
        if (put(c, "ready", "1", &st) == NET_GRPC_OK)
            return c;
        if (may_move && waitpid(child, &status, WNOHANG) == child) {
            port = 20000 + (port + 7919 - 20000) % 40000;
            child = start_member();
            net_grpc_client_free(c);
            c = client();
        }
        usleep(100000);
    }
    net_grpc_client_free(c);
    fail_msg("member not ready: %s", st.message);
    return NULL;
}

static void put_get_and_errors(void **state)
{
    struct net_grpc_client *c;
    struct net_grpc_status st;
    char *v;
    (void)state;
    child = start_member();
    assert_true(child > 0);
    c = wait_ready(true);
    assert_int_equal(put(c, "foo", "bar", &st), NET_GRPC_OK);
    v = get(c, "foo");
    assert_non_null(v);
    assert_string_equal(v, "bar");
    free(v);
    /* etcd's exact error for an empty key */
    assert_int_equal(put(c, "", "x", &st), NET_GRPC_INVALID_ARGUMENT);
    assert_string_equal(st.message, "etcdserver: key is not provided");
    /* a txn that puts the same key twice */
    {
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        Etcdserverpb__RequestOp o1 = ETCDSERVERPB__REQUEST_OP__INIT, o2 = ETCDSERVERPB__REQUEST_OP__INIT;
        Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
        Etcdserverpb__RequestOp *ops[2] = {&o1, &o2};
        ProtobufCMessage *resp = NULL;
        p.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
        o1.request_case = o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        o1.request_put = o2.request_put = &p;
        t.success = ops;
        t.n_success = 2;
        assert_int_equal(net_grpc_unary(c, "/etcdserverpb.KV/Txn", &t.base,
                                        &etcdserverpb__txn_response__descriptor, &resp, &st, 0),
                         NET_GRPC_INVALID_ARGUMENT);
        assert_string_equal(st.message, "etcdserver: duplicate key given in txn request");
    }
    /* a read at a future revision */
    {
        Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        r.key = (ProtobufCBinaryData){3, (uint8_t *)"foo"};
        r.revision = 1000000;
        assert_int_equal(net_grpc_unary(c, "/etcdserverpb.KV/Range", &r.base,
                                        &etcdserverpb__range_response__descriptor, &resp, &st, 0),
                         NET_GRPC_OUT_OF_RANGE);
        assert_string_equal(st.message, "etcdserver: mvcc: required revision is a future revision");
    }
    /* status names a leader and etcd's version */
    {
        Etcdserverpb__StatusRequest r = ETCDSERVERPB__STATUS_REQUEST__INIT;
        Etcdserverpb__StatusResponse *resp = NULL;
        assert_int_equal(net_grpc_unary(c, "/etcdserverpb.Maintenance/Status", &r.base,
                                        &etcdserverpb__status_response__descriptor,
                                        (ProtobufCMessage **)&resp, &st, 0),
                         NET_GRPC_OK);
        assert_true(resp->leader != 0);
        assert_true(resp->leader == resp->header->member_id);
        assert_string_equal(resp->version, "3.5.0");
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    net_grpc_client_free(c);

    /* kill -9 and restart on the same data dir: the write is there */
    stop_member();
    child = start_member();
    c = wait_ready(false);
    v = get(c, "foo");
    assert_non_null(v);
    assert_string_equal(v, "bar");
    free(v);
    net_grpc_client_free(c);
    stop_member();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_and_errors),
    };
    int rc;
    dir = test_tmpdir("node-smoke");
    port = 20000 + (int)(getpid() % 20000) * 2 % 40000;
    if (port > 60000)
        port -= 30000;
    rc = PLINTH_RUN_TESTS("node_smoke", tests);
    stop_member();
    test_rmdir(dir);
    free(dir);
    return rc;
}

/* test_grpc_client — plinth's gRPC client against plinth's gRPC server on loopback: unary
 * and streaming round trips over TLS and h2c, deadlines, fail-over, status text, limits. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/grpc_client.h"
#include "net/grpc_client_internal.h" /* to look at a stream's receive queue */
#include "net/grpc_server.h"
#include "net/tls.h"
#include "rpc.pb-c.h"
#include "tests/lib/testlib.h"
#include "tests/unit/net/grpc_test_certs.h"

static struct test_certs certs;
#define CP(name) test_cert_path(&certs, certs.dir, (name))
#define RP(name) test_cert_path(&certs, certs.rogue, (name))

struct fx {
    struct event_base *base;
    struct net_grpc_server *srv;
    SSL_CTX *sctx;
    char h2c[64], tls[64];
    struct net_grpc_call *hung;   /* a unary call left unanswered */
    int half_closes;
};
static struct fx F;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- server handlers --------------------------------------------------------------- */

static void hung_closed(struct net_grpc_call *call, void *user, int err)
{
    (void)call, (void)user, (void)err;
    F.hung = NULL;
}

static void unary(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    char buf[64];
    if (len > 5 && !memcmp(msg, "fail:", 5)) {
        snprintf(buf, sizeof buf, "%.*s", (int)len - 5, (const char *)msg + 5);
        net_grpc_call_finish(call, NET_GRPC_FAILED_PRECONDITION, buf);
    } else if (len == 4 && !memcmp(msg, "hang", 4)) {
        F.hung = call;
        net_grpc_call_set_close_cb(call, hung_closed);
    } else if (len == 9 && !memcmp(msg, "deadline?", 9)) {
        int64_t d = net_grpc_call_deadline_ms(call);
        snprintf(buf, sizeof buf, "%lld", d ? (long long)(d - net_grpc_now_ms()) : -1LL);
        net_grpc_call_reply(call, (const uint8_t *)buf, strlen(buf));
    } else if (len == 5 && !memcmp(msg, "meta?", 5)) {
        const char *v = net_grpc_call_header(call, "token");
        net_grpc_call_reply(call, (const uint8_t *)(v ? v : "-"), strlen(v ? v : "-"));
    } else if (len == 3 && !memcmp(msg, "big", 3)) {
        static uint8_t big[2 << 20];
        net_grpc_call_reply(call, big, sizeof big);
    } else {
        net_grpc_call_reply(call, msg, len);
    }
}

static void bidi_half_closed(struct net_grpc_call *call, void *user)
{
    (void)user;
    F.half_closes++;
    net_grpc_call_finish(call, NET_GRPC_OK, NULL);
}

static void bidi(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    const char *hl = net_grpc_call_header(call, "hasleader");
    if (!hl || strcmp(hl, "true") != 0) {
        net_grpc_call_finish(call, NET_GRPC_UNAVAILABLE, "etcdserver: no leader");
        return;
    }
    net_grpc_call_set_half_close_cb(call, bidi_half_closed);
    net_grpc_call_send(call, msg, len);
    net_grpc_call_send(call, msg, len);
}

static void many(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
    int n = atoi(buf);
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "m%d", i);
        net_grpc_call_send(call, (const uint8_t *)buf, strlen(buf));
    }
    net_grpc_call_finish(call, NET_GRPC_OK, NULL);
}

/* Streams 64 KiB messages as fast as the client lets it. */
struct flood {
    int sent, total;
};
static struct flood *last_flood;

static void flood_more(struct net_grpc_call *call, void *user)
{
    struct flood *f = user;
    static uint8_t chunk[64 << 10];
    while (f->sent < f->total) {
        chunk[0] = (uint8_t)f->sent;
        if (net_grpc_call_send(call, chunk, sizeof chunk) != 0)
            return;   /* NET_EFULL: the writable callback continues */
        f->sent++;
    }
    net_grpc_call_finish(call, NET_GRPC_OK, NULL);
}

static void flood_closed(struct net_grpc_call *call, void *user, int err)
{
    (void)call, (void)err;
    if (last_flood == user)
        last_flood = NULL;
    free(user);
}

static void flood(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)msg, (void)len, (void)ud;
    struct flood *f = calloc(1, sizeof *f);
    f->total = 400;
    last_flood = f;
    net_grpc_call_set_user(call, f);
    net_grpc_call_set_close_cb(call, flood_closed);
    net_grpc_call_set_writable_cb(call, flood_more);
    flood_more(call, f);
}

static void kv_put(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    Etcdserverpb__PutRequest *req = etcdserverpb__put_request__unpack(NULL, len, msg);
    if (!req) {
        net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "bad request");
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = (int64_t)req->key.len + (int64_t)req->value.len;
    Etcdserverpb__PutResponse resp = ETCDSERVERPB__PUT_RESPONSE__INIT;
    resp.header = &h;
    net_grpc_call_reply_msg(call, &resp.base);
    etcdserverpb__put_request__free_unpacked(req, NULL);
}

static int fx_setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    F.base = event_base_new();
    assert_non_null(F.base);
    struct net_tls_server_opts so = {.cert_file = CP("server.pem"),
                                     .key_file = CP("server-key.pem"),
                                     .ca_file = CP("ca.pem"),
                                     .client_cert_auth = true};
    char err[NET_TLS_ERRLEN];
    assert_int_equal(net_tls_server_ctx_new(&so, &F.sctx, err, sizeof err), 0);
    struct net_grpc_server_opts o = {.ssl_ctx = F.sctx};
    assert_int_equal(net_grpc_server_new(F.base, &o, &F.srv), 0);
    assert_int_equal(net_grpc_server_register(F.srv, "/test.Echo/Unary", NET_GRPC_UNARY, unary,
                                              NULL), 0);
    assert_int_equal(net_grpc_server_register(F.srv, "/test.Echo/Bidi", NET_GRPC_BIDI, bidi,
                                              NULL), 0);
    assert_int_equal(net_grpc_server_register(F.srv, "/test.Echo/Many", NET_GRPC_SERVER_STREAM,
                                              many, NULL), 0);
    assert_int_equal(net_grpc_server_register(F.srv, "/test.Echo/Flood", NET_GRPC_SERVER_STREAM,
                                              flood, NULL), 0);
    assert_int_equal(net_grpc_server_register(F.srv, "/etcdserverpb.KV/Put", NET_GRPC_UNARY,
                                              kv_put, NULL), 0);
    uint16_t p1, p2;
    assert_int_equal(net_grpc_server_listen(F.srv, "http://127.0.0.1:0", &p1, err, sizeof err),
                     0);
    assert_int_equal(net_grpc_server_listen(F.srv, "https://127.0.0.1:0", &p2, err, sizeof err),
                     0);
    snprintf(F.h2c, sizeof F.h2c, "http://127.0.0.1:%u", p1);
    snprintf(F.tls, sizeof F.tls, "https://127.0.0.1:%u", p2);
    return 0;
}

static int fx_teardown(void **state)
{
    (void)state;
    net_grpc_server_free(F.srv);
    net_tls_ctx_free(F.sctx);
    event_base_free(F.base);
    return 0;
}

static struct net_grpc_client *client(const char *endpoints, const char *ca, const char *cert,
                                      const char *key, int call_timeout_ms)
{
    struct net_grpc_client_opts o = {.endpoints = endpoints, .ca_file = ca, .cert_file = cert,
                                     .key_file = key, .base = F.base,
                                     .call_timeout_ms = call_timeout_ms,
                                     .dial_timeout_ms = 2000};
    struct net_grpc_status st;
    struct net_grpc_client *c = net_grpc_client_new(&o, &st);
    if (!c)
        fprintf(stderr, "client: %s\n", st.message);
    assert_non_null(c);
    return c;
}

static int call_str(struct net_grpc_client *c, const char *req, char *out, size_t outlen,
                    struct net_grpc_status *st, int timeout_ms)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    int code = net_grpc_unary_raw(c, "/test.Echo/Unary", (const uint8_t *)req, strlen(req),
                                  &resp, &rlen, st, timeout_ms);
    if (out)
        snprintf(out, outlen, "%.*s", (int)rlen, resp ? (const char *)resp : "");
    free(resp);
    return code;
}

/* A port on loopback that refuses connections. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* --- tests ------------------------------------------------------------------------- */

static void test_unary_h2c(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.h2c, NULL, NULL, NULL, 0);
    struct net_grpc_status st;
    char out[64];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(call_str(c, "hello", out, sizeof out, &st, 0), NET_GRPC_OK);
        assert_string_equal(out, "hello");
    }
    /* an empty request message is valid protobuf */
    uint8_t *resp = (uint8_t *)1;
    size_t rlen = 99;
    assert_int_equal(net_grpc_unary_raw(c, "/test.Echo/Unary", NULL, 0, &resp, &rlen, &st, 0),
                     NET_GRPC_OK);
    assert_int_equal(rlen, 0);
    free(resp);
    net_grpc_client_free(c);
}

static void test_unary_tls_etcd_message(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.tls, CP("ca.pem"), CP("client.pem"),
                                       CP("client-key.pem"), 0);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){3, (uint8_t *)"foo"};
    req.value = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    int code = net_grpc_unary(c, "/etcdserverpb.KV/Put", &req.base,
                              &etcdserverpb__put_response__descriptor, &resp, &st, 0);
    if (code)
        fprintf(stderr, "put: %s\n", st.message);
    assert_int_equal(code, NET_GRPC_OK);
    Etcdserverpb__PutResponse *pr = (Etcdserverpb__PutResponse *)resp;
    assert_non_null(pr->header);
    assert_int_equal(pr->header->revision, 8);
    protobuf_c_message_free_unpacked(resp, NULL);
    net_grpc_client_free(c);
}

static void test_status_text(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.h2c, NULL, NULL, NULL, 0);
    struct net_grpc_status st;
    const char *text = "etcdserver: mvcc: required revision has been compacted (100%)";
    char req[128];
    snprintf(req, sizeof req, "fail:%s", text);
    assert_int_equal(call_str(c, req, NULL, 0, &st, 0), NET_GRPC_FAILED_PRECONDITION);
    assert_int_equal(st.code, NET_GRPC_FAILED_PRECONDITION);
    assert_string_equal(st.message, text);
    /* unknown method: UNIMPLEMENTED from the server */
    uint8_t *resp;
    size_t rlen;
    assert_int_equal(net_grpc_unary_raw(c, "/nope.Svc/Nope", (const uint8_t *)"x", 1, &resp,
                                        &rlen, &st, 0), NET_GRPC_UNIMPLEMENTED);
    assert_null(resp);
    assert_string_equal(net_grpc_code_name(NET_GRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
    net_grpc_client_free(c);
}

static void test_deadline(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.h2c, NULL, NULL, NULL, 0);
    struct net_grpc_status st;
    char out[64];
    /* the grpc-timeout header reaches the server */
    assert_int_equal(call_str(c, "deadline?", out, sizeof out, &st, 3000), NET_GRPC_OK);
    long left = atol(out);
    assert_true(left > 2000 && left <= 3000);
    /* default deadline applies too (5 s) */
    assert_int_equal(call_str(c, "deadline?", out, sizeof out, &st, 0), NET_GRPC_OK);
    assert_true(atol(out) > 4000);
    /* no deadline: none sent */
    assert_int_equal(call_str(c, "deadline?", out, sizeof out, &st, -1), NET_GRPC_OK);
    assert_string_equal(out, "-1");
    /* a call the server never answers ends at its deadline */
    uint64_t t0 = now_ms();
    assert_int_equal(call_str(c, "hang", NULL, 0, &st, 200), NET_GRPC_DEADLINE_EXCEEDED);
    uint64_t el = now_ms() - t0;
    assert_true(el >= 190 && el < 1500);
    assert_non_null(strstr(st.message, "deadline exceeded"));
    /* the client reset the stream: the server's call closes */
    for (int i = 0; i < 50 && F.hung; i++)
        event_base_loop(F.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(2000);
    assert_null(F.hung);
    /* and the connection still works */
    assert_int_equal(call_str(c, "again", out, sizeof out, &st, 0), NET_GRPC_OK);
    net_grpc_client_free(c);
}

static void test_failover(void **state)
{
    (void)state;
    char eps[160];
    int dead = closed_port();
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d, %s", dead, F.h2c);
    struct net_grpc_client *c = client(eps, NULL, NULL, NULL, 0);
    struct net_grpc_status st;
    char out[64];
    assert_int_equal(call_str(c, "over", out, sizeof out, &st, 0), NET_GRPC_OK);
    assert_string_equal(out, "over");
    assert_string_equal(net_grpc_client_endpoint(c), F.h2c);
    net_grpc_client_free(c);

    /* every endpoint down: UNAVAILABLE naming the endpoint and the reason */
    int dead2 = closed_port();
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d,127.0.0.1:%d", dead, dead2);
    c = client(eps, NULL, NULL, NULL, 0);
    uint64_t t0 = now_ms();
    assert_int_equal(call_str(c, "x", NULL, 0, &st, 0), NET_GRPC_UNAVAILABLE);
    assert_true(now_ms() - t0 < 2000);
    char want[96];
    snprintf(want, sizeof want, "dial 127.0.0.1:%d: ", dead2);
    if (!strstr(st.message, want) || !strstr(st.message, "onnection refused"))
        fprintf(stderr, "message: %s\n", st.message);
    assert_non_null(strstr(st.message, want));
    assert_non_null(strstr(st.message, "onnection refused"));
    net_grpc_client_free(c);

    /* TLS endpoint listed after a dead one */
    snprintf(eps, sizeof eps, "https://127.0.0.1:%d,%s", dead, F.tls);
    c = client(eps, CP("ca.pem"), CP("client.pem"), CP("client-key.pem"), 0);
    assert_int_equal(call_str(c, "tls", out, sizeof out, &st, 0), NET_GRPC_OK);
    net_grpc_client_free(c);
}

static void test_tls_refusals(void **state)
{
    (void)state;
    struct net_grpc_status st;
    /* server signed by a CA we do not trust */
    struct net_grpc_client *c = client(F.tls, RP("ca.pem"), RP("client.pem"),
                                       RP("client-key.pem"), 0);
    assert_int_equal(call_str(c, "x", NULL, 0, &st, 0), NET_GRPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "certificate verify failed"));
    net_grpc_client_free(c);
    /* no client certificate for a server that requires one */
    c = client(F.tls, CP("ca.pem"), NULL, NULL, 0);
    assert_int_equal(call_str(c, "x", NULL, 0, &st, 0), NET_GRPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "dial https://127.0.0.1:"));
    net_grpc_client_free(c);
    /* the certificate names 127.0.0.1, ::1 and localhost, but not 127.0.0.2 */
    uint16_t p2;
    char err[128], url[64];
    assert_int_equal(net_grpc_server_listen(F.srv, "https://127.0.0.2:0", &p2, err, sizeof err),
                     0);
    snprintf(url, sizeof url, "https://127.0.0.2:%u", p2);
    c = client(url, CP("ca.pem"), CP("client.pem"), CP("client-key.pem"), 0);
    assert_int_equal(call_str(c, "x", NULL, 0, &st, 0), NET_GRPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "certificate verify failed"));
    net_grpc_client_free(c);
    /* and "localhost" matches its DNS name */
    snprintf(url, sizeof url, "https://localhost:%s", strrchr(F.tls, ':') + 1);
    c = client(url, CP("ca.pem"), CP("client.pem"), CP("client-key.pem"), 0);
    int code = call_str(c, "x", NULL, 0, &st, 0);
    if (code)
        fprintf(stderr, "localhost: %s\n", st.message);
    assert_int_equal(code, NET_GRPC_OK);
    net_grpc_client_free(c);
    /* missing CA file: the constructor says which */
    struct net_grpc_client_opts o = {.endpoints = F.tls, .ca_file = "/nonexistent/ca.pem"};
    assert_null(net_grpc_client_new(&o, &st));
    assert_non_null(strstr(st.message, "/nonexistent/ca.pem"));
    /* malformed endpoint */
    o = (struct net_grpc_client_opts){.endpoints = "ftp://x:1"};
    assert_null(net_grpc_client_new(&o, &st));
    assert_int_equal(st.code, NET_GRPC_INVALID_ARGUMENT);
}

static void test_metadata_and_limits(void **state)
{
    (void)state;
    const char *md[] = {"token", "abc123", NULL};
    struct net_grpc_client_opts o = {.endpoints = F.h2c, .base = F.base, .metadata = md,
                                     .max_recv_bytes = 1 << 20};
    struct net_grpc_status st;
    struct net_grpc_client *c = net_grpc_client_new(&o, &st);
    assert_non_null(c);
    char out[64];
    assert_int_equal(call_str(c, "meta?", out, sizeof out, &st, 0), NET_GRPC_OK);
    assert_string_equal(out, "abc123");
    const char *md2[] = {"token", "zz9", NULL};
    assert_int_equal(net_grpc_client_set_metadata(c, md2), 0);
    assert_int_equal(call_str(c, "meta?", out, sizeof out, &st, 0), NET_GRPC_OK);
    assert_string_equal(out, "zz9");
    /* a reply over max_recv_bytes */
    assert_int_equal(call_str(c, "big", NULL, 0, &st, 0), NET_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(st.message, "larger than max"));
    assert_int_equal(call_str(c, "after", out, sizeof out, &st, 0), NET_GRPC_OK);
    net_grpc_client_free(c);
    /* the default limit takes it */
    c = client(F.tls, CP("ca.pem"), CP("client.pem"), CP("client-key.pem"), 0);
    uint8_t *resp;
    size_t rlen;
    assert_int_equal(net_grpc_unary_raw(c, "/test.Echo/Unary", (const uint8_t *)"big", 3, &resp,
                                        &rlen, &st, 0), NET_GRPC_OK);
    assert_int_equal(rlen, 2 << 20);
    free(resp);
    /* a request near the server's limit (1.5 MiB) goes, one over it is refused */
    size_t n = NET_GRPC_DEFAULT_MAX_REQUEST - 16;
    uint8_t *big = calloc(1, NET_GRPC_DEFAULT_MAX_REQUEST + 16);
    assert_int_equal(net_grpc_unary_raw(c, "/test.Echo/Unary", big, n, &resp, &rlen, &st, 0),
                     NET_GRPC_OK);
    assert_int_equal(rlen, n);
    free(resp);
    assert_int_equal(net_grpc_unary_raw(c, "/test.Echo/Unary", big,
                                        NET_GRPC_DEFAULT_MAX_REQUEST + 16, &resp, &rlen, &st, 0),
                     NET_GRPC_RESOURCE_EXHAUSTED);
    free(big);
    net_grpc_client_free(c);
}

static void test_bidi_sync(void **state)
{
    (void)state;
    for (int tls = 0; tls < 2; tls++) {
        struct net_grpc_client *c = tls ? client(F.tls, CP("ca.pem"), CP("client.pem"),
                                                 CP("client-key.pem"), 0) :
                                          client(F.h2c, NULL, NULL, NULL, 0);
        const char *md[] = {"hasleader", "true", NULL};
        struct net_grpc_stream_opts so = {.metadata = md};
        struct net_grpc_stream *s;
        assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Bidi", &so, &s), 0);
        int hc = F.half_closes;
        for (int i = 0; i < 10; i++) {
            char m[16];
            snprintf(m, sizeof m, "w%d", i);
            assert_int_equal(net_grpc_stream_send(s, (const uint8_t *)m, strlen(m)), 0);
            for (int j = 0; j < 2; j++) {
                uint8_t *got;
                size_t len;
                assert_int_equal(net_grpc_stream_recv(s, &got, &len, 2000), NET_GRPC_RECV_MSG);
                assert_int_equal(len, strlen(m));
                assert_memory_equal(got, m, len);
                free(got);
            }
        }
        uint8_t *got;
        size_t len;
        /* nothing more: a short wait times out, the stream stays open */
        assert_int_equal(net_grpc_stream_recv(s, &got, &len, 50), NET_GRPC_RECV_TIMEOUT);
        assert_false(net_grpc_stream_closed(s));
        assert_int_equal(net_grpc_stream_close_send(s), 0);
        assert_int_equal(net_grpc_stream_send(s, (const uint8_t *)"late", 4), NET_ECLOSED);
        assert_int_equal(net_grpc_stream_recv(s, &got, &len, 2000), NET_GRPC_RECV_CLOSED);
        assert_int_equal(net_grpc_stream_status(s)->code, NET_GRPC_OK);
        assert_int_equal(F.half_closes, hc + 1);
        net_grpc_stream_free(s);

        /* without the header the server refuses with etcd's text */
        assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Bidi", NULL, &s), 0);
        assert_int_equal(net_grpc_stream_send(s, (const uint8_t *)"x", 1), 0);
        assert_int_equal(net_grpc_stream_recv(s, &got, &len, 2000), NET_GRPC_RECV_CLOSED);
        assert_int_equal(net_grpc_stream_status(s)->code, NET_GRPC_UNAVAILABLE);
        assert_string_equal(net_grpc_stream_status(s)->message, "etcdserver: no leader");
        net_grpc_stream_free(s);
        net_grpc_client_free(c);
    }
}

static void test_server_stream(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.h2c, NULL, NULL, NULL, 0);
    struct net_grpc_stream *s;
    assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Many", NULL, &s), 0);
    assert_int_equal(net_grpc_stream_send(s, (const uint8_t *)"500", 3), 0);
    assert_int_equal(net_grpc_stream_close_send(s), 0);
    int n = 0;
    uint8_t *got;
    size_t len;
    int rv;
    while ((rv = net_grpc_stream_recv(s, &got, &len, 2000)) == NET_GRPC_RECV_MSG) {
        char want[16];
        snprintf(want, sizeof want, "m%d", n++);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(got, want, len);
        free(got);
    }
    assert_int_equal(rv, NET_GRPC_RECV_CLOSED);
    assert_int_equal(n, 500);
    assert_int_equal(net_grpc_stream_status(s)->code, NET_GRPC_OK);
    net_grpc_stream_free(s);
    net_grpc_client_free(c);
}

/* A sync reader that does not read holds a bounded queue; HTTP/2 flow control keeps the
 * rest at the server, and everything arrives in order once it reads. */
static void test_slow_reader_bounded(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.tls, CP("ca.pem"), CP("client.pem"),
                                       CP("client-key.pem"), 0);
    struct net_grpc_stream *s;
    assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Flood", NULL, &s), 0);
    assert_int_equal(net_grpc_stream_send(s, (const uint8_t *)"go", 2), 0);
    assert_int_equal(net_grpc_stream_close_send(s), 0);
    net_grpc_client_poll(c, 600);
    struct gc_call *call = (struct gc_call *)s;
    assert_non_null(last_flood);
    assert_true(last_flood->sent < last_flood->total);   /* the server is held back */
    assert_true(call->q_bytes >= GRPC_RECVQ_MAX);           /* we took what we allow */
    assert_true(call->q_bytes <= GRPC_RECVQ_MAX + (2u << 20));
    int n = 0, rv;
    uint8_t *got;
    size_t len;
    while ((rv = net_grpc_stream_recv(s, &got, &len, 3000)) == NET_GRPC_RECV_MSG) {
        assert_int_equal(len, 64 << 10);
        assert_int_equal(got[0], (uint8_t)n);
        n++;
        free(got);
    }
    assert_int_equal(rv, NET_GRPC_RECV_CLOSED);
    assert_int_equal(net_grpc_stream_status(s)->code, NET_GRPC_OK);
    assert_int_equal(n, 400);
    net_grpc_stream_free(s);
    net_grpc_client_free(c);
}

struct cbstate {
    int msgs, closes, code;
    struct net_grpc_stream *s;
    bool free_in_close;
};

static void cb_msg(void *ud, struct net_grpc_stream *s, const uint8_t *msg, size_t len)
{
    (void)msg, (void)len;
    struct cbstate *cs = ud;
    cs->msgs++;
    if (cs->msgs == 4)
        net_grpc_stream_cancel(s);
}

static void cb_close(void *ud, struct net_grpc_stream *s, const struct net_grpc_status *st)
{
    struct cbstate *cs = ud;
    cs->closes++;
    cs->code = st->code;
    if (cs->free_in_close)
        net_grpc_stream_free(s);
}

static void test_stream_callbacks_cancel(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.h2c, NULL, NULL, NULL, 0);
    const char *md[] = {"hasleader", "true", NULL};
    struct cbstate cs = {.free_in_close = true};
    struct net_grpc_stream_opts so = {.metadata = md, .on_msg = cb_msg, .on_close = cb_close,
                                      .ud = &cs};
    assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Bidi", &so, &cs.s), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(net_grpc_stream_send(cs.s, (const uint8_t *)"k", 1), 0);
    for (int i = 0; i < 200 && !cs.closes; i++)
        net_grpc_client_poll(c, 10);
    assert_int_equal(cs.closes, 1);
    assert_int_equal(cs.code, NET_GRPC_CANCELLED);
    assert_int_equal(cs.msgs, 4);   /* nothing after the cancel */
    net_grpc_client_free(c);
}

static void test_stream_deadline_and_free(void **state)
{
    (void)state;
    struct net_grpc_client *c = client(F.h2c, NULL, NULL, NULL, 0);
    const char *md[] = {"hasleader", "true", NULL};
    struct cbstate cs = {0};
    struct net_grpc_stream_opts so = {.metadata = md, .on_close = cb_close, .ud = &cs,
                                      .timeout_ms = 150};
    struct net_grpc_stream *s;
    assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Bidi", &so, &s), 0);
    uint64_t t0 = now_ms();
    uint8_t *got;
    size_t len;
    assert_int_equal(net_grpc_stream_recv(s, &got, &len, 3000), NET_GRPC_RECV_CLOSED);
    assert_true(now_ms() - t0 < 1500);
    assert_int_equal(net_grpc_stream_status(s)->code, NET_GRPC_DEADLINE_EXCEEDED);
    net_grpc_client_poll(c, 0);
    assert_int_equal(cs.closes, 1);
    /* a stream handle outlives its client */
    struct net_grpc_stream *s2;
    assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Bidi", NULL, &s2), 0);
    net_grpc_client_free(c);
    assert_true(net_grpc_stream_closed(s2));
    assert_int_equal(net_grpc_stream_send(s2, (const uint8_t *)"x", 1), NET_ECLOSED);
    net_grpc_stream_free(s2);
    net_grpc_stream_free(s);
}

struct asyncstate {
    int done, ok, bad;
};

static void async_done(void *ud, const struct net_grpc_status *st, const uint8_t *resp,
                       size_t len)
{
    struct asyncstate *as = ud;
    as->done++;
    if (st->code == NET_GRPC_OK && len == 4 && !memcmp(resp, "ping", 4))
        as->ok++;
    else
        as->bad++;
}

static void async_msg_done(void *ud, const struct net_grpc_status *st, ProtobufCMessage *m)
{
    struct asyncstate *as = ud;
    as->done++;
    if (st->code == NET_GRPC_OK && m &&
        ((Etcdserverpb__PutResponse *)m)->header->revision == 2)
        as->ok++;
    else
        as->bad++;
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

static void test_async_many(void **state)
{
    (void)state;
    enum { NC = 4, PER = 100 };
    struct net_grpc_client *cs[NC];
    SSL_CTX *ctx;
    struct net_tls_client_opts to = {.ca_file = CP("ca.pem"), .cert_file = CP("client.pem"),
                                     .key_file = CP("client-key.pem")};
    char err[NET_TLS_ERRLEN];
    assert_int_equal(net_tls_client_ctx_new(&to, &ctx, err, sizeof err), 0);
    struct asyncstate as = {0};
    for (int i = 0; i < NC; i++) {
        struct net_grpc_client_opts o = {.endpoints = F.tls, .ssl_ctx = ctx, .base = F.base};
        cs[i] = net_grpc_client_new(&o, NULL);
        assert_non_null(cs[i]);
        for (int j = 0; j < PER; j++)
            assert_int_equal(net_grpc_unary_async(cs[i], "/test.Echo/Unary",
                                                  (const uint8_t *)"ping", 4, 0, async_done,
                                                  &as), 0);
    }
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){1, (uint8_t *)"a"};
    req.value = (ProtobufCBinaryData){1, (uint8_t *)"b"};
    assert_int_equal(net_grpc_unary_msg_async(cs[0], "/etcdserverpb.KV/Put", &req.base,
                                              &etcdserverpb__put_response__descriptor, 0,
                                              async_msg_done, &as), 0);
    assert_int_equal(as.done, 0);   /* callbacks never run inside the starting call */
    uint64_t t0 = now_ms();
    while (as.done < NC * PER + 1 && now_ms() - t0 < 10000)
        event_base_loop(F.base, EVLOOP_ONCE);
    assert_int_equal(as.done, NC * PER + 1);
    assert_int_equal(as.ok, NC * PER + 1);
    for (int i = 0; i < NC; i++)
        net_grpc_client_free(cs[i]);
    net_tls_ctx_free(ctx);
}

static void test_server_gone(void **state)
{
    (void)state;
    /* a second server on its own base-less port: freed while a call waits on it */
    struct net_grpc_server *srv;
    assert_int_equal(net_grpc_server_new(F.base, NULL, &srv), 0);
    assert_int_equal(net_grpc_server_register(srv, "/test.Echo/Unary", NET_GRPC_UNARY, unary,
                                              NULL), 0);
    uint16_t port;
    char err[128], url[64];
    assert_int_equal(net_grpc_server_listen(srv, "http://127.0.0.1:0", &port, err, sizeof err),
                     0);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    struct net_grpc_client *c = client(url, NULL, NULL, NULL, 0);
    struct net_grpc_status st;
    char out[16];
    assert_int_equal(call_str(c, "one", out, sizeof out, &st, 0), NET_GRPC_OK);
    struct asyncstate as = {0};
    assert_int_equal(net_grpc_unary_async(c, "/test.Echo/Unary", (const uint8_t *)"hang", 4, 0,
                                          async_done, &as), 0);
    for (int i = 0; i < 100 && !F.hung; i++)
        event_base_loop(F.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    assert_non_null(F.hung);
    net_grpc_server_free(srv);
    uint64_t t0 = now_ms();
    while (!as.done && now_ms() - t0 < 3000)
        event_base_loop(F.base, EVLOOP_ONCE);
    assert_int_equal(as.done, 1);
    assert_int_equal(as.bad, 1);
    /* the next call redials, finds nothing, and says so */
    assert_int_equal(call_str(c, "two", NULL, 0, &st, 0), NET_GRPC_UNAVAILABLE);
    assert_non_null(strstr(st.message, "dial http://127.0.0.1:"));
    net_grpc_client_free(c);
}

/* A server that stops answering (SIGSTOP: the TCP connection stays up) is noticed by the
 * keepalive pings, and the open stream fails instead of waiting forever. */
static void test_keepalive_detects_stopped_server(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        struct event_base *b = event_base_new();
        struct net_grpc_server *srv;
        uint16_t port = 0;
        if (net_grpc_server_new(b, NULL, &srv) ||
            net_grpc_server_register(srv, "/test.Echo/Bidi", NET_GRPC_BIDI, bidi, NULL) ||
            net_grpc_server_listen(srv, "http://127.0.0.1:0", &port, NULL, 0))
            _exit(1);
        if (write(pfd[1], &port, sizeof port) != sizeof port)
            _exit(1);
        alarm(20);
        event_base_dispatch(b);
        _exit(0);
    }
    close(pfd[1]);
    uint16_t port = 0;
    assert_int_equal(read(pfd[0], &port, sizeof port), (ssize_t)sizeof port);
    close(pfd[0]);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    struct net_grpc_client_opts o = {.endpoints = url, .keepalive_ms = 100,
                                     .keepalive_timeout_ms = 200};
    struct net_grpc_client *c = net_grpc_client_new(&o, NULL);   /* its own loop */
    assert_non_null(c);
    const char *md[] = {"hasleader", "true", NULL};
    struct net_grpc_stream_opts so = {.metadata = md};
    struct net_grpc_stream *s;
    assert_int_equal(net_grpc_stream_open(c, "/test.Echo/Bidi", &so, &s), 0);
    assert_int_equal(net_grpc_stream_send(s, (const uint8_t *)"a", 1), 0);
    uint8_t *got;
    size_t len;
    assert_int_equal(net_grpc_stream_recv(s, &got, &len, 3000), NET_GRPC_RECV_MSG);
    free(got);
    /* idle but healthy: pings are answered, the stream stays open */
    assert_int_equal(net_grpc_stream_recv(s, &got, &len, 600), NET_GRPC_RECV_MSG);
    free(got);
    assert_int_equal(net_grpc_stream_recv(s, &got, &len, 600), NET_GRPC_RECV_TIMEOUT);
    kill(pid, SIGSTOP);
    uint64_t t0 = now_ms();
    assert_int_equal(net_grpc_stream_recv(s, &got, &len, 5000), NET_GRPC_RECV_CLOSED);
    uint64_t el = now_ms() - t0;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(net_grpc_stream_status(s)->code, NET_GRPC_UNAVAILABLE);
    assert_non_null(strstr(net_grpc_stream_status(s)->message, "keepalive"));
    assert_true(el < 1500);
    net_grpc_stream_free(s);
    net_grpc_client_free(c);
}

/* A server that shuts down gracefully (GOAWAY) finishes the call in flight on the old
 * connection while new calls go to the next endpoint. */
static void test_goaway_moves_on(void **state)
{
    (void)state;
    struct net_grpc_server *s1;
    assert_int_equal(net_grpc_server_new(F.base, NULL, &s1), 0);
    assert_int_equal(net_grpc_server_register(s1, "/test.Echo/Unary", NET_GRPC_UNARY, unary,
                                              NULL), 0);
    uint16_t port;
    char err[128], eps[160];
    assert_int_equal(net_grpc_server_listen(s1, "http://127.0.0.1:0", &port, err, sizeof err),
                     0);
    snprintf(eps, sizeof eps, "http://127.0.0.1:%u,%s", port, F.h2c);
    struct net_grpc_client *c = client(eps, NULL, NULL, NULL, 0);
    struct net_grpc_status st;
    char out[32];
    assert_int_equal(call_str(c, "first", out, sizeof out, &st, 0), NET_GRPC_OK);
    struct asyncstate as = {0};
    assert_int_equal(net_grpc_unary_async(c, "/test.Echo/Unary", (const uint8_t *)"hang", 4, 0,
                                          async_done, &as), 0);
    for (int i = 0; i < 100 && !F.hung; i++)
        event_base_loop(F.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    assert_non_null(F.hung);
    struct net_grpc_call *hung = F.hung;
    net_grpc_server_shutdown(s1);
    for (int i = 0; i < 20; i++)
        event_base_loop(F.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    /* new calls: s1 no longer listens, so they land on the second endpoint */
    assert_int_equal(call_str(c, "second", out, sizeof out, &st, 0), NET_GRPC_OK);
    assert_string_equal(out, "second");
    assert_string_equal(net_grpc_client_endpoint(c), F.h2c);
    /* the old call still completes on its draining connection */
    assert_int_equal(as.done, 0);
    assert_int_equal(net_grpc_call_reply(hung, (const uint8_t *)"ping", 4), 0);
    uint64_t t0 = now_ms();
    while (!as.done && now_ms() - t0 < 3000)
        event_base_loop(F.base, EVLOOP_ONCE);
    assert_int_equal(as.ok, 1);
    struct net_grpc_server_stats ss;
    for (int i = 0; i < 200; i++) {
        net_grpc_server_stats(s1, &ss);
        if (!ss.connections_open)
            break;
        event_base_loop(F.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    }
    assert_int_equal(ss.connections_open, 0);
    net_grpc_server_free(s1);
    net_grpc_client_free(c);
}

static void test_helpers(void **state)
{
    (void)state;
    char buf[16];
    net_grpc_format_timeout(250, buf, sizeof buf);
    assert_string_equal(buf, "250m");
    net_grpc_format_timeout(0, buf, sizeof buf);
    assert_string_equal(buf, "1m");
    net_grpc_format_timeout(200000000, buf, sizeof buf);
    assert_string_equal(buf, "200000S");
    char out[32];
    const char *enc = "a%20b%25c%zz%4";
    net_grpc_percent_decode(enc, strlen(enc), out, sizeof out);
    assert_string_equal(out, "a b%c%zz%4");
    net_grpc_percent_decode("abcdef", 6, out, 4);
    assert_string_equal(out, "abc");
    assert_string_equal(net_grpc_code_name(99), "UNKNOWN_CODE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers),
        cmocka_unit_test_setup_teardown(test_unary_h2c, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unary_tls_etcd_message, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_status_text, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_deadline, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failover, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tls_refusals, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_limits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bidi_sync, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_server_stream, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_bounded, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stream_callbacks_cancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stream_deadline_and_free, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_many, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_server_gone, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_goaway_moves_on, fx_setup, fx_teardown),
        cmocka_unit_test(test_keepalive_detects_stopped_server),
    };
    if (test_certs_make(&certs) != 0) {
        fprintf(stderr, "cannot make test certificates\n");
        test_result_line(0, 1);
        return 1;
    }
    int rc = test_run_group("grpc_client", tests, sizeof tests / sizeof tests[0], NULL, NULL);
    test_certs_free(&certs);
    return rc;
}

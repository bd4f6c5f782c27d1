/* grpc_canned_server — a tiny etcd look-alike on plinth's gRPC server for interop tests:
 * KV Put / Range / DeleteRange over an in-memory table, Maintenance Status, and a Watch that
 * answers "created". Lets etcdctl prove the wire (h2c, TLS, client certificates) without
 * Raft or storage.
 *
 *   grpc_canned_server --listen URL [--listen URL2] [--cert F --key F [--ca F]
 *                      [--client-cert-auth]] [--port-file F] [--max-request-bytes N]
 *
 * With port 0 in a URL, the bound ports are written one a line to --port-file. Runs until
 * SIGTERM / SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "net/grpc_server.h"
#include "net/tls.h"
#include "rpc.pb-c.h"

#define CLUSTER_ID 0x1234abcdULL
#define MEMBER_ID 0x42ULL
#define MAX_KEYS 1024

struct entry {
    ProtobufCBinaryData key, value;
    int64_t create_rev, mod_rev, version;
};

static struct entry table[MAX_KEYS];
static size_t nkeys;
static int64_t revision = 1;

static void header(Etcdserverpb__ResponseHeader *h)
{
    h->cluster_id = CLUSTER_ID;
    h->member_id = MEMBER_ID;
    h->revision = revision;
    h->raft_term = 2;
}

static struct entry *find(ProtobufCBinaryData k)
{
    for (size_t i = 0; i < nkeys; i++)
        if (table[i].key.len == k.len && memcmp(table[i].key.data, k.data, k.len) == 0)
            return &table[i];
    return NULL;
}

static ProtobufCBinaryData bin_dup(ProtobufCBinaryData b)
{
    ProtobufCBinaryData r = {b.len, malloc(b.len ? b.len : 1)};
    memcpy(r.data, b.data, b.len);
    return r;
}

static void put(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    Etcdserverpb__PutRequest *req = etcdserverpb__put_request__unpack(NULL, len, msg);
    if (!req) {
        net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "etcdserver: malformed request");
        return;
    }
    struct entry *e = find(req->key);
    revision++;
    if (!e) {
        if (nkeys == MAX_KEYS) {
            net_grpc_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED,
                                 "etcdserver: mvcc: database space exceeded");
            etcdserverpb__put_request__free_unpacked(req, NULL);
            return;
        }
        e = &table[nkeys++];
        e->key = bin_dup(req->key);
        e->create_rev = revision;
    } else {
        free(e->value.data);
    }
    e->value = bin_dup(req->value);
    e->mod_rev = revision;
    e->version++;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(&h);
    Etcdserverpb__PutResponse resp = ETCDSERVERPB__PUT_RESPONSE__INIT;
    resp.header = &h;
    net_grpc_call_reply_msg(call, &resp.base);
    etcdserverpb__put_request__free_unpacked(req, NULL);
}

static void range(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    Etcdserverpb__RangeRequest *req = etcdserverpb__range_request__unpack(NULL, len, msg);
    if (!req) {
        net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "etcdserver: malformed request");
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(&h);
    Etcdserverpb__RangeResponse resp = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    resp.header = &h;
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    Mvccpb__KeyValue *kvs[1] = {&kv};
    struct entry *e = find(req->key); /* exact key only: enough for the interop checks */
    if (e) {
        kv.key = e->key;
        kv.value = e->value;
        kv.create_revision = e->create_rev;
        kv.mod_revision = e->mod_rev;
        kv.version = e->version;
        resp.kvs = kvs;
        resp.n_kvs = req->count_only ? 0 : 1;
        resp.count = 1;
    }
    net_grpc_call_reply_msg(call, &resp.base);
    etcdserverpb__range_request__free_unpacked(req, NULL);
}

static void delete_range(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    Etcdserverpb__DeleteRangeRequest *req =
        etcdserverpb__delete_range_request__unpack(NULL, len, msg);
    if (!req) {
        net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "etcdserver: malformed request");
        return;
    }
    Etcdserverpb__DeleteRangeResponse resp = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
    struct entry *e = find(req->key);
    if (e) {
        revision++;
        free(e->key.data);
        free(e->value.data);
        *e = table[--nkeys];
        resp.deleted = 1;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(&h);
    resp.header = &h;
    net_grpc_call_reply_msg(call, &resp.base);
    etcdserverpb__delete_range_request__free_unpacked(req, NULL);
}

static void status(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)msg, (void)len, (void)ud;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(&h);
    Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
    resp.header = &h;
    resp.version = "3.5.0";
    resp.dbsize = 4096;
    resp.leader = MEMBER_ID;
    resp.raftindex = (uint64_t)revision;
    resp.raftterm = 2;
    resp.raftappliedindex = (uint64_t)revision;
    resp.dbsizeinuse = 4096;
    net_grpc_call_reply_msg(call, &resp.base);
}

/* Watch: each create request gets a "created" answer; no events ever follow. */
static int64_t next_watch_id;
static void watch(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    Etcdserverpb__WatchRequest *req = etcdserverpb__watch_request__unpack(NULL, len, msg);
    if (!req) {
        net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "etcdserver: malformed request");
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(&h);
    Etcdserverpb__WatchResponse resp = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    resp.header = &h;
    if (req->request_union_case == ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST) {
        resp.watch_id = next_watch_id++;
        resp.created = 1;
        net_grpc_call_send_msg(call, &resp.base);
    }
    etcdserverpb__watch_request__free_unpacked(req, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    event_base_loopexit(arg, NULL);
}

static void log_line(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "%s\n", text);
}

int main(int argc, char **argv)
{
    const char *listen[8];
    int nlisten = 0;
    const char *cert = NULL, *key = NULL, *ca = NULL, *port_file = NULL;
    bool cca = false;
    size_t max_req = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--client-cert-auth")) {
            cca = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "grpc_canned_server: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--listen") && nlisten < 8)
            listen[nlisten++] = v;
        else if (!strcmp(a, "--cert"))
            cert = v;
        else if (!strcmp(a, "--key"))
            key = v;
        else if (!strcmp(a, "--ca"))
            ca = v;
        else if (!strcmp(a, "--port-file"))
            port_file = v;
        else if (!strcmp(a, "--max-request-bytes"))
            max_req = (size_t)strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "grpc_canned_server: unknown flag %s\n", a);
            return 2;
        }
    }
    if (nlisten == 0) {
        fprintf(stderr, "usage: grpc_canned_server --listen URL [--cert F --key F [--ca F] "
                        "[--client-cert-auth]] [--port-file F]\n");
        return 2;
    }
    SSL_CTX *ctx = NULL;
    char err[NET_TLS_ERRLEN];
    if (cert) {
        struct net_tls_server_opts to = {.cert_file = cert, .key_file = key, .ca_file = ca,
                                         .client_cert_auth = cca};
        if (net_tls_server_ctx_new(&to, &ctx, err, sizeof err) != 0) {
            fprintf(stderr, "grpc_canned_server: %s\n", err);
            return 1;
        }
    }
    struct event_base *base = event_base_new();
    struct net_grpc_server_opts o = {.ssl_ctx = ctx, .max_request_bytes = max_req,
                                     .log = log_line};
    struct net_grpc_server *srv = NULL;
    if (net_grpc_server_new(base, &o, &srv) != 0)
        return 1;
    net_grpc_server_register(srv, "/etcdserverpb.KV/Put", NET_GRPC_UNARY, put, NULL);
    net_grpc_server_register(srv, "/etcdserverpb.KV/Range", NET_GRPC_UNARY, range, NULL);
    net_grpc_server_register(srv, "/etcdserverpb.KV/DeleteRange", NET_GRPC_UNARY, delete_range,
                             NULL);
    net_grpc_server_register(srv, "/etcdserverpb.Maintenance/Status", NET_GRPC_UNARY, status,
                             NULL);
    net_grpc_server_register(srv, "/etcdserverpb.Watch/Watch", NET_GRPC_BIDI, watch, NULL);
    char ports[256] = "";
    for (int i = 0; i < nlisten; i++) {
        uint16_t port = 0;
        if (net_grpc_server_listen(srv, listen[i], &port, err, sizeof err) != 0) {
            fprintf(stderr, "grpc_canned_server: %s\n", err);
            return 1;
        }
        size_t n = strlen(ports);
        snprintf(ports + n, sizeof ports - n, "%u\n", port);
    }
    if (port_file) { /* written whole, then renamed, so a reader never sees half of it */
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fputs(ports, f) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
            fprintf(stderr, "grpc_canned_server: cannot write %s\n", port_file);
            return 1;
        }
    }
    struct event *sig_term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sig_int = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    event_base_dispatch(base);
    net_grpc_server_free(srv);
    event_free(sig_term);
    event_free(sig_int);
    event_base_free(base);
    net_tls_ctx_free(ctx);
    for (size_t i = 0; i < nkeys; i++) {
        free(table[i].key.data);
        free(table[i].value.data);
    }
    return 0;
}

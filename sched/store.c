/* store — reads, fenced compare-and-swap writes, leases and watches on plinth's store
 * through the gRPC client (etcd's v3 API messages). */
#include "sched/store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.pb-c.h"
#include "net/grpc_client.h"
#include "rpc.pb-c.h"

struct sched_store {
    struct net_grpc_client *c;
    struct net_grpc_stream *ka;  /* LeaseKeepAlive stream, opened on first use */
    int timeout_ms;
    int retry_ms;
    int64_t last_write_rev;
    char err[768];
};

struct sched_watch {
    struct sched_store *s;
    struct net_grpc_stream *st;
    bool created;
};

static void seterr(struct sched_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct sched_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

int64_t sched_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sched_store_open(const struct sched_store_opts *o, struct sched_store **out, char *err,
                     size_t errlen)
{
    struct sched_store *s = calloc(1, sizeof(*s));
    if (!s) return SCHED_ENOMEM;
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000;
    s->retry_ms = o->retry_ms > 0 ? o->retry_ms : 0;
    struct net_grpc_client_opts co = {
        .endpoints = o->endpoints,
        .ca_file = o->ca_file,
        .cert_file = o->cert_file,
        .key_file = o->key_file,
        .dial_timeout_ms = s->timeout_ms < 2000 ? s->timeout_ms : 2000,
        .call_timeout_ms = s->timeout_ms,
        .keepalive_ms = 2000,
        .keepalive_timeout_ms = 2000,
    };
    struct net_grpc_status st = {0};
    s->c = net_grpc_client_new(&co, &st);
    if (!s->c) {
        if (err) snprintf(err, errlen, "store: %s", st.message);
        free(s);
        return st.code == NET_GRPC_INVALID_ARGUMENT ? SCHED_EINVAL : SCHED_ESTORE;
    }
    *out = s;
    return 0;
}

void sched_store_close(struct sched_store *s)
{
    if (!s) return;
    net_grpc_stream_free(s->ka);
    net_grpc_client_free(s->c);
    free(s);
}

const char *sched_store_errmsg(const struct sched_store *s)
{
    return s->err;
}

int64_t sched_store_last_write_rev(const struct sched_store *s)
{
    return s->last_write_rev;
}

static ProtobufCBinaryData bin(const char *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* The end of the range that holds every key starting with prefix (etcd's GetPrefixRangeEnd). */
static size_t prefix_end(const char *prefix, char *end, size_t cap)
{
    size_t n = strlen(prefix);
    if (n == 0 || n > cap) {
        end[0] = '\0';
        return 1; /* "\0": every key */
    }
    memcpy(end, prefix, n);
    while (n > 0) {
        if ((unsigned char)end[n - 1] < 0xff) {
            end[n - 1]++;
            return n;
        }
        n--;
    }
    end[0] = '\0';
    return 1;
}

static int call(struct sched_store *s, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, const char *what)
{
    struct net_grpc_status st = {0};
    int64_t give_up = sched_now_ms() + s->retry_ms;
    int code;
    for (;;) {
        code = net_grpc_unary(s->c, method, req, desc, resp, &st, s->timeout_ms);
        if (code == NET_GRPC_OK) return 0;
        /* no endpoint reachable, no leader, leader changed, timed out: all pass once a
         * member is elected; only what the caller allowed is spent waiting for that */
        bool transient = code == NET_GRPC_UNAVAILABLE || code == NET_GRPC_DEADLINE_EXCEEDED;
        if (!transient || sched_now_ms() + 200 > give_up) break;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    seterr(s, "%s: %s: %s", what, net_grpc_code_name(code), st.message);
    if (strstr(st.message, "compacted")) return SCHED_ECOMPACTED;
    if (strstr(st.message, "requested lease not found")) return SCHED_ENOTFOUND;
    return SCHED_ESTORE;
}

static void copy_kv(struct sched_kv *d, const Mvccpb__KeyValue *kv, bool with_value)
{
    memset(d, 0, sizeof(*d));
    d->key = malloc(kv->key.len + 1);
    if (d->key) {
        memcpy(d->key, kv->key.data, kv->key.len);
        d->key[kv->key.len] = '\0';
        d->key_len = kv->key.len;
    }
    if (with_value) {
        d->value = malloc(kv->value.len + 1);
        if (d->value) {
            if (kv->value.len) memcpy(d->value, kv->value.data, kv->value.len);
            d->value[kv->value.len] = '\0';
            d->value_len = kv->value.len;
        }
    }
    d->create_rev = kv->create_revision;
    d->mod_rev = kv->mod_revision;
    d->version = kv->version;
    d->lease = kv->lease;
}

void sched_kvs_free(struct sched_kv *kvs, size_t n)
{
    if (!kvs) return;
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

int sched_store_list(struct sched_store *s, const char *prefix, int64_t rev, bool keys_only,
                     struct sched_kv **kvs, size_t *n, int64_t *header_rev)
{
    char end[SCHED_KEY_MAX];
    size_t endlen = prefix_end(prefix, end, sizeof(end));
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = bin(prefix, strlen(prefix) ? strlen(prefix) : 1);
    if (!*prefix) req.key = bin("\0", 1);
    req.range_end = bin(end, endlen);
    req.revision = rev;
    req.keys_only = keys_only;
    Etcdserverpb__RangeResponse *resp = NULL;
    int rc = call(s, "/etcdserverpb.KV/Range", &req.base, &etcdserverpb__range_response__descriptor,
                  (ProtobufCMessage **)&resp, prefix);
    if (rc) return rc;
    *kvs = calloc(resp->n_kvs ? resp->n_kvs : 1, sizeof(**kvs));
    if (!*kvs) {
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return SCHED_ENOMEM;
    }
    for (size_t i = 0; i < resp->n_kvs; i++) copy_kv(&(*kvs)[i], resp->kvs[i], !keys_only);
    *n = resp->n_kvs;
    if (header_rev) *header_rev = resp->header ? resp->header->revision : 0;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
}

int sched_store_get(struct sched_store *s, const char *key, struct sched_kv **kv)
{
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = bin(key, strlen(key));
    Etcdserverpb__RangeResponse *resp = NULL;
    int rc = call(s, "/etcdserverpb.KV/Range", &req.base, &etcdserverpb__range_response__descriptor,
                  (ProtobufCMessage **)&resp, key);
    if (rc) return rc;
    if (resp->n_kvs == 0) {
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        seterr(s, "get %s: not found", key);
        return SCHED_ENOTFOUND;
    }
    *kv = calloc(1, sizeof(**kv));
    if (*kv) copy_kv(*kv, resp->kvs[0], true);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return *kv ? 0 : SCHED_ENOMEM;
}

/* Explains a failed transaction from its failure branch, which reads the fence key
 * (response 0, when fenced) and the object key (last response). */
static int txn_failure(struct sched_store *s, const Etcdserverpb__TxnResponse *r,
                       const char *key, int64_t expect_mod, const struct sched_fence *fence)
{
    size_t i = 0;
    if (fence) {
        const Etcdserverpb__RangeResponse *fr =
            r->n_responses > 0 && r->responses[0]->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE
                ? r->responses[0]->response_range : NULL;
        if (!fr || fr->n_kvs == 0 || fr->kvs[0]->create_revision != fence->create_rev) {
            seterr(s, "write %s: leadership lost (election key %s is gone)", key, fence->key);
            return SCHED_ENOTLEADER;
        }
        i = 1;
    }
    const Etcdserverpb__RangeResponse *kr =
        r->n_responses > i && r->responses[i]->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE
            ? r->responses[i]->response_range : NULL;
    int64_t have = kr && kr->n_kvs ? kr->kvs[0]->mod_revision : 0;
    if (expect_mod == 0 && have) {
        seterr(s, "create %s: already exists", key);
        return SCHED_EEXIST;
    }
    if (expect_mod > 0 && !have) {
        seterr(s, "update %s: not found", key);
        return SCHED_ENOTFOUND;
    }
    seterr(s, "update %s: conflict: stored revision %" PRId64 ", expected %" PRId64, key, have,
           expect_mod);
    return SCHED_ECONFLICT;
}

/* The messages of one transaction: [fence compare] [mod compare] -> op, else range fence
 * + range key (so a failure can be explained). Points into the caller's strings. */
struct txn_msg {
    Etcdserverpb__Compare cmp[2], *cmps[2];
    Etcdserverpb__PutRequest put;
    Etcdserverpb__DeleteRangeRequest dr;
    Etcdserverpb__RequestOp op, *ops[1];
    Etcdserverpb__RangeRequest rf, rk;
    Etcdserverpb__RequestOp fop[2], *fops[2];
    Etcdserverpb__TxnRequest req;
};

static void txn_build(struct txn_msg *m, const char *key, bool del, const char *value, size_t len,
                      int64_t expect_mod, int64_t lease, const struct sched_fence *fence)
{
    size_t ncmp = 0, nf = 0;
    m->cmp[0] = (Etcdserverpb__Compare)ETCDSERVERPB__COMPARE__INIT;
    m->cmp[1] = (Etcdserverpb__Compare)ETCDSERVERPB__COMPARE__INIT;
    if (fence) {
        m->cmp[ncmp].result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        m->cmp[ncmp].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
        m->cmp[ncmp].key = bin(fence->key, strlen(fence->key));
        m->cmp[ncmp].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        m->cmp[ncmp].create_revision = fence->create_rev;
        m->cmps[ncmp] = &m->cmp[ncmp];
        ncmp++;
    }
    if (expect_mod >= 0) {
        m->cmp[ncmp].result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        m->cmp[ncmp].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        m->cmp[ncmp].key = bin(key, strlen(key));
        m->cmp[ncmp].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        m->cmp[ncmp].mod_revision = expect_mod;
        m->cmps[ncmp] = &m->cmp[ncmp];
        ncmp++;
    }
    m->put = (Etcdserverpb__PutRequest)ETCDSERVERPB__PUT_REQUEST__INIT;
    m->dr = (Etcdserverpb__DeleteRangeRequest)ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    m->op = (Etcdserverpb__RequestOp)ETCDSERVERPB__REQUEST_OP__INIT;
    m->ops[0] = &m->op;
    if (del) {
        m->dr.key = bin(key, strlen(key));
        m->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        m->op.request_delete_range = &m->dr;
    } else {
        m->put.key = bin(key, strlen(key));
        m->put.value = bin(value, len);
        m->put.lease = lease;
        m->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        m->op.request_put = &m->put;
    }
    m->rf = (Etcdserverpb__RangeRequest)ETCDSERVERPB__RANGE_REQUEST__INIT;
    m->rk = (Etcdserverpb__RangeRequest)ETCDSERVERPB__RANGE_REQUEST__INIT;
    m->fop[0] = (Etcdserverpb__RequestOp)ETCDSERVERPB__REQUEST_OP__INIT;
    m->fop[1] = (Etcdserverpb__RequestOp)ETCDSERVERPB__REQUEST_OP__INIT;
    if (fence) {
        m->rf.key = bin(fence->key, strlen(fence->key));
        m->rf.keys_only = 1;
        m->fop[nf].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        m->fop[nf].request_range = &m->rf;
        m->fops[nf] = &m->fop[nf];
        nf++;
    }
    m->rk.key = bin(key, strlen(key));
    m->rk.keys_only = 1;
    m->fop[nf].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    m->fop[nf].request_range = &m->rk;
    m->fops[nf] = &m->fop[nf];
    nf++;
    m->req = (Etcdserverpb__TxnRequest)ETCDSERVERPB__TXN_REQUEST__INIT;
    m->req.n_compare = ncmp;
    m->req.compare = m->cmps;
    m->req.n_success = 1;
    m->req.success = m->ops;
    m->req.n_failure = nf;
    m->req.failure = m->fops;
}

/* Interprets a transaction's answer. */
static int txn_result(struct sched_store *s, const Etcdserverpb__TxnResponse *resp, const char *key,
                      bool del, int64_t expect_mod, const struct sched_fence *fence,
                      int64_t *new_rev)
{
    if (!resp->succeeded) return txn_failure(s, resp, key, expect_mod, fence);
    int64_t rev = resp->header ? resp->header->revision : 0;
    if (del && resp->n_responses == 1 &&
        resp->responses[0]->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE &&
        resp->responses[0]->response_delete_range->deleted == 0) {
        seterr(s, "delete %s: not found", key);
        return SCHED_ENOTFOUND;
    }
    if (rev > s->last_write_rev && !strncmp(key, "/registry/", 10)) s->last_write_rev = rev;
    if (new_rev) *new_rev = rev;
    return 0;
}

static int txn(struct sched_store *s, const char *key, bool del, const char *value, size_t len,
               int64_t expect_mod, int64_t lease, const struct sched_fence *fence, int64_t *new_rev)
{
    struct txn_msg m;
    txn_build(&m, key, del, value, len, expect_mod, lease, fence);
    Etcdserverpb__TxnResponse *resp = NULL;
    int rc = call(s, "/etcdserverpb.KV/Txn", &m.req.base, &etcdserverpb__txn_response__descriptor,
                  (ProtobufCMessage **)&resp, key);
    if (rc) return rc;
    rc = txn_result(s, resp, key, del, expect_mod, fence, new_rev);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

/* ---- pipelined writes ---- */

struct batch_slot {
    struct sched_store *s;
    struct sched_write *w;
    const struct sched_fence *fence;
    size_t *pending;
};

static void batch_done(void *ud, const struct net_grpc_status *st, ProtobufCMessage *resp)
{
    struct batch_slot *b = ud;
    if (st->code != NET_GRPC_OK || !resp) {
        seterr(b->s, "txn %s: %s: %s", b->w->key, net_grpc_code_name(st->code), st->message);
        b->w->rc = SCHED_ESTORE;
    } else {
        b->w->rc = txn_result(b->s, (Etcdserverpb__TxnResponse *)resp, b->w->key, b->w->del,
                              b->w->expect_mod, b->fence, &b->w->new_rev);
    }
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    (*b->pending)--;
}

int sched_store_write_batch(struct sched_store *s, struct sched_write *w, size_t n,
                            const struct sched_fence *fence)
{
    struct batch_slot *slots = calloc(n ? n : 1, sizeof(*slots));
    size_t pending = 0;
    if (!slots) {
        for (size_t i = 0; i < n; i++) w[i].rc = SCHED_ENOMEM;
        seterr(s, "write batch: out of memory");
        return SCHED_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct txn_msg m;
        if (!w[i].del && !w[i].value) { /* the caller could not encode it (out of memory) */
            w[i].rc = SCHED_ENOMEM;
            continue;
        }
        txn_build(&m, w[i].key, w[i].del, w[i].value, w[i].len, w[i].expect_mod, w[i].lease, fence);
        slots[i] = (struct batch_slot){s, &w[i], fence, &pending};
        w[i].rc = SCHED_ESTORE;
        w[i].new_rev = 0;
        if (net_grpc_unary_msg_async(s->c, "/etcdserverpb.KV/Txn", &m.req.base,
                                     &etcdserverpb__txn_response__descriptor, s->timeout_ms,
                                     batch_done, &slots[i]) == 0)
            pending++;
    }
    /* every call ends by its deadline, so this loop ends too */
    while (pending > 0) net_grpc_client_poll(s->c, 1);
    free(slots);
    return 0;
}

int sched_store_put(struct sched_store *s, const char *key, const char *value, size_t len,
                    int64_t expect_mod, int64_t lease, const struct sched_fence *fence,
                    int64_t *new_rev)
{
    return txn(s, key, false, value, len, expect_mod, lease, fence, new_rev);
}

int sched_store_delete(struct sched_store *s, const char *key, int64_t expect_mod,
                       const struct sched_fence *fence)
{
    return txn(s, key, true, NULL, 0, expect_mod, 0, fence, NULL);
}

/* ---- objects ---- */

int64_t sched_obj_rev(const json_t *obj)
{
    const char *rv = sched_obj_str(obj, "metadata.resourceVersion");
    return *rv ? strtoll(rv, NULL, 10) : 0;
}

static void set_rev(json_t *obj, int64_t rev)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, rev);
    sched_obj_set(obj, "metadata.resourceVersion", json_string(buf));
}

json_t *sched_obj_from_kv(const char *value, size_t len, int64_t mod_rev)
{
    json_t *o = json_loadb(value, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    set_rev(o, mod_rev);
    return o;
}

char *sched_obj_encode(const json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    json_t *rv = json_incref(json_object_get(md, "resourceVersion"));
    if (rv) json_object_del(md, "resourceVersion");
    char *text = json_dumps(obj, JSON_COMPACT);
    if (rv) json_object_set_new(md, "resourceVersion", rv);
    return text;
}

int sched_store_get_obj(struct sched_store *s, const char *key, json_t **out)
{
    struct sched_kv *kv = NULL;
    int rc = sched_store_get(s, key, &kv);
    if (rc) return rc;
    *out = sched_obj_from_kv(kv->value, kv->value_len, kv->mod_rev);
    sched_kvs_free(kv, 1);
    if (!*out) {
        seterr(s, "get %s: stored value is not a JSON object", key);
        return SCHED_EPARSE;
    }
    return 0;
}

static int write_obj(struct sched_store *s, json_t *obj, int64_t expect, const struct sched_fence *fence)
{
    char key[SCHED_KEY_MAX];
    if (sched_obj_key(obj, key, sizeof(key))) {
        seterr(s, "write: object has no valid kind/name");
        return SCHED_EINVAL;
    }
    char *text = sched_obj_encode(obj);
    if (!text) return SCHED_ENOMEM;
    int64_t rev = 0;
    int rc = sched_store_put(s, key, text, strlen(text), expect, 0, fence, &rev);
    free(text);
    if (rc == 0) set_rev(obj, rev);
    return rc;
}

int sched_store_create_obj(struct sched_store *s, json_t *obj, const struct sched_fence *fence)
{
    if (!*sched_obj_str(obj, "metadata.uid")) {
        char uid[33];
        sched_new_uid(uid);
        sched_obj_set(obj, "metadata.uid", json_string(uid));
    }
    if (!*sched_obj_str(obj, "metadata.creationTimestamp")) {
        char now[32];
        sched_now_rfc3339(now, sizeof(now));
        sched_obj_set(obj, "metadata.creationTimestamp", json_string(now));
    }
    json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
    return write_obj(s, obj, 0, fence);
}

int sched_store_update_obj(struct sched_store *s, json_t *obj, const struct sched_fence *fence)
{
    int64_t rev = sched_obj_rev(obj);
    if (rev <= 0) {
        seterr(s, "update %s: object has no resourceVersion", sched_obj_name(obj));
        return SCHED_EINVAL;
    }
    return write_obj(s, obj, rev, fence);
}

int sched_store_delete_obj(struct sched_store *s, const json_t *obj, const struct sched_fence *fence)
{
    char key[SCHED_KEY_MAX];
    if (sched_obj_key(obj, key, sizeof(key))) return SCHED_EINVAL;
    int64_t rev = sched_obj_rev(obj);
    return sched_store_delete(s, key, rev > 0 ? rev : -1, fence);
}

/* ---- leases ---- */

int sched_store_lease_grant(struct sched_store *s, int64_t ttl, int64_t *id)
{
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = ttl;
    Etcdserverpb__LeaseGrantResponse *resp = NULL;
    int rc = call(s, "/etcdserverpb.Lease/LeaseGrant", &req.base,
                  &etcdserverpb__lease_grant_response__descriptor, (ProtobufCMessage **)&resp,
                  "lease grant");
    if (rc) return rc;
    if (resp->error && *resp->error) {
        seterr(s, "lease grant: %s", resp->error);
        rc = SCHED_ESTORE;
    } else {
        *id = resp->id;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

int sched_store_lease_keepalive(struct sched_store *s, int64_t id, int64_t *ttl_left)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->ka || net_grpc_stream_closed(s->ka)) {
            net_grpc_stream_free(s->ka);
            s->ka = NULL;
            struct net_grpc_stream_opts so = {0};
            if (net_grpc_stream_open(s->c, "/etcdserverpb.Lease/LeaseKeepAlive", &so, &s->ka)) {
                seterr(s, "lease keepalive: cannot open stream");
                return SCHED_ESTORE;
            }
        }
        Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
        req.id = id;
        if (net_grpc_stream_send_msg(s->ka, &req.base)) continue;
        int64_t deadline = sched_now_ms() + s->timeout_ms;
        for (;;) {
            ProtobufCMessage *m = NULL;
            int left = (int)(deadline - sched_now_ms());
            if (left <= 0) {
                /* a reply may still come later and would answer the next request: start over */
                net_grpc_stream_free(s->ka);
                s->ka = NULL;
                seterr(s, "lease keepalive: no reply within %d ms", s->timeout_ms);
                return SCHED_ESTORE;
            }
            int r = net_grpc_stream_recv_msg(s->ka, &etcdserverpb__lease_keep_alive_response__descriptor, &m, left);
            if (r == NET_GRPC_RECV_CLOSED) {
                const struct net_grpc_status *st = net_grpc_stream_status(s->ka);
                seterr(s, "lease keepalive: %s: %s", net_grpc_code_name(st->code), st->message);
                break;
            }
            if (r != NET_GRPC_RECV_MSG) continue;
            Etcdserverpb__LeaseKeepAliveResponse *resp = (Etcdserverpb__LeaseKeepAliveResponse *)m;
            if (resp->id != id) { /* an answer to an older request */
                protobuf_c_message_free_unpacked(m, NULL);
                continue;
            }
            int64_t ttl = resp->ttl;
            protobuf_c_message_free_unpacked(m, NULL);
            if (ttl <= 0) {
                seterr(s, "lease %" PRIx64 ": expired", (uint64_t)id);
                return SCHED_ENOTFOUND;
            }
            if (ttl_left) *ttl_left = ttl;
            return 0;
        }
    }
    return SCHED_ESTORE;
}

int sched_store_lease_revoke(struct sched_store *s, int64_t id)
{
    Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    req.id = id;
    ProtobufCMessage *resp = NULL;
    int rc = call(s, "/etcdserverpb.Lease/LeaseRevoke", &req.base,
                  &etcdserverpb__lease_revoke_response__descriptor, &resp, "lease revoke");
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* ---- watches ---- */

void sched_events_free(struct sched_event *evs, size_t n)
{
    if (!evs) return;
    for (size_t i = 0; i < n; i++) {
        free(evs[i].kv.key);
        free(evs[i].kv.value);
    }
    free(evs);
}

int sched_watch_open(struct sched_store *s, const char *prefix, int64_t start_rev,
                     struct sched_watch **out)
{
    static const char *const md[] = {"hasleader", "true", NULL};
    struct sched_watch *w = calloc(1, sizeof(*w));
    if (!w) return SCHED_ENOMEM;
    w->s = s;
    struct net_grpc_stream_opts so = {.metadata = md};
    if (net_grpc_stream_open(s->c, "/etcdserverpb.Watch/Watch", &so, &w->st)) {
        free(w);
        seterr(s, "watch %s: cannot open stream", prefix);
        return SCHED_ESTORE;
    }
    char end[SCHED_KEY_MAX];
    size_t endlen = prefix_end(prefix, end, sizeof(end));
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = bin(prefix, strlen(prefix));
    cr.range_end = bin(end, endlen);
    cr.start_revision = start_rev;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    if (net_grpc_stream_send_msg(w->st, &req.base)) {
        net_grpc_stream_free(w->st);
        free(w);
        seterr(s, "watch %s: cannot send create request", prefix);
        return SCHED_ESTORE;
    }
    *out = w;
    return 0;
}

int sched_watch_next(struct sched_watch *w, int timeout_ms, struct sched_event **evs,
                     size_t *n, int64_t *compact_rev)
{
    *evs = NULL;
    *n = 0;
    int64_t deadline = sched_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        ProtobufCMessage *m = NULL;
        int left = (int)(deadline - sched_now_ms());
        int r = net_grpc_stream_recv_msg(w->st, &etcdserverpb__watch_response__descriptor, &m,
                                         left > 0 ? left : 0);
        if (r == NET_GRPC_RECV_TIMEOUT) return 0;
        if (r == NET_GRPC_RECV_CLOSED) {
            const struct net_grpc_status *st = net_grpc_stream_status(w->st);
            seterr(w->s, "watch: %s: %s", net_grpc_code_name(st->code), st->message);
            return SCHED_ESTORE;
        }
        Etcdserverpb__WatchResponse *resp = (Etcdserverpb__WatchResponse *)m;
        if (resp->compact_revision > 0 || resp->canceled) {
            int64_t cr = resp->compact_revision;
            seterr(w->s, "watch: canceled%s%s (compact revision %" PRId64 ")",
                   resp->cancel_reason && *resp->cancel_reason ? ": " : "",
                   resp->cancel_reason ? resp->cancel_reason : "", cr);
            protobuf_c_message_free_unpacked(m, NULL);
            if (compact_rev) *compact_rev = cr;
            return cr > 0 ? SCHED_ECOMPACTED : SCHED_ESTORE;
        }
        if (resp->created) w->created = true;
        if (resp->n_events == 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            if (sched_now_ms() >= deadline) return 0;
            continue;
        }
        struct sched_event *e = calloc(resp->n_events, sizeof(*e));
        if (!e) {
            protobuf_c_message_free_unpacked(m, NULL);
            return SCHED_ENOMEM;
        }
        for (size_t i = 0; i < resp->n_events; i++) {
            Mvccpb__Event *ev = resp->events[i];
            e[i].type = ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? SCHED_EV_DELETE : SCHED_EV_PUT;
            if (ev->kv) copy_kv(&e[i].kv, ev->kv, e[i].type == SCHED_EV_PUT);
        }
        *evs = e;
        *n = resp->n_events;
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
}

void sched_watch_close(struct sched_watch *w)
{
    if (!w) return;
    net_grpc_stream_free(w->st);
    free(w);
}

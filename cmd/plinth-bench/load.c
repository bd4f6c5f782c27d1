/* load — the put, range and txn-put workloads: N clients keep one request each in flight
 * over M connections on one event loop, until --total requests or --duration seconds. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "net/tls.h"

enum kind { K_PUT, K_RANGE, K_TXN };

struct load;

struct worker {
    struct load *l;
    int idx;
    struct net_grpc_client *c;
    double sent;
    int64_t rev;   /* txn-put: the mod_revision this worker expects on its key */
    uint8_t *key;
};

struct load {
    const struct bench_opts *o;
    enum kind kind;
    struct event_base *base;
    struct event *tick;
    long issued, done, errors, conflicts;
    int active;
    double start, end_at, last_done;
    int stopping;
    struct bench_lat lat;
    char first_error[NET_GRPC_MSGLEN + 32];
    uint8_t *val;
    uint8_t *scratch;
    size_t scratch_len;
    unsigned rng;
};

static const char *method_of(enum kind k)
{
    return k == K_PUT ? "/etcdserverpb.KV/Put" : k == K_RANGE ? "/etcdserverpb.KV/Range"
                                                               : "/etcdserverpb.KV/Txn";
}

static int more_to_do(struct load *l)
{
    if (l->stopping)
        return 0;
    if (l->o->total > 0 && l->issued >= l->o->total)
        return 0;
    if (now_us() >= l->end_at) {
        l->stopping = 1;
        return 0;
    }
    return 1;
}

static void on_reply(void *ud, const struct net_grpc_status *st, const uint8_t *resp, size_t len);

/* Packs this worker's next request and starts it. Returns 0 or -1 (nothing started). */
static int issue(struct worker *w)
{
    struct load *l = w->l;
    const struct bench_opts *o = l->o;
    size_t len = 0;
    ProtobufCBinaryData key = { (size_t)o->key_size, w->key };
    if (l->kind == K_PUT) {
        long i = o->sequential ? l->issued : (long)(rand_r(&l->rng) % (unsigned long)o->key_space);
        make_key(o, i, w->key);
        Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
        req.key = key;
        req.value = (ProtobufCBinaryData){ (size_t)o->val_size, l->val };
        len = etcdserverpb__put_request__pack(&req, l->scratch);
    } else if (l->kind == K_RANGE) {
        Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
        uint8_t end[256];
        size_t pl = strlen(o->prefix);
        if (o->range_prefix && pl > 0 && pl < sizeof end) {
            memcpy(end, o->prefix, pl);
            end[pl - 1]++;
            req.key = (ProtobufCBinaryData){ pl, (uint8_t *)o->prefix };
            req.range_end = (ProtobufCBinaryData){ pl, end };
        } else {
            make_key(o, 0, w->key);
            req.key = key;
        }
        req.serializable = o->serializable;
        len = etcdserverpb__range_request__pack(&req, l->scratch);
    } else {
        make_key(o, w->idx, w->key);
        Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
        cmp.key = key;
        cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        cmp.mod_revision = w->rev;
        Etcdserverpb__Compare *cmps[1] = { &cmp };
        Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
        put.key = key;
        put.value = (ProtobufCBinaryData){ (size_t)o->val_size, l->val };
        Etcdserverpb__RequestOp okop = ETCDSERVERPB__REQUEST_OP__INIT;
        okop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        okop.request_put = &put;
        Etcdserverpb__RangeRequest get = ETCDSERVERPB__RANGE_REQUEST__INIT;
        get.key = key;
        Etcdserverpb__RequestOp failop = ETCDSERVERPB__REQUEST_OP__INIT;
        failop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        failop.request_range = &get;
        Etcdserverpb__RequestOp *oks[1] = { &okop }, *fails[1] = { &failop };
        Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
        req.n_compare = 1;
        req.compare = cmps;
        req.n_success = 1;
        req.success = oks;
        req.n_failure = 1;
        req.failure = fails;
        len = etcdserverpb__txn_request__pack(&req, l->scratch);
    }
    l->issued++;
    w->sent = now_us();
    if (net_grpc_unary_async(w->c, method_of(l->kind), l->scratch, len, o->timeout_ms, on_reply,
                             w) != 0) {
        l->errors++;
        return -1;
    }
    return 0;
}

static void worker_next(struct worker *w)
{
    struct load *l = w->l;
    while (more_to_do(l)) {
        if (issue(w) == 0)
            return;
    }
    if (--l->active == 0)
        event_base_loopbreak(l->base);
}

static void on_reply(void *ud, const struct net_grpc_status *st, const uint8_t *resp, size_t len)
{
    struct worker *w = ud;
    struct load *l = w->l;
    double t = now_us();
    if (st->code != NET_GRPC_OK) {
        l->errors++;
        if (!l->first_error[0])
            snprintf(l->first_error, sizeof l->first_error, "%s: %s",
                     net_grpc_code_name(st->code), st->message);
    } else {
        l->done++;
        lat_add(&l->lat, t - w->sent);
        l->last_done = t;
        if (l->kind == K_TXN) {
            Etcdserverpb__TxnResponse *r = etcdserverpb__txn_response__unpack(NULL, len, resp);
            if (r) {
                if (r->succeeded && r->header) {
                    w->rev = r->header->revision;
                } else {
                    l->conflicts++;
                    w->rev = 0;
                    if (r->n_responses && r->responses[0]->response_case ==
                                              ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE) {
                        Etcdserverpb__RangeResponse *rr = r->responses[0]->response_range;
                        if (rr && rr->n_kvs)
                            w->rev = rr->kvs[0]->mod_revision;
                    }
                }
                etcdserverpb__txn_response__free_unpacked(r, NULL);
            }
        }
    }
    worker_next(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct load *l = arg;
    double t = now_us();
    if (t >= l->end_at)
        l->stopping = 1;
    /* in-flight requests are bounded by their deadline; past it, give up on them */
    if (t >= l->end_at + l->o->timeout_ms * 1000.0 + 2e6)
        event_base_loopbreak(l->base);
    progress(l->o, method_of(l->kind) + 14, l->done, l->errors, l->start);
}

/* range: makes sure the key read exists, so reads return a value like real ones. */
static void prepare_range(struct load *l, struct net_grpc_client *c)
{
    const struct bench_opts *o = l->o;
    uint8_t key[4096];
    if (o->range_prefix || o->key_size > (int)sizeof key)
        return;
    make_key(o, 0, key);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){ (size_t)o->key_size, key };
    req.value = (ProtobufCBinaryData){ (size_t)o->val_size, l->val };
    ProtobufCMessage *resp = NULL;
    struct net_grpc_status st;
    if (net_grpc_unary(c, "/etcdserverpb.KV/Put", &req.base,
                       &etcdserverpb__put_response__descriptor, &resp, &st, 0) == NET_GRPC_OK)
        protobuf_c_message_free_unpacked(resp, NULL);
    else
        fprintf(stderr, "plinth-bench: range: writing the key to read failed: %s\n", st.message);
}

int run_load(const struct bench_opts *o, const char *workload)
{
    struct load l = { .o = o };
    int rc = 1, m = o->conns, n = o->clients;
    l.kind = !strcmp(workload, "put") ? K_PUT : !strcmp(workload, "range") ? K_RANGE : K_TXN;
    l.rng = (unsigned)now_us();
    struct net_grpc_client **cs = calloc((size_t)m, sizeof *cs);
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    SSL_CTX *ctx = NULL;
    l.val = malloc((size_t)o->val_size + 1);
    l.scratch_len = (size_t)o->key_size * 2 + (size_t)o->val_size + 512;
    l.scratch = malloc(l.scratch_len);
    l.base = event_base_new();
    if (!cs || !ws || !l.val || !l.scratch || !l.base) {
        fprintf(stderr, "plinth-bench: out of memory\n");
        goto out;
    }
    for (int i = 0; i < o->val_size; i++)
        l.val[i] = (uint8_t)('a' + i % 26);
    if (make_clients(o, o->endpoints, l.base, cs, m, &ctx) != 0)
        goto out;
    if (l.kind == K_RANGE)
        prepare_range(&l, cs[0]);
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){ .l = &l, .idx = i, .c = cs[i % m] };
        ws[i].key = malloc((size_t)o->key_size);
        if (!ws[i].key) {
            fprintf(stderr, "plinth-bench: out of memory\n");
            goto out;
        }
    }
    l.start = now_us();
    l.end_at = l.start + o->duration * 1e6;
    l.tick = event_new(l.base, -1, EV_PERSIST, on_tick, &l);
    struct timeval tv = { 0, 100000 };
    event_add(l.tick, &tv);
    l.active = n;
    for (int i = 0; i < n; i++)
        worker_next(&ws[i]);
    if (l.active > 0)
        event_base_dispatch(l.base);
    progress_end(o);
    double el = ((l.last_done > 0 ? l.last_done : now_us()) - l.start) / 1e6;
    char extra[128] = "", extra_text[128] = "";
    if (l.kind == K_TXN) {
        snprintf(extra, sizeof extra, "\"conflicts\":%ld", l.conflicts);
        snprintf(extra_text, sizeof extra_text, "%ld compare failures (first write per key, or lost races)",
                 l.conflicts);
    }
    struct bench_report r = { .workload = workload, .ops = l.done, .errors = l.errors,
                              .seconds = el, .lat = &l.lat,
                              .first_error = l.first_error[0] ? l.first_error : NULL,
                              .extra = extra[0] ? extra : NULL,
                              .extra_text = extra_text[0] ? extra_text : NULL };
    report_print(o, &r);
    rc = l.done > 0 ? 0 : 1;
out:
    for (int i = 0; cs && i < m; i++)
        net_grpc_client_free(cs[i]);
    net_tls_ctx_free(ctx);
    for (int i = 0; ws && i < n; i++)
        free(ws[i].key);
    if (l.tick)
        event_free(l.tick);
    if (l.base)
        event_base_free(l.base);
    lat_free(&l.lat);
    free(l.val);
    free(l.scratch);
    free(ws);
    free(cs);
    return rc;
}

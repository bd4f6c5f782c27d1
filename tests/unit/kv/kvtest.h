/* kvtest.h — helpers shared by kv/'s unit tests: a store in a temporary directory,
 * request builders, and applying one request as one committed Raft entry. */
#ifndef PLINTH_KVTEST_H
#define PLINTH_KVTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "tests/lib/testlib.h"

typedef struct kvt {
    char *dir;
    kv_store *s;
    kv_options opt;
    kv_index_t index;
} kvt;

static inline void kvt_open(kvt *t)
{
    char eb[256];
    int rc = kv_open(t->dir, &t->opt, &t->s, eb, sizeof eb);
    if (rc)
        fprintf(stderr, "kv_open: %s\n", eb);
    assert_int_equal(rc, 0);
    t->index = kv_applied_index(t->s);
}

static inline void kvt_init(kvt *t, const char *tag, const kv_options *opt)
{
    memset(t, 0, sizeof(*t));
    t->dir = test_tmpdir(tag);
    assert_non_null(t->dir);
    kv_options_init(&t->opt);
    if (opt)
        t->opt = *opt;
    else
        t->opt.no_sync = true;
    kvt_open(t);
}

static inline void kvt_reopen(kvt *t)
{
    kv_close(t->s);
    kvt_open(t);
}

static inline void kvt_done(kvt *t)
{
    kv_close(t->s);
    test_rmdir(t->dir);
    free(t->dir);
}

/* Applies req as the next entry in a turn of its own; returns out->err. */
static inline int kvt_apply(kvt *t, Plinthpb__Request *req, kv_result *out)
{
    kv_wtxn *w;
    assert_int_equal(kv_wtxn_begin(t->s, &w), 0);
    int rc = kv_apply(w, ++t->index, 1, req, out);
    if (rc)
        fprintf(stderr, "kv_apply: %s (%s)\n", kv_strerror(rc), kv_errmsg(t->s));
    assert_int_equal(rc, 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    return out->err;
}

static inline ProtobufCBinaryData kvt_b(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

static inline int kvt_put(kvt *t, const char *k, const char *v, int64_t lease, kv_result *out)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = kvt_b(k);
    p.value = kvt_b(v);
    p.lease = lease;
    p.prev_kv = true;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    r.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    r.put = &p;
    return kvt_apply(t, &r, out);
}

static inline int kvt_put1(kvt *t, const char *k, const char *v)
{
    kv_result r;
    int e = kvt_put(t, k, v, 0, &r);
    kv_result_free(&r);
    return e;
}

static inline int kvt_del(kvt *t, const char *k, const char *end, kv_result *out)
{
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = kvt_b(k);
    if (end)
        d.range_end = kvt_b(end);
    d.prev_kv = true;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    r.request_case = PLINTHPB__REQUEST__REQUEST_DELETE_RANGE;
    r.delete_range = &d;
    return kvt_apply(t, &r, out);
}

static inline int kvt_compact(kvt *t, kv_rev_t rev)
{
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    c.revision = rev;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    r.request_case = PLINTHPB__REQUEST__REQUEST_COMPACTION;
    r.compaction = &c;
    kv_result out;
    int e = kvt_apply(t, &r, &out);
    kv_result_free(&out);
    return e;
}

static inline int kvt_grant(kvt *t, int64_t id, int64_t ttl, int64_t *got)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = id;
    g.ttl = ttl;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    r.request_case = PLINTHPB__REQUEST__REQUEST_LEASE_GRANT;
    r.lease_grant = &g;
    kv_result out;
    int e = kvt_apply(t, &r, &out);
    if (!e && got)
        *got = ((Etcdserverpb__LeaseGrantResponse *)out.msg)->id;
    kv_result_free(&out);
    return e;
}

static inline int kvt_revoke(kvt *t, int64_t id)
{
    Etcdserverpb__LeaseRevokeRequest g = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    g.id = id;
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    r.request_case = PLINTHPB__REQUEST__REQUEST_LEASE_REVOKE;
    r.lease_revoke = &g;
    kv_result out;
    int e = kvt_apply(t, &r, &out);
    kv_result_free(&out);
    return e;
}

/* Range; returns out->err. end NULL = single key. */
static inline int kvt_range(kvt *t, const char *k, const char *end, kv_rev_t rev,
                            kv_result *out)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = kvt_b(k);
    if (end)
        q.range_end = end[0] ? kvt_b(end) : (ProtobufCBinaryData){1, (uint8_t *)""};
    q.revision = rev;
    assert_int_equal(kv_range(t->s, &q, out), 0);
    return out->err;
}

static inline Etcdserverpb__RangeResponse *kvt_rr(kv_result *r)
{
    return (Etcdserverpb__RangeResponse *)r->msg;
}

/* value of a single key at rev, or NULL; copies into buf */
static inline const char *kvt_get(kvt *t, const char *k, kv_rev_t rev, char *buf, size_t cap)
{
    kv_result r;
    const char *ret = NULL;
    if (kvt_range(t, k, NULL, rev, &r) == 0 && kvt_rr(&r)->n_kvs == 1) {
        Mvccpb__KeyValue *kv = kvt_rr(&r)->kvs[0];
        snprintf(buf, cap, "%.*s", (int)kv->value.len, (const char *)kv->value.data);
        ret = buf;
    }
    kv_result_free(&r);
    return ret;
}

#endif

/* test_kv_model — random operation sequences run against the store and a naive in-memory
 * model of etcd's MVCC side by side, comparing every answer: puts, deletes, txns (with
 * compares, nested txns and etcd's refusals), ranges at random past revisions with every
 * option, compactions, leases, and reopening the store. SEED=n replays one seed. */
#include <stdint.h>

#include "tests/unit/kv/kvtest.h"

/* ---- a small bump pool for building requests ---- */
static char pool[1 << 20];
static size_t pool_used;
static void *palloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (pool_used + n > sizeof pool) {
        fprintf(stderr, "pool exhausted\n");
        abort();
    }
    void *p = pool + pool_used;
    pool_used += n;
    memset(p, 0, n);
    return p;
}

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int rn(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

/* ---- the model: every version of every key, no compaction of its own ---- */
#define NKEYS 84
#define MAXV 4096
typedef struct mver {
    int64_t rev, sub;
    bool tomb;
    int64_t create, version, lease;
    char val[24];
} mver;
typedef struct mkey {
    char name[8];
    mver *v;
    int n;
} mkey;

static mkey K[NKEYS];
static int64_t m_rev, m_compact;
static int64_t m_leases[64];
static int m_nleases;

static int key_cmp(const void *a, const void *b)
{
    return strcmp(((const mkey *)a)->name, ((const mkey *)b)->name);
}

static void model_init(void)
{
    const char al[] = "ab/c";
    int n = 0;
    for (int len = 1; len <= 3; len++) {
        int total = 1;
        for (int i = 0; i < len; i++)
            total *= 4;
        for (int x = 0; x < total; x++) {
            int y = x;
            for (int i = 0; i < len; i++) {
                K[n].name[i] = al[y % 4];
                y /= 4;
            }
            K[n].name[len] = 0;
            n++;
        }
    }
    qsort(K, NKEYS, sizeof(mkey), key_cmp);
    for (int i = 0; i < NKEYS; i++) {
        free(K[i].v);
        K[i].v = calloc(MAXV, sizeof(mver));
        K[i].n = 0;
    }
    m_rev = 1;
    m_compact = 0;
    m_nleases = 0;
}

static const mver *m_latest(int k, int64_t at)
{
    const mkey *mk = &K[k];
    for (int i = mk->n - 1; i >= 0; i--)
        if (mk->v[i].rev <= at)
            return &mk->v[i];
    return NULL;
}

static const mver *m_live(int k, int64_t at)
{
    const mver *v = m_latest(k, at);
    return v && !v->tomb ? v : NULL;
}

static void m_write(int k, int64_t rev, int64_t sub, bool tomb, int64_t create, int64_t ver,
                    int64_t lease, const char *val)
{
    mkey *mk = &K[k];
    assert_true(mk->n < MAXV);
    mver *v = &mk->v[mk->n++];
    memset(v, 0, sizeof *v);
    v->rev = rev;
    v->sub = sub;
    v->tomb = tomb;
    v->create = create;
    v->version = ver;
    v->lease = lease;
    if (val)
        snprintf(v->val, sizeof v->val, "%s", val);
}

static bool m_lease_exists(int64_t id)
{
    for (int i = 0; i < m_nleases; i++)
        if (m_leases[i] == id)
            return true;
    return false;
}

/* etcd range semantics over the key universe: end "" = single, "\0" (given as flag) = from key */
typedef struct rq {
    const char *key, *end;
    bool from_key;
} rq;

static bool m_in(const char *k, const rq *q)
{
    if (strcmp(k, q->key) < 0)
        return false;
    if (q->from_key)
        return true;
    if (!q->end)
        return strcmp(k, q->key) == 0;
    return strcmp(k, q->end) < 0;
}

/* ---- building requests ---- */
static ProtobufCBinaryData pb(const char *s)
{
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static void set_range_end(ProtobufCBinaryData *e, const rq *q)
{
    if (q->from_key)
        *e = (ProtobufCBinaryData){1, (uint8_t *)""};
    else if (q->end)
        *e = pb(q->end);
}

static rq random_rq(void)
{
    rq q = {K[rn(NKEYS)].name, NULL, false};
    int t = rn(4);
    if (t == 1) {
        q.end = K[rn(NKEYS)].name;
    } else if (t == 2) { /* prefix */
        char *e = palloc(8);
        snprintf(e, 8, "%s", q.key);
        e[strlen(e) - 1]++;
        q.end = e;
    } else if (t == 3 && rn(3) == 0) {
        q.from_key = true;
    }
    return q;
}

/* ---- comparing answers ---- */
static void expect_kv(const Mvccpb__KeyValue *kv, int k, const mver *v, bool keys_only)
{
    assert_non_null(kv);
    assert_int_equal(kv->key.len, strlen(K[k].name));
    assert_memory_equal(kv->key.data, K[k].name, kv->key.len);
    assert_int_equal(kv->mod_revision, v->rev);
    assert_int_equal(kv->create_revision, v->create);
    assert_int_equal(kv->version, v->version);
    assert_int_equal(kv->lease, v->lease);
    if (keys_only) {
        assert_int_equal(kv->value.len, 0);
    } else {
        assert_int_equal(kv->value.len, strlen(v->val));
        if (kv->value.len)
            assert_memory_equal(kv->value.data, v->val, kv->value.len);
    }
}

typedef struct mrange {
    int keys[NKEYS];
    const mver *v[NKEYS];
    int n;
    int64_t count;
    bool more;
} mrange;

static int s_target, s_desc;
static const mver *s_v[NKEYS];
static int cmp_sort(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    const mver *p = s_v[x], *q = s_v[y];
    int c = 0;
    switch (s_target) {
    case 0: c = strcmp(K[x].name, K[y].name); break;
    case 1: c = (p->version > q->version) - (p->version < q->version); break;
    case 2: c = (p->create > q->create) - (p->create < q->create); break;
    case 3: c = (p->rev > q->rev) - (p->rev < q->rev); break;
    case 4: c = strcmp(p->val, q->val); break;
    }
    if (s_desc)
        c = -c;
    if (!c)
        c = strcmp(K[x].name, K[y].name);
    return c;
}

static void m_range(const Etcdserverpb__RangeRequest *r, const rq *q, int64_t at, mrange *out)
{
    memset(out, 0, sizeof *out);
    int all[NKEYS], n = 0;
    for (int k = 0; k < NKEYS; k++) {
        const mver *v = m_live(k, at);
        if (v && m_in(K[k].name, q)) {
            all[n++] = k;
            s_v[k] = v;
        }
    }
    out->count = n;
    if (r->count_only)
        return;
    /* etcd fetches only limit+1 keys (in key order) unless an explicit sort order or a
     * revision filter asks for all: with sort_order NONE and a non-key target it sorts
     * just those */
    bool fetch_all = r->sort_order || r->min_mod_revision || r->max_mod_revision ||
                     r->min_create_revision || r->max_create_revision;
    if (!fetch_all && r->limit > 0 && n > r->limit + 1)
        n = (int)r->limit + 1;
    int m = 0;
    for (int i = 0; i < n; i++) {
        const mver *v = s_v[all[i]];
        if (r->max_mod_revision && v->rev > r->max_mod_revision)
            continue;
        if (r->min_mod_revision && v->rev < r->min_mod_revision)
            continue;
        if (r->min_create_revision && v->create < r->min_create_revision)
            continue;
        if (r->max_create_revision && v->create > r->max_create_revision)
            continue;
        all[m++] = all[i];
    }
    int order = r->sort_order;
    if (r->sort_target != 0 && order == 0)
        order = 1;
    else if (r->sort_target == 0 && order == 1)
        order = 0;
    if (order) {
        s_target = r->sort_target;
        s_desc = order == 2;
        qsort(all, m, sizeof(int), cmp_sort);
    }
    if (r->limit > 0 && m > r->limit) {
        m = (int)r->limit;
        out->more = true;
    }
    for (int i = 0; i < m; i++) {
        out->keys[i] = all[i];
        out->v[i] = s_v[all[i]];
    }
    out->n = m;
}

static int key_index(const char *name);
static void check_range(const Etcdserverpb__RangeRequest *r, const rq *q, int64_t at,
                        const Etcdserverpb__RangeResponse *resp)
{
    mrange mr;
    m_range(r, q, at, &mr);
    if (getenv("TRACE")) {
        fprintf(stderr, "range key=%s end=%s from=%d at=%lld limit=%lld sort=%d/%d co=%d ko=%d f=%lld,%lld,%lld,%lld\n",
                q->key, q->end ? q->end : "-", q->from_key, (long long)at, (long long)r->limit,
                r->sort_order, r->sort_target, r->count_only, r->keys_only,
                (long long)r->min_mod_revision, (long long)r->max_mod_revision,
                (long long)r->min_create_revision, (long long)r->max_create_revision);
        for (int i = 0; i < mr.n; i++)
            fprintf(stderr, "  model %s mod=%lld ver=%lld cr=%lld\n", K[mr.keys[i]].name, (long long)mr.v[i]->rev, (long long)mr.v[i]->version, (long long)mr.v[i]->create);
        int bk = key_index("bab");
        for (int i = 0; i < K[bk].n; i++)
            fprintf(stderr, "  bab rev=%lld.%lld tomb=%d cr=%lld ver=%lld\n", (long long)K[bk].v[i].rev, (long long)K[bk].v[i].sub, K[bk].v[i].tomb, (long long)K[bk].v[i].create, (long long)K[bk].v[i].version);
        for (size_t i = 0; i < resp->n_kvs; i++)
            fprintf(stderr, "  store %.*s mod=%lld ver=%lld cr=%lld\n", (int)resp->kvs[i]->key.len, resp->kvs[i]->key.data, (long long)resp->kvs[i]->mod_revision, (long long)resp->kvs[i]->version, (long long)resp->kvs[i]->create_revision);
    }
    assert_int_equal(resp->count, mr.count);
    assert_int_equal(resp->more, mr.more);
    assert_int_equal(resp->n_kvs, mr.n);
    for (int i = 0; i < mr.n; i++)
        expect_kv(resp->kvs[i], mr.keys[i], mr.v[i], r->keys_only);
}

static int key_index(const char *name);
static int key_index(const char *name)
{
    for (int k = 0; k < NKEYS; k++)
        if (!strcmp(K[k].name, name))
            return k;
    return -1;
}

static Etcdserverpb__RangeRequest *random_range_req(rq *q)
{
    Etcdserverpb__RangeRequest *r = palloc(sizeof *r);
    etcdserverpb__range_request__init(r);
    *q = random_rq();
    r->key = pb(q->key);
    set_range_end(&r->range_end, q);
    if (rn(3) == 0)
        r->limit = rn(5);
    if (rn(4) == 0) {
        r->sort_order = rn(3);
        r->sort_target = rn(5);
    }
    if (rn(8) == 0)
        r->count_only = true;
    if (rn(8) == 0)
        r->keys_only = true;
    if (rn(8) == 0)
        r->min_mod_revision = 1 + rn((int)m_rev + 1);
    if (rn(8) == 0)
        r->max_mod_revision = 1 + rn((int)m_rev + 1);
    if (rn(10) == 0)
        r->min_create_revision = 1 + rn((int)m_rev + 1);
    if (rn(10) == 0)
        r->max_create_revision = 1 + rn((int)m_rev + 1);
    return r;
}

/* ---- the store side ---- */
static kvt T;
static long st_wev, st_wcompacted, st_put_ok, st_txn_ok, st_txn_err, st_range_ok, st_compact, st_reopen, st_events;

static int apply(Plinthpb__Request *req, kv_result *out)
{
    return kvt_apply(&T, req, out);
}

static void op_put(void)
{
    Etcdserverpb__PutRequest *p = palloc(sizeof *p);
    etcdserverpb__put_request__init(p);
    int k = rn(NKEYS);
    char *val = palloc(24);
    snprintf(val, 24, "v%llu", (unsigned long long)(rnd() % 1000));
    p->key = pb(K[k].name);
    p->value = pb(val);
    p->prev_kv = rn(2);
    if (rn(10) == 0 && m_nleases)
        p->lease = m_leases[rn(m_nleases)];
    else if (rn(40) == 0)
        p->lease = 999999; /* no such lease */
    if (rn(20) == 0) {
        p->ignore_value = true;
        if (rn(3))
            p->value = pb("");
    }
    if (rn(20) == 0) {
        p->ignore_lease = true;
        if (rn(2))
            p->lease = 0;
    }
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = p;
    kv_result out;
    int err = apply(&req, &out);

    const mver *prev = m_live(k, INT64_MAX);
    int want = 0;
    if (p->ignore_value && p->value.len)
        want = KV_EVALUEPROVIDED;
    else if (p->ignore_lease && p->lease)
        want = KV_ELEASEPROVIDED;
    else if ((p->ignore_value || p->ignore_lease) && !prev)
        want = KV_EKEYNOTFOUND;
    else if (p->lease && !p->ignore_lease && !m_lease_exists(p->lease))
        want = KV_ELEASENOTFOUND;
    assert_int_equal(err, want);
    if (!want) {
        mver pv;
        if (prev)
            pv = *prev;
        int64_t rev = ++m_rev;
        st_put_ok++;
        m_write(k, rev, 0, false, prev ? pv.create : rev, prev ? pv.version + 1 : 1,
                p->ignore_lease ? pv.lease : p->lease, p->ignore_value ? pv.val : val);
        Etcdserverpb__PutResponse *pr = (Etcdserverpb__PutResponse *)out.msg;
        assert_int_equal(pr->header->revision, m_rev);
        if (p->prev_kv && prev)
            expect_kv(pr->prev_kv, k, &pv, false);
        else
            assert_null(pr->prev_kv);
    }
    kv_result_free(&out);
}

/* deletes every live key of q in revision rev starting at sub *sub; checks prev_kvs */
static int m_delete(const rq *q, int64_t rev, int64_t *sub, const Etcdserverpb__DeleteRangeResponse *dr,
                    bool want_prev)
{
    int n = 0;
    for (int k = 0; k < NKEYS; k++) {
        const mver *v = m_live(k, INT64_MAX);
        if (!v || !m_in(K[k].name, q))
            continue;
        if (dr && want_prev) {
            assert_true((size_t)n < dr->n_prev_kvs);
            expect_kv(dr->prev_kvs[n], k, v, false);
        }
        m_write(k, rev, (*sub)++, true, 0, 0, 0, NULL);
        n++;
    }
    return n;
}

static void op_delete(void)
{
    Etcdserverpb__DeleteRangeRequest *d = palloc(sizeof *d);
    etcdserverpb__delete_range_request__init(d);
    rq q = random_rq();
    d->key = pb(q.key);
    set_range_end(&d->range_end, &q);
    d->prev_kv = rn(2);
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_DELETE_RANGE;
    req.delete_range = d;
    kv_result out;
    assert_int_equal(apply(&req, &out), 0);
    Etcdserverpb__DeleteRangeResponse *dr = (Etcdserverpb__DeleteRangeResponse *)out.msg;
    int64_t sub = 0;
    int n = m_delete(&q, m_rev + 1, &sub, dr, d->prev_kv);
    if (n)
        m_rev++;
    assert_int_equal(dr->deleted, n);
    assert_int_equal(dr->header->revision, m_rev);
    kv_result_free(&out);
}

static void op_range(void)
{
    rq q;
    Etcdserverpb__RangeRequest *r = random_range_req(&q);
    int t = rn(4);
    if (t == 1)
        r->revision = 1 + rn((int)m_rev + 2); /* may be compacted or future */
    kv_result out;
    assert_int_equal(kv_range(T.s, r, &out), 0);
    int64_t at = r->revision > 0 ? r->revision : m_rev;
    int want = 0;
    if (r->revision > m_rev)
        want = KV_EFUTUREREV;
    else if (r->revision > 0 && r->revision < m_compact)
        want = KV_ECOMPACTED;
    assert_int_equal(out.err, want);
    if (!want) {
        Etcdserverpb__RangeResponse *rr = (Etcdserverpb__RangeResponse *)out.msg;
        assert_int_equal(rr->header->revision, m_rev);
        check_range(r, &q, at, rr);
        st_range_ok++;
        st_events += (long)rr->n_kvs;
    }
    kv_result_free(&out);
}

static void op_compact(void)
{
    int64_t rev = m_compact + rn((int)(m_rev - m_compact) + 2) - (rn(4) == 0 ? 1 : 0);
    int want = rev <= m_compact ? KV_ECOMPACTED : rev > m_rev ? KV_EFUTUREREV : 0;
    assert_int_equal(kvt_compact(&T, rev), want);
    if (!want) {
        m_compact = rev;
        st_compact++;
    }
}

static void op_lease(void)
{
    if (rn(2) == 0 || m_nleases == 0) {
        int64_t id = 1 + rn(20);
        int64_t got = 0;
        int want = m_lease_exists(id) ? KV_ELEASEEXISTS : 0;
        assert_int_equal(kvt_grant(&T, id, 1 + rn(100), &got), want);
        if (!want) {
            assert_int_equal(got, id);
            m_leases[m_nleases++] = id;
        }
        return;
    }
    int i = rn(m_nleases + 1);
    int64_t id = i < m_nleases ? m_leases[i] : 555;
    int want = i < m_nleases ? 0 : KV_ELEASENOTFOUND;
    if (!want) {
        /* time-to-live lists exactly the attached keys */
        Etcdserverpb__LeaseTimeToLiveRequest tr = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
        tr.id = id;
        tr.keys = true;
        kv_result out;
        assert_int_equal(kv_lease_time_to_live(T.s, &tr, 0, &out), 0);
        Etcdserverpb__LeaseTimeToLiveResponse *r = (Etcdserverpb__LeaseTimeToLiveResponse *)out.msg;
        size_t n = 0;
        for (int k = 0; k < NKEYS; k++) {
            const mver *v = m_live(k, INT64_MAX);
            if (v && v->lease == id) {
                assert_true(n < r->n_keys);
                assert_int_equal(r->keys[n].len, strlen(K[k].name));
                assert_memory_equal(r->keys[n].data, K[k].name, r->keys[n].len);
                n++;
            }
        }
        assert_int_equal(n, r->n_keys);
        kv_result_free(&out);
    }
    int64_t before = kv_current_revision(T.s);
    assert_int_equal(kvt_revoke(&T, id), want);
    if (!want) {
        int64_t sub = 0;
        for (int k = 0; k < NKEYS; k++) {
            const mver *v = m_live(k, INT64_MAX);
            if (v && v->lease == id)
                m_write(k, m_rev + 1, sub++, true, 0, 0, 0, NULL);
        }
        if (sub)
            m_rev++;
        m_leases[i] = m_leases[--m_nleases];
        assert_int_equal(kv_current_revision(T.s), before + (sub ? 1 : 0));
    }
}

/* ---- txns ---- */
typedef struct tctx {
    int64_t rev;      /* the txn's revision */
    int64_t sub;
    int err;
} tctx;

static Etcdserverpb__Compare *random_compare(void)
{
    Etcdserverpb__Compare *c = palloc(sizeof *c);
    etcdserverpb__compare__init(c);
    rq q = random_rq();
    if (rn(4) == 0) {
        c->key = pb(q.key);
        set_range_end(&c->range_end, &q);
    } else {
        c->key = pb(K[rn(NKEYS)].name);
    }
    c->result = rn(4);
    c->target = rn(5);
    switch ((int)c->target) {
    case 0: c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION; c->version = rn(3); break;
    case 1: c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION; c->create_revision = rn((int)m_rev + 1); break;
    case 2: c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION; c->mod_revision = rn((int)m_rev + 1); break;
    case 3: {
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        char *v = palloc(8);
        snprintf(v, 8, "v%d", rn(1000));
        c->value = pb(rn(3) ? v : "");
        break;
    }
    case 4: c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE; c->lease = m_nleases && rn(2) ? m_leases[0] : 0; break;
    }
    if (rn(10) == 0)
        c->target_union_case = 0; /* mismatched union: compares against zero */
    return c;
}

static int64_t cmp_i(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static bool m_compare_one(const Etcdserverpb__Compare *c, const mver *v)
{
    int64_t res = 0;
    switch ((int)c->target) {
    case 3: {
        const char *want = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE ? (const char *)c->value.data : "";
        size_t wl = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE ? c->value.len : 0;
        const char *have = v ? v->val : "";
        size_t hl = strlen(have), m = hl < wl ? hl : wl;
        int x = m ? memcmp(have, want, m) : 0;
        res = x ? x : cmp_i((int64_t)hl, (int64_t)wl);
        break;
    }
    case 0: res = cmp_i(v ? v->version : 0, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION ? c->version : 0); break;
    case 1: res = cmp_i(v ? v->create : 0, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION ? c->create_revision : 0); break;
    case 2: res = cmp_i(v ? v->rev : 0, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION ? c->mod_revision : 0); break;
    case 4: res = cmp_i(v ? v->lease : 0, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE ? c->lease : 0); break;
    }
    switch ((int)c->result) {
    case 0: return res == 0;
    case 1: return res > 0;
    case 2: return res < 0;
    case 3: return res != 0;
    }
    return true;
}

static bool m_compare(const Etcdserverpb__Compare *c)
{
    rq q = {(const char *)c->key.data, NULL, false};
    char endbuf[16] = {0};
    if (c->range_end.len == 1 && c->range_end.data[0] == 0) {
        q.from_key = true;
    } else if (c->range_end.len) {
        memcpy(endbuf, c->range_end.data, c->range_end.len);
        q.end = endbuf;
    }
    char keybuf[16] = {0};
    memcpy(keybuf, c->key.data, c->key.len);
    q.key = keybuf;
    bool any = false;
    for (int k = 0; k < NKEYS; k++) {
        const mver *v = m_live(k, INT64_MAX);
        if (!v || !m_in(K[k].name, &q))
            continue;
        any = true;
        if (!m_compare_one(c, v))
            return false;
    }
    if (!any)
        return c->target == 3 ? false : m_compare_one(c, NULL);
    return true;
}

static Etcdserverpb__TxnRequest *random_txn(int depth);

static Etcdserverpb__RequestOp *random_op(int depth)
{
    Etcdserverpb__RequestOp *op = palloc(sizeof *op);
    etcdserverpb__request_op__init(op);
    int t = rn(depth < 1 ? 10 : 9);
    if (t < 3) {
        rq q;
        Etcdserverpb__RangeRequest *r = random_range_req(&q);
        if (rn(5) == 0)
            r->revision = 1 + rn((int)m_rev + 2);
        op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        op->request_range = r;
    } else if (t < 7) {
        Etcdserverpb__PutRequest *p = palloc(sizeof *p);
        etcdserverpb__put_request__init(p);
        char *val = palloc(8);
        snprintf(val, 8, "t%d", rn(1000));
        p->key = pb(K[rn(NKEYS)].name);
        p->value = pb(val);
        p->prev_kv = rn(2);
        if (rn(8) == 0 && m_nleases)
            p->lease = m_leases[rn(m_nleases)];
        if (rn(15) == 0) {
            p->ignore_value = true;
            p->value = pb("");
        }
        op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op->request_put = p;
    } else if (t < 9) {
        Etcdserverpb__DeleteRangeRequest *d = palloc(sizeof *d);
        etcdserverpb__delete_range_request__init(d);
        rq q = random_rq();
        d->key = pb(q.key);
        set_range_end(&d->range_end, &q);
        d->prev_kv = rn(2);
        op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        op->request_delete_range = d;
    } else {
        op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        op->request_txn = random_txn(depth + 1);
    }
    return op;
}

static Etcdserverpb__TxnRequest *random_txn(int depth)
{
    Etcdserverpb__TxnRequest *t = palloc(sizeof *t);
    etcdserverpb__txn_request__init(t);
    t->n_compare = rn(3);
    t->compare = palloc(sizeof(void *) * (t->n_compare + 1));
    for (size_t i = 0; i < t->n_compare; i++)
        t->compare[i] = random_compare();
    t->n_success = rn(4);
    t->success = palloc(sizeof(void *) * (t->n_success + 1));
    for (size_t i = 0; i < t->n_success; i++)
        t->success[i] = random_op(depth);
    t->n_failure = rn(3);
    t->failure = palloc(sizeof(void *) * (t->n_failure + 1));
    for (size_t i = 0; i < t->n_failure; i++)
        t->failure[i] = random_op(depth);
    return t;
}

/* The model's own reading of etcd's duplicate-write rule (checkIntervals), written
 * naively: sets of put keys and delete intervals as string lists. */
typedef struct wset {
    const char *puts[256];
    int np;
    rq dels[256];
    int nd;
} wset;

static bool d_hits(const wset *w, const char *k)
{
    for (int i = 0; i < w->nd; i++) {
        const rq *d = &w->dels[i];
        if (d->from_key)
            continue; /* [key, "\0") is empty in etcd's interval tree */
        if (!d->end ? strcmp(k, d->key) == 0 : (strcmp(d->key, k) <= 0 && strcmp(k, d->end) < 0))
            return true;
    }
    return false;
}
static bool p_has(const wset *w, const char *k)
{
    for (int i = 0; i < w->np; i++)
        if (!strcmp(w->puts[i], k))
            return true;
    return false;
}

static char *cstr(const ProtobufCBinaryData *b)
{
    char *s = palloc(b->len + 1);
    memcpy(s, b->data, b->len);
    return s;
}

static bool m_intervals(Etcdserverpb__RequestOp **ops, size_t n, wset *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) {
            Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
            rq q = {cstr(&d->key), NULL, false};
            if (d->range_end.len == 1 && d->range_end.data[0] == 0)
                q.from_key = true;
            else if (d->range_end.len)
                q.end = cstr(&d->range_end);
            out->dels[out->nd++] = q;
        }
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
            continue;
        wset a, b;
        if (!m_intervals(ops[i]->request_txn->success, ops[i]->request_txn->n_success, &a) ||
            !m_intervals(ops[i]->request_txn->failure, ops[i]->request_txn->n_failure, &b))
            return false;
        for (int j = 0; j < a.np; j++) {
            if (p_has(out, a.puts[j]) || d_hits(out, a.puts[j]))
                return false;
            out->puts[out->np++] = a.puts[j];
        }
        for (int j = 0; j < b.np; j++) {
            if ((p_has(out, b.puts[j]) && !p_has(&a, b.puts[j])) || d_hits(out, b.puts[j]))
                return false;
            out->puts[out->np++] = b.puts[j];
        }
        for (int j = 0; j < a.nd; j++)
            out->dels[out->nd++] = a.dels[j];
        for (int j = 0; j < b.nd; j++)
            out->dels[out->nd++] = b.dels[j];
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
            continue;
        const char *k = cstr(&ops[i]->request_put->key);
        if (p_has(out, k) || d_hits(out, k))
            return false;
        out->puts[out->np++] = k;
    }
    return true;
}

/* branch choices (preorder), evaluated before any write */
static void m_path(const Etcdserverpb__TxnRequest *t, bool *path, int *np)
{
    bool ok = true;
    for (size_t i = 0; i < t->n_compare && ok; i++)
        ok = m_compare(t->compare[i]);
    path[(*np)++] = ok;
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
            m_path(ops[i]->request_txn, path, np);
}

static int m_check_path(const Etcdserverpb__TxnRequest *t, const bool *path, int *pi, bool *writes)
{
    bool ok = path[(*pi)++];
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__RequestOp *op = ops[i];
        int e = 0;
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
            int64_t r = op->request_range->revision;
            if (r > m_rev)
                return KV_EFUTUREREV;
            if (r > 0 && r < m_compact)
                return KV_ECOMPACTED;
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
            Etcdserverpb__PutRequest *p = op->request_put;
            *writes = true;
            if (p->ignore_value && !m_live(key_index(cstr(&p->key)), INT64_MAX))
                return KV_EKEYNOTFOUND;
            if (p->lease && !m_lease_exists(p->lease))
                return KV_ELEASENOTFOUND;
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            *writes = true;
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            if ((e = m_check_path(op->request_txn, path, pi, writes)))
                return e;
            break;
        default:
            break;
        }
    }
    return 0;
}

/* executes the path against the model and checks the store's responses */
static void m_exec(tctx *c, const Etcdserverpb__TxnRequest *t, const bool *path, int *pi,
                   const Etcdserverpb__TxnResponse *resp)
{
    bool ok = path[(*pi)++];
    assert_int_equal(resp->succeeded, ok);
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    assert_int_equal(resp->n_responses, n);
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__RequestOp *op = ops[i];
        Etcdserverpb__ResponseOp *ro = resp->responses[i];
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
            Etcdserverpb__RangeRequest *r = op->request_range;
            rq q = {cstr(&r->key), NULL, false};
            if (r->range_end.len == 1 && r->range_end.data[0] == 0)
                q.from_key = true;
            else if (r->range_end.len)
                q.end = cstr(&r->range_end);
            assert_int_equal(ro->response_case, ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE);
            check_range(r, &q, r->revision > 0 ? r->revision : INT64_MAX, ro->response_range);
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
            Etcdserverpb__PutRequest *p = op->request_put;
            int k = key_index(cstr(&p->key));
            const mver *prev = m_live(k, INT64_MAX);
            mver pv;
            if (prev)
                pv = *prev;
            assert_int_equal(ro->response_case, ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
            if (p->prev_kv && prev)
                expect_kv(ro->response_put->prev_kv, k, &pv, false);
            else
                assert_null(ro->response_put->prev_kv);
            m_write(k, c->rev, c->sub++, false, prev ? pv.create : c->rev,
                    prev ? pv.version + 1 : 1, p->lease,
                    p->ignore_value ? (prev ? pv.val : "") : cstr(&p->value));
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
            Etcdserverpb__DeleteRangeRequest *d = op->request_delete_range;
            rq q = {cstr(&d->key), NULL, false};
            if (d->range_end.len == 1 && d->range_end.data[0] == 0)
                q.from_key = true;
            else if (d->range_end.len)
                q.end = cstr(&d->range_end);
            assert_int_equal(ro->response_case, ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE);
            int nd = m_delete(&q, c->rev, &c->sub, ro->response_delete_range, d->prev_kv);
            assert_int_equal(ro->response_delete_range->deleted, nd);
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            assert_int_equal(ro->response_case, ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
            m_exec(c, op->request_txn, path, pi, ro->response_txn);
            break;
        default:
            break;
        }
    }
}

static int m_check_txn_ops(const Etcdserverpb__TxnRequest *t, int max)
{
    size_t opc = t->n_compare;
    if (t->n_success > opc) opc = t->n_success;
    if (t->n_failure > opc) opc = t->n_failure;
    if ((int)opc > max)
        return KV_ETOOMANYOPS;
    for (int br = 0; br < 2; br++) {
        Etcdserverpb__RequestOp **ops = br ? t->failure : t->success;
        size_t n = br ? t->n_failure : t->n_success;
        for (size_t i = 0; i < n; i++)
            if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) {
                int e = m_check_txn_ops(ops[i]->request_txn, max - (int)opc);
                if (e)
                    return e;
            }
    }
    return 0;
}

static void op_txn(void)
{
    Etcdserverpb__TxnRequest *t = random_txn(0);
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_TXN;
    req.txn = t;
    kv_result out;
    int err = apply(&req, &out);

    int want = m_check_txn_ops(t, 128);
    wset ws;
    if (!want && (!m_intervals(t->success, t->n_success, &ws) ||
                  !m_intervals(t->failure, t->n_failure, &ws)))
        want = KV_EDUPKEY;
    bool path[256];
    int np = 0, pi = 0;
    bool writes = false;
    if (!want) {
        m_path(t, path, &np);
        want = m_check_path(t, path, &pi, &writes);
    }
    assert_int_equal(err, want);
    if (!want) {
        tctx c = {m_rev + 1, 0, 0};
        pi = 0;
        Etcdserverpb__TxnResponse *tr = (Etcdserverpb__TxnResponse *)out.msg;
        m_exec(&c, t, path, &pi, tr);
        st_txn_ok++;
        if (c.sub)
            m_rev++;
        assert_int_equal(tr->header->revision, m_rev);
    } else {
        st_txn_err++;
        assert_int_equal(kv_current_revision(T.s), m_rev);
    }
    kv_result_free(&out);
}

/* ---- one watcher on every key, from the start, often too busy to take events ---- */
typedef struct wrec {
    int64_t rev;
    bool del;
    int key;
    char val[24];
    bool has_prev;
    char pval[24];
} wrec;
static wrec *Wv;
static size_t Wn, Wcap;
static int64_t W_compacted;
static kv_watcher *Ww;
static uint64_t wrng;

static int w_cb(const kv_watch_event_batch *b)
{
    wrng = wrng * 6364136223846793005ull + 1442695040888963407ull;
    if ((wrng >> 33) % 100 < 15)
        return KV_WATCH_BUSY;
    if (b->compact_revision) {
        W_compacted = b->compact_revision;
        return KV_WATCH_TAKEN;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const Mvccpb__Event *e = b->events[i];
        if (Wn == Wcap) {
            Wcap = Wcap ? Wcap * 2 : 1024;
            wrec *grown = realloc(Wv, Wcap * sizeof(wrec));
            assert_non_null(grown);
            Wv = grown;
        }
        wrec *r = &Wv[Wn++];
        memset(r, 0, sizeof *r);
        char name[16] = {0};
        memcpy(name, e->kv->key.data, e->kv->key.len < 15 ? e->kv->key.len : 15);
        r->key = key_index(name);
        r->rev = e->kv->mod_revision;
        r->del = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
        snprintf(r->val, sizeof r->val, "%.*s", (int)e->kv->value.len, e->kv->value.data);
        if (e->prev_kv) {
            r->has_prev = true;
            snprintf(r->pval, sizeof r->pval, "%.*s", (int)e->prev_kv->value.len,
                     e->prev_kv->value.data);
        }
    }
    return KV_WATCH_TAKEN;
}

static void w_create(int64_t start)
{
    Ww = NULL;
    if (W_compacted)
        return;
    kv_watch_opts o = {.key = (const uint8_t *)"\x01", .key_len = 1,
                       .range_end = (const uint8_t *)"", .range_end_len = 1,
                       .start_revision = start, .prev_kv = true, .fn = w_cb};
    int rc = kv_watch_create(T.s, &o, &Ww);
    if (rc == KV_ECOMPACTED) {
        W_compacted = kv_compact_revision(T.s);
        Ww = NULL;
        return;
    }
    assert_int_equal(rc, 0);
}

typedef struct xev {
    int64_t rev, sub;
    int key, idx;
} xev;
static int xev_cmp(const void *a, const void *b)
{
    const xev *x = a, *y = b;
    if (x->rev != y->rev)
        return x->rev < y->rev ? -1 : 1;
    return (x->sub > y->sub) - (x->sub < y->sub);
}

/* every change the model saw, in order, against what the watcher got */
static void w_check(void)
{
    size_t n = 0;
    for (int k = 0; k < NKEYS; k++)
        n += (size_t)K[k].n;
    xev *x = calloc(n + 1, sizeof *x);
    size_t m = 0;
    for (int k = 0; k < NKEYS; k++)
        for (int j = 0; j < K[k].n; j++)
            x[m++] = (xev){K[k].v[j].rev, K[k].v[j].sub, k, j};
    qsort(x, m, sizeof *x, xev_cmp);
    assert_true(Wn <= m);
    for (size_t i = 0; i < Wn; i++) {
        const mver *v = &K[x[i].key].v[x[i].idx];
        const wrec *r = &Wv[i];
        if (r->rev != v->rev && getenv("TRACE")) {
            for (size_t j = i > 5 ? i - 5 : 0; j < i + 5 && j < m; j++)
                fprintf(stderr, "  want %lld.%lld %s %s | got %lld %s %s\n", (long long)x[j].rev,
                        (long long)x[j].sub, K[x[j].key].name,
                        K[x[j].key].v[x[j].idx].tomb ? "DEL" : "PUT", j < Wn ? (long long)Wv[j].rev : -1,
                        j < Wn && Wv[j].key >= 0 ? K[Wv[j].key].name : "-", j < Wn && Wv[j].del ? "DEL" : "PUT");
        }
        assert_int_equal(r->rev, v->rev);
        assert_int_equal(r->key, x[i].key);
        assert_int_equal(r->del, v->tomb);
        if (!v->tomb)
            assert_string_equal(r->val, v->val);
        const mver *pv = x[i].idx > 0 ? &K[x[i].key].v[x[i].idx - 1] : NULL;
        if (r->has_prev) {
            assert_non_null(pv);
            assert_false(pv->tomb);
            assert_string_equal(r->pval, pv->val);
        } else if (pv && !pv->tomb) {
            assert_true(pv->rev < m_compact); /* only a compacted prev may be missing */
        }
    }
    if (W_compacted)
        assert_true(Wn < m && x[Wn].rev < W_compacted);
    else
        assert_int_equal(Wn, m);
    free(x);
}

static void run_seed(uint64_t seed, int nops)
{
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    wrng = seed;
    model_init();
    kvt_init(&T, "kv-model", NULL);
    Wn = 0;
    W_compacted = 0;
    w_create(0);
    for (int i = 0; i < nops; i++) {
        pool_used = 0;
        int x = rn(1000);
        if (getenv("TRACE"))
            fprintf(stderr, "op %d kind %d rev %lld\n", i, x, (long long)m_rev);
        if (x < 400)
            op_put();
        else if (x < 500)
            op_delete();
        else if (x < 650)
            op_txn();
        else if (x < 920)
            op_range();
        else if (x < 940)
            op_compact();
        else if (x < 995)
            op_lease();
        else {
            kvt_reopen(&T); /* the watcher went with the handle: watch again */
            st_reopen++;
            w_create(Wn ? Wv[Wn - 1].rev + 1 : 2);
        }
        assert_int_equal(kv_current_revision(T.s), m_rev);
        if (Ww && i % 2 == 0)
            kv_watch_resume(Ww); /* the owner drained its buffer */
        kv_watch_notify(T.s);
    }
    if (Ww) {
        wrng = 99; /* answers busy now and then, still converges */
        for (int i = 0; i < 100000; i++) {
            kv_watch_resume(Ww);
            if (kv_watch_notify(T.s) == 0 && kv_watch_synced(Ww))
                break;
        }
    }
    w_check();
    st_wev += (long)Wn;
    st_wcompacted += W_compacted != 0;
    /* final sweep: every key at every readable revision */
    for (int64_t at = m_compact > 0 ? m_compact : 1; at <= m_rev; at += 1 + m_rev / 50) {
        Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
        rq q = {"\x01", NULL, true};
        r.key = pb("\x01");
        r.range_end = (ProtobufCBinaryData){1, (uint8_t *)""};
        r.revision = at;
        kv_result out;
        assert_int_equal(kv_range(T.s, &r, &out), 0);
        assert_int_equal(out.err, 0);
        check_range(&r, &q, at, (Etcdserverpb__RangeResponse *)out.msg);
        kv_result_free(&out);
    }
    kv_stats st;
    kv_stat(T.s, &st);
    int64_t live = 0;
    for (int k = 0; k < NKEYS; k++)
        live += m_live(k, INT64_MAX) != NULL;
    assert_int_equal(st.keys, live);
    kvt_done(&T);
}

static void run_group(uint64_t first, uint64_t last, int nops)
{
    const char *env = getenv("SEED");
    if (env) {
        uint64_t s = strtoull(env, NULL, 10);
        if (s >= first && s <= last)
            run_seed(s, nops);
        return;
    }
    for (uint64_t s = first; s <= last; s++) {
        fprintf(stderr, "# seed %llu\n", (unsigned long long)s);
        run_seed(s, nops);
    }
    fprintf(stderr, "# puts %ld, txns %ld (+%ld refused), ranges %ld (%ld kvs), compactions %ld, reopens %ld\n",
            st_put_ok, st_txn_ok, st_txn_err, st_range_ok, st_events, st_compact, st_reopen);
    fprintf(stderr, "# watch: %ld events checked, %ld seeds ended in a compacted watcher\n", st_wev,
            st_wcompacted);
}

/* KV_MODEL_SEEDS=n widens the first group to seeds 1..n for a longer run */
static void test_seeds_1_20(void **state)
{
    (void)state;
    const char *n = getenv("KV_MODEL_SEEDS");
    run_group(1, n ? strtoull(n, NULL, 10) : 20, 3000);
}
static void test_seeds_21_40(void **state) { (void)state; run_group(21, 40, 3000); }
static void test_seeds_41_60(void **state) { (void)state; run_group(41, 60, 3000); }
static void test_long_seeds(void **state) { (void)state; run_group(1000, 1003, 20000); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds_1_20),
        cmocka_unit_test(test_seeds_21_40),
        cmocka_unit_test(test_seeds_41_60),
        cmocka_unit_test(test_long_seeds),
    };
    return PLINTH_RUN_TESTS("kv_model", tests);
}

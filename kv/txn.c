/* txn.c — applying a committed request: etcd's request checks (the same on every member,
 * so a bad entry is refused identically and nothing is written), Put, DeleteRange,
 * Txn with compares and nested txns under one revision, Compaction, and kv_apply. */
#include <stdlib.h>

#include "kv/kv_int.h"

/* ---- request checks (etcd v3rpc/key.go) ------------------------------------------ */

int check_put(kv_store *s, const Etcdserverpb__PutRequest *p)
{
    int err = check_key(s, p->key.data, p->key.len);
    if (err)
        return err;
    if (p->ignore_value && p->value.len)
        return KV_EVALUEPROVIDED;
    if (p->ignore_lease && p->lease)
        return KV_ELEASEPROVIDED;
    return 0;
}

static int check_op(kv_store *s, const Etcdserverpb__RequestOp *op, int max_ops)
{
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return kv_check_range(s, op->request_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        return check_put(s, op->request_put);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        return op->request_delete_range->key.len ? 0 : KV_EEMPTYKEY;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        return check_txn(s, op->request_txn, max_ops);
    default:
        return KV_EKEYNOTFOUND; /* an empty RequestOp, as etcd answers */
    }
}

int check_txn(kv_store *s, const Etcdserverpb__TxnRequest *t, int max_ops)
{
    size_t opc = t->n_compare;
    if (t->n_success > opc)
        opc = t->n_success;
    if (t->n_failure > opc)
        opc = t->n_failure;
    if ((long)opc > max_ops)
        return KV_ETOOMANYOPS;
    for (size_t i = 0; i < t->n_compare; i++)
        if (!t->compare[i]->key.len)
            return KV_EEMPTYKEY;
    int err;
    for (size_t i = 0; i < t->n_success; i++)
        if ((err = check_op(s, t->success[i], max_ops - (int)opc)))
            return err;
    for (size_t i = 0; i < t->n_failure; i++)
        if ((err = check_op(s, t->failure[i], max_ops - (int)opc)))
            return err;
    return 0;
}

/* etcd's checkIntervals: no key may be put twice, or put and deleted, by the ops one txn
 * path can run. Intervals follow etcd's adt exactly: an empty end is a point, and a
 * from-key delete ("\0" end) is an empty interval there, so it conflicts with nothing. */
typedef struct bytesv {
    const uint8_t *p;
    size_t n;
} bytesv;
typedef struct ivl {
    bytesv b, e; /* e.n == 0 && point */
    bool point;
} ivl;
typedef struct ivset {
    ivl *v;
    size_t n, cap;
} ivset;
typedef struct keyset {
    bytesv *v;
    size_t n, cap;
} keyset;

static int bcmp_(bytesv a, bytesv b)
{
    size_t m = a.n < b.n ? a.n : b.n;
    int c = m ? memcmp(a.p, b.p, m) : 0;
    return c ? c : (a.n < b.n ? -1 : a.n > b.n ? 1 : 0);
}

static bool iv_has_point(const ivset *d, bytesv k)
{
    for (size_t i = 0; i < d->n; i++) {
        const ivl *v = &d->v[i];
        if (v->point) {
            if (bcmp_(v->b, k) == 0)
                return true;
        } else if (bcmp_(v->b, k) <= 0 && (v->e.n == 0 || bcmp_(k, v->e) < 0)) {
            return true;
        }
    }
    return false;
}

static bool ks_has(const keyset *s, bytesv k)
{
    for (size_t i = 0; i < s->n; i++)
        if (bcmp_(s->v[i], k) == 0)
            return true;
    return false;
}

static int ks_add(keyset *s, bytesv k)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        bytesv *nv = realloc(s->v, nc * sizeof(*nv));
        if (!nv)
            return KV_ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = k;
    return 0;
}

static int iv_add(ivset *d, ivl v)
{
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        ivl *nv = realloc(d->v, nc * sizeof(*nv));
        if (!nv)
            return KV_ENOMEM;
        d->v = nv;
        d->cap = nc;
    }
    d->v[d->n++] = v;
    return 0;
}

static int check_intervals(Etcdserverpb__RequestOp **ops, size_t n, keyset *puts, ivset *dels)
{
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE)
            continue;
        const Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
        ivl v = {{d->key.data, d->key.len}, {d->range_end.data, d->range_end.len},
                 d->range_end.len == 0};
        if ((err = iv_add(dels, v)))
            return err;
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
            continue;
        const Etcdserverpb__TxnRequest *t = ops[i]->request_txn;
        keyset pt = {0}, pe = {0};
        ivset dt = {0}, de = {0};
        err = check_intervals(t->success, t->n_success, &pt, &dt);
        if (!err)
            err = check_intervals(t->failure, t->n_failure, &pe, &de);
        for (size_t j = 0; !err && j < pt.n; j++) {
            if (ks_has(puts, pt.v[j]) || iv_has_point(dels, pt.v[j]))
                err = KV_EDUPKEY;
            else
                err = ks_add(puts, pt.v[j]);
        }
        for (size_t j = 0; !err && j < pe.n; j++) {
            if ((ks_has(puts, pe.v[j]) && !ks_has(&pt, pe.v[j])) || iv_has_point(dels, pe.v[j]))
                err = KV_EDUPKEY;
            else
                err = ks_add(puts, pe.v[j]);
        }
        for (size_t j = 0; !err && j < dt.n; j++)
            err = iv_add(dels, dt.v[j]);
        for (size_t j = 0; !err && j < de.n; j++)
            err = iv_add(dels, de.v[j]);
        free(pt.v);
        free(pe.v);
        free(dt.v);
        free(de.v);
        if (err)
            return err;
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
            continue;
        bytesv k = {ops[i]->request_put->key.data, ops[i]->request_put->key.len};
        if (ks_has(puts, k) || iv_has_point(dels, k))
            return KV_EDUPKEY;
        if ((err = ks_add(puts, k)))
            return err;
    }
    return 0;
}

static int check_txn_full(kv_store *s, const Etcdserverpb__TxnRequest *t)
{
    int err = check_txn(s, t, (int)s->opt.max_txn_ops);
    for (int br = 0; !err && br < 2; br++) {
        keyset p = {0};
        ivset d = {0};
        err = br == 0 ? check_intervals(t->success, t->n_success, &p, &d)
                      : check_intervals(t->failure, t->n_failure, &p, &d);
        free(p.v);
        free(d.v);
    }
    return err;
}

int kv_check_request(kv_store *s, const Plinthpb__Request *req)
{
    switch (req->request_case) {
    case PLINTHPB__REQUEST__REQUEST_PUT:
        return check_put(s, req->put);
    case PLINTHPB__REQUEST__REQUEST_DELETE_RANGE:
        return req->delete_range->key.len ? 0 : KV_EEMPTYKEY;
    case PLINTHPB__REQUEST__REQUEST_TXN:
        return check_txn_full(s, req->txn);
    default:
        return 0;
    }
}

/* ---- compares -------------------------------------------------------------------- */

typedef struct cmpctx {
    const Etcdserverpb__Compare *c;
    bool ok, any;
} cmpctx;

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static bool compare_kv(const Etcdserverpb__Compare *c, const rec *r)
{
    int res = 0;
    int64_t want = 0;
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE: {
        bytesv v = {NULL, 0};
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE) {
            v.p = c->value.data;
            v.n = c->value.len;
        }
        bytesv have = {r ? r->value : NULL, r ? r->value_len : 0};
        res = bcmp_(have, v);
        break;
    }
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
            want = c->create_revision;
        res = cmp_i64(r ? r->create : 0, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
            want = c->mod_revision;
        res = cmp_i64(r ? r->mod : 0, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION)
            want = c->version;
        res = cmp_i64(r ? r->version : 0, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE)
            want = c->lease;
        res = cmp_i64(r ? r->lease : 0, want);
        break;
    default:
        break;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
        return res == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
        return res != 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
        return res > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS:
        return res < 0;
    default:
        return true;
    }
}

static int cmp_visit(void *arg, const rec *r)
{
    cmpctx *cc = arg;
    cc->any = true;
    if (!compare_kv(cc->c, r)) {
        cc->ok = false;
        return 1;
    }
    return 0;
}

static int apply_compare(kv_wtxn *w, const Etcdserverpb__Compare *c, bool *ok)
{
    cmpctx cc = {c, true, false};
    int err = mvcc_scan(w->s, w->txn, c->key.data, c->key.len, c->range_end.data,
                        c->range_end.len, INT64_MAX, cmp_visit, &cc);
    if (err)
        return err;
    if (!cc.any)
        *ok = c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE ? false
                                                                         : compare_kv(c, NULL);
    else
        *ok = cc.ok;
    return 0;
}

/* The branch each txn on the path takes, in preorder (etcd's compareToPath): every
 * compare is evaluated against the store as it was before the txn wrote anything. */
typedef struct path {
    bool *v;
    size_t n, cap;
} path;

static int compare_path(kv_wtxn *w, const Etcdserverpb__TxnRequest *t, path *p)
{
    bool ok = true;
    int err;
    for (size_t i = 0; i < t->n_compare && ok; i++)
        if ((err = apply_compare(w, t->compare[i], &ok)))
            return err;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 8;
        bool *nv = realloc(p->v, nc);
        if (!nv)
            return KV_ENOMEM;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = ok;
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
            (err = compare_path(w, ops[i]->request_txn, p)))
            return err;
    return 0;
}

/* etcd's checkRequests along the chosen path: puts need their lease and (with
 * ignore_value/ignore_lease) their key; ranges need a readable revision. */
static int check_path(kv_wtxn *w, const Etcdserverpb__TxnRequest *t, const path *p, size_t *pi,
                      bool *writes)
{
    bool ok = p->v[(*pi)++];
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    int err;
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *op = ops[i];
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
            if ((err = range_check_rev(op->request_range->revision, w->rev, w->compact_rev)))
                return err;
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
            const Etcdserverpb__PutRequest *pr = op->request_put;
            *writes = true;
            if (pr->ignore_value || pr->ignore_lease) {
                rec r;
                err = get_live(w->s, w->txn, pr->key.data, pr->key.len, INT64_MAX, &r);
                if (err == MDB_NOTFOUND)
                    return KV_EKEYNOTFOUND;
                if (err)
                    return err;
            }
            if (pr->lease) {
                err = lease_exists_txn(w->s, w->txn, pr->lease);
                if (err == MDB_NOTFOUND)
                    return KV_ELEASENOTFOUND;
                if (err)
                    return err;
            }
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            *writes = true;
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            if ((err = check_path(w, op->request_txn, p, pi, writes)))
                return err;
            break;
        default:
            break;
        }
    }
    return 0;
}

static Etcdserverpb__ResponseHeader *rev_header(kv_arena *a, kv_rev_t rev)
{
    Etcdserverpb__ResponseHeader *h = arena_alloc(a, sizeof(*h));
    if (h) {
        etcdserverpb__response_header__init(h);
        h->revision = rev;
    }
    return h;
}

static int exec_path(wctx *c, const Etcdserverpb__TxnRequest *t, const path *p, size_t *pi,
                     kv_arena *a, Etcdserverpb__TxnResponse *resp)
{
    bool ok = p->v[(*pi)++];
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    int err;
    resp->succeeded = ok;
    if (n) {
        resp->responses = arena_alloc(a, n * sizeof(*resp->responses));
        if (!resp->responses)
            return KV_ENOMEM;
        resp->n_responses = n;
    }
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *op = ops[i];
        Etcdserverpb__ResponseOp *ro = arena_alloc(a, sizeof(*ro));
        if (!ro)
            return KV_ENOMEM;
        etcdserverpb__response_op__init(ro);
        resp->responses[i] = ro;
        kv_rev_t cur = c->sub ? c->rev : c->w->rev;
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
            Etcdserverpb__RangeResponse *rr = arena_alloc(a, sizeof(*rr));
            if (!rr)
                return KV_ENOMEM;
            etcdserverpb__range_response__init(rr);
            if (!(rr->header = rev_header(a, cur)))
                return KV_ENOMEM;
            const Etcdserverpb__RangeRequest *q = op->request_range;
            if (q->revision > 0) {
                if ((err = mvcc_range(c->w->s, c->w->txn, q, cur, a, rr)))
                    return err;
            } else {
                /* read the txn's own writes: everything in the write txn is <= INT64_MAX */
                Etcdserverpb__RangeRequest q2 = *q;
                q2.revision = 0;
                if ((err = mvcc_range(c->w->s, c->w->txn, &q2, INT64_MAX, a, rr)))
                    return err;
            }
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            ro->response_range = rr;
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
            Etcdserverpb__PutResponse *pr = arena_alloc(a, sizeof(*pr));
            if (!pr)
                return KV_ENOMEM;
            etcdserverpb__put_response__init(pr);
            if ((err = mvcc_put(c, op->request_put, a, pr)))
                return err;
            if (!(pr->header = rev_header(a, c->rev)))
                return KV_ENOMEM;
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
            ro->response_put = pr;
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
            const Etcdserverpb__DeleteRangeRequest *d = op->request_delete_range;
            Etcdserverpb__DeleteRangeResponse *dr = arena_alloc(a, sizeof(*dr));
            if (!dr)
                return KV_ENOMEM;
            etcdserverpb__delete_range_response__init(dr);
            if ((err = mvcc_delete_range(c, d->key.data, d->key.len, d->range_end.data,
                                         d->range_end.len, d->prev_kv, a, dr)))
                return err;
            if (!(dr->header = rev_header(a, c->sub ? c->rev : c->w->rev)))
                return KV_ENOMEM;
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
            ro->response_delete_range = dr;
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
            Etcdserverpb__TxnResponse *tr = arena_alloc(a, sizeof(*tr));
            if (!tr)
                return KV_ENOMEM;
            etcdserverpb__txn_response__init(tr);
            if ((err = exec_path(c, op->request_txn, p, pi, a, tr)))
                return err;
            if (!(tr->header = rev_header(a, c->sub ? c->rev : c->w->rev)))
                return KV_ENOMEM;
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
            ro->response_txn = tr;
            break;
        }
        default:
            break;
        }
    }
    return 0;
}

static bool txn_has_put(const Etcdserverpb__TxnRequest *t)
{
    for (size_t i = 0; i < t->n_success; i++)
        if (t->success[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
            return true;
    for (size_t i = 0; i < t->n_failure; i++)
        if (t->failure[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
            return true;
    return false;
}

/* Returns a client-visible code in *cerr (nothing written) or a failure. */
static int apply_txn_req(kv_wtxn *w, const Etcdserverpb__TxnRequest *t, kv_arena *a,
                         Etcdserverpb__TxnResponse **out, int *cerr)
{
    path p = {0};
    size_t pi = 0;
    bool writes = false;
    int err;
    *cerr = 0;
    if ((*cerr = check_txn_full(w->s, t)))
        return 0;
    if (nospace_active(w->alarms, w->n_alarms) && txn_has_put(t)) {
        *cerr = KV_ENOSPACE;
        return 0;
    }
    if ((err = compare_path(w, t, &p)))
        goto out;
    if ((err = check_path(w, t, &p, &pi, &writes))) {
        if (!kv_error_is_fatal_txn(err)) {
            *cerr = err;
            err = 0;
        }
        goto out;
    }
    Etcdserverpb__TxnResponse *resp = arena_alloc(a, sizeof(*resp));
    if (!resp) {
        err = KV_ENOMEM;
        goto out;
    }
    etcdserverpb__txn_response__init(resp);
    wctx c = {w, w->rev + 1, 0, true};
    pi = 0;
    if ((err = exec_path(&c, t, &p, &pi, a, resp))) {
        /* checks above leave only storage failures here; the turn is aborted */
        if (!kv_error_is_fatal_txn(err))
            err = kv_seterr(w->s, KV_EIO, "kv: txn: unexpected %s mid-write", kv_strerror(err));
        goto out;
    }
    if (c.sub)
        w->rev = c.rev;
    if (!(resp->header = new_header(w->s, a, w->rev))) {
        err = KV_ENOMEM;
        goto out;
    }
    *out = resp;
out:
    free(p.v);
    return err;
}

/* ---- read-only txns ------------------------------------------------------------- */

int kv_txn_read(kv_store *s, const Etcdserverpb__TxnRequest *t, kv_result *out)
{
    MDB_txn *txn;
    bool cached, writes = false;
    path p = {0};
    size_t pi = 0;
    int err = result_begin(out);
    if (err)
        return err;
    if ((out->err = check_txn_full(s, t)))
        return 0;
    if ((err = rtxn_get(s, &txn, &cached))) {
        kv_result_free(out);
        return err;
    }
    /* The evaluation of kv_apply over a read txn: a view with no writes pending. */
    kv_wtxn view = {.s = s, .txn = txn};
    read_view(s, txn, &view.rev, &view.compact_rev);
    if ((err = compare_path(&view, t, &p)))
        goto fail;
    if ((err = check_path(&view, t, &p, &pi, &writes))) {
        if (kv_error_is_fatal_txn(err))
            goto fail;
        out->err = err;
        err = 0;
        goto done;
    }
    if (writes) {
        err = KV_EINVAL; /* caller bug: only read-only txns come here */
        goto fail;
    }
    Etcdserverpb__TxnResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp) {
        err = KV_ENOMEM;
        goto fail;
    }
    etcdserverpb__txn_response__init(resp);
    wctx c = {&view, view.rev + 1, 0, true};
    pi = 0;
    if ((err = exec_path(&c, t, &p, &pi, out->arena, resp)))
        goto fail;
    if (!(resp->header = new_header(s, out->arena, view.rev))) {
        err = KV_ENOMEM;
        goto fail;
    }
    out->msg = &resp->base;
done:
    rtxn_put(s, txn, cached);
    free(p.v);
    return 0;
fail:
    rtxn_put(s, txn, cached);
    free(p.v);
    kv_result_free(out);
    return err;
}

/* ---- kv_apply -------------------------------------------------------------------- */

static int apply_put(kv_wtxn *w, const Etcdserverpb__PutRequest *p, kv_result *out)
{
    if ((out->err = check_put(w->s, p)))
        return 0;
    if (nospace_active(w->alarms, w->n_alarms)) {
        out->err = KV_ENOSPACE;
        return 0;
    }
    Etcdserverpb__PutResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__put_response__init(resp);
    wctx c = {w, w->rev + 1, 0, false};
    int err = mvcc_put(&c, p, out->arena, resp);
    if (err) {
        if (kv_error_is_fatal_txn(err))
            return err;
        out->err = err; /* found before anything was written */
        return 0;
    }
    w->rev = c.rev;
    if (!(resp->header = new_header(w->s, out->arena, w->rev)))
        return KV_ENOMEM;
    out->msg = &resp->base;
    return 0;
}

static int apply_delete(kv_wtxn *w, const Etcdserverpb__DeleteRangeRequest *d, kv_result *out)
{
    if (!d->key.len) {
        out->err = KV_EEMPTYKEY;
        return 0;
    }
    Etcdserverpb__DeleteRangeResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__delete_range_response__init(resp);
    wctx c = {w, w->rev + 1, 0, false};
    int err = mvcc_delete_range(&c, d->key.data, d->key.len, d->range_end.data,
                                d->range_end.len, d->prev_kv, out->arena, resp);
    if (err)
        return kv_error_is_fatal_txn(err) ? err : KV_EIO;
    if (c.sub)
        w->rev = c.rev;
    if (!(resp->header = new_header(w->s, out->arena, w->rev)))
        return KV_ENOMEM;
    out->msg = &resp->base;
    return 0;
}

static int apply_compaction(kv_wtxn *w, const Etcdserverpb__CompactionRequest *r,
                            kv_result *out)
{
    if (r->revision <= w->compact_rev) {
        out->err = KV_ECOMPACTED;
        return 0;
    }
    if (r->revision > w->rev) {
        out->err = KV_EFUTUREREV;
        return 0;
    }
    int err = mvcc_compact(w, r->revision);
    if (err)
        return err;
    w->compact_rev = r->revision;
    Etcdserverpb__CompactionResponse *resp = arena_alloc(out->arena, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__compaction_response__init(resp);
    if (!(resp->header = new_header(w->s, out->arena, w->rev)))
        return KV_ENOMEM;
    out->msg = &resp->base;
    return 0;
}

int kv_apply(kv_wtxn *w, kv_index_t index, kv_term_t term, const Plinthpb__Request *req,
             kv_result *out)
{
    int err;
    memset(out, 0, sizeof(*out));
    if (index <= w->applied)
        return KV_EAPPLIED;
    switch (req->request_case) {
    case PLINTHPB__REQUEST__REQUEST_PUT:
    case PLINTHPB__REQUEST__REQUEST_DELETE_RANGE:
    case PLINTHPB__REQUEST__REQUEST_TXN:
    case PLINTHPB__REQUEST__REQUEST_COMPACTION:
    case PLINTHPB__REQUEST__REQUEST_LEASE_GRANT:
    case PLINTHPB__REQUEST__REQUEST_LEASE_REVOKE:
    case PLINTHPB__REQUEST__REQUEST_LEASE_CHECKPOINT:
    case PLINTHPB__REQUEST__REQUEST_ALARM:
        break;
    default:
        return KV_EUNKNOWNREQ;
    }
    if ((err = result_begin(out)))
        return err;
    if (corrupt_active(w->alarms, w->n_alarms) &&
        req->request_case != PLINTHPB__REQUEST__REQUEST_ALARM) {
        out->err = KV_ECORRUPTALARM;
        goto done;
    }
    switch (req->request_case) {
    case PLINTHPB__REQUEST__REQUEST_PUT:
        err = apply_put(w, req->put, out);
        break;
    case PLINTHPB__REQUEST__REQUEST_DELETE_RANGE:
        err = apply_delete(w, req->delete_range, out);
        break;
    case PLINTHPB__REQUEST__REQUEST_TXN: {
        Etcdserverpb__TxnResponse *tr = NULL;
        err = apply_txn_req(w, req->txn, out->arena, &tr, &out->err);
        if (!err && tr)
            out->msg = &tr->base;
        break;
    }
    case PLINTHPB__REQUEST__REQUEST_COMPACTION:
        err = apply_compaction(w, req->compaction, out);
        break;
    case PLINTHPB__REQUEST__REQUEST_LEASE_GRANT:
        err = apply_lease_grant(w, index, req->lease_grant, out->arena, out);
        break;
    case PLINTHPB__REQUEST__REQUEST_LEASE_REVOKE:
        err = apply_lease_revoke(w, req->lease_revoke, out->arena, out);
        break;
    case PLINTHPB__REQUEST__REQUEST_LEASE_CHECKPOINT:
        err = apply_lease_checkpoint(w, req->lease_checkpoint, out->arena, out);
        break;
    case PLINTHPB__REQUEST__REQUEST_ALARM:
        err = apply_alarm(w, req->alarm, out->arena, out);
        break;
    default:
        break;
    }
    if (err) {
        kv_result_free(out);
        return err;
    }
done:
    if (out->err)
        out->msg = NULL;
    w->applied = index;
    w->applied_term = term;
    return 0;
}

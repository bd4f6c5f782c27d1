/* validate — request checks made before proposing, with etcd's errors. */
#include "node/validate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEASE_TTL 9000000000LL

struct node_status node_check_range(const Etcdserverpb__RangeRequest *r)
{
    if (r->key.len == 0)
        return ST_EMPTY_KEY;
    if ((int)r->sort_order < 0 || r->sort_order > 2 || (int)r->sort_target < 0 || r->sort_target > 4)
        return ST_INVALID_SORT;
    return ST_OK;
}

struct node_status node_check_put(const Etcdserverpb__PutRequest *r)
{
    if (r->key.len == 0)
        return ST_EMPTY_KEY;
    if (r->ignore_value && r->value.len != 0)
        return ST_VALUE_PROVIDED;
    if (r->ignore_lease && r->lease != 0)
        return ST_LEASE_PROVIDED;
    return ST_OK;
}

struct node_status node_check_delete(const Etcdserverpb__DeleteRangeRequest *r)
{
    if (r->key.len == 0)
        return ST_EMPTY_KEY;
    return ST_OK;
}

static struct node_status check_op(const Etcdserverpb__RequestOp *op, unsigned max_ops)
{
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return node_check_range(op->request_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        return node_check_put(op->request_put);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        return node_check_delete(op->request_delete_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        const Etcdserverpb__TxnRequest *t = op->request_txn;
        size_t i, opc = t->n_compare;
        struct node_status st;
        if (t->n_success > opc)
            opc = t->n_success;
        if (t->n_failure > opc)
            opc = t->n_failure;
        if (opc > max_ops)
            return ST_TOO_MANY_OPS;
        for (i = 0; i < t->n_compare; i++)
            if (t->compare[i]->key.len == 0)
                return ST_EMPTY_KEY;
        for (i = 0; i < t->n_success; i++)
            if ((st = check_op(t->success[i], max_ops)).code)
                return st;
        for (i = 0; i < t->n_failure; i++)
            if ((st = check_op(t->failure[i], max_ops)).code)
                return st;
        return ST_OK;
    }
    default:
        return ST_OK; /* an empty op does nothing, as in etcd */
    }
}

/* ---- duplicate keys (etcd's checkIntervals) ---------------------------------------- */

struct bin {
    const uint8_t *p;
    size_t len;
};

struct iv { /* [lo, hi); hi.len == 0 means a single key; hi == "\0" means to the end */
    struct bin lo, hi;
};

struct set {
    struct bin *puts;
    size_t n_puts, cap_puts;
    struct iv *dels;
    size_t n_dels, cap_dels;
};

static int bcmp_(struct bin a, struct bin b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.p, b.p, n);
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static bool iv_has(const struct iv *v, struct bin k)
{
    if (v->hi.len == 0)
        return bcmp_(v->lo, k) == 0;
    if (v->hi.len == 1 && v->hi.p[0] == 0) /* "\0": every key >= lo */
        return bcmp_(k, v->lo) >= 0;
    return bcmp_(k, v->lo) >= 0 && bcmp_(k, v->hi) < 0;
}

static bool dels_hit(const struct set *s, struct bin k)
{
    size_t i;
    for (i = 0; i < s->n_dels; i++)
        if (iv_has(&s->dels[i], k))
            return true;
    return false;
}

static bool puts_has(const struct set *s, struct bin k)
{
    size_t i;
    for (i = 0; i < s->n_puts; i++)
        if (bcmp_(s->puts[i], k) == 0)
            return true;
    return false;
}

static int add_put(struct set *s, struct bin k)
{
    if (s->n_puts == s->cap_puts) {
        size_t c = s->cap_puts ? 2 * s->cap_puts : 8;
        struct bin *n = realloc(s->puts, c * sizeof(*n));
        if (!n)
            return -1;
        s->puts = n;
        s->cap_puts = c;
    }
    s->puts[s->n_puts++] = k;
    return 0;
}

static int add_del(struct set *s, struct iv v)
{
    if (s->n_dels == s->cap_dels) {
        size_t c = s->cap_dels ? 2 * s->cap_dels : 8;
        struct iv *n = realloc(s->dels, c * sizeof(*n));
        if (!n)
            return -1;
        s->dels = n;
        s->cap_dels = c;
    }
    s->dels[s->n_dels++] = v;
    return 0;
}

static void set_free(struct set *s)
{
    free(s->puts);
    free(s->dels);
    memset(s, 0, sizeof(*s));
}

#define BIN(b) ((struct bin){(b).data, (b).len})

/* Returns 0, 1 on a duplicate, -1 on no memory. */
static int intervals(Etcdserverpb__RequestOp *const *reqs, size_t n, struct set *out)
{
    struct set s = {0};
    size_t i, j;
    int rc;

    for (i = 0; i < n; i++)
        if (reqs[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) {
            const Etcdserverpb__DeleteRangeRequest *d = reqs[i]->request_delete_range;
            struct iv v = {BIN(d->key), BIN(d->range_end)};
            if (add_del(&s, v) < 0)
                goto nomem;
        }
    for (i = 0; i < n; i++) {
        struct set th = {0}, el = {0};
        const Etcdserverpb__TxnRequest *t;
        if (reqs[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
            continue;
        t = reqs[i]->request_txn;
        if ((rc = intervals(t->success, t->n_success, &th)) != 0 ||
            (rc = intervals(t->failure, t->n_failure, &el)) != 0) {
            set_free(&th);
            set_free(&el);
            set_free(&s);
            return rc;
        }
        rc = 0;
        for (j = 0; j < th.n_puts && !rc; j++) {
            if (puts_has(&s, th.puts[j]) || dels_hit(&s, th.puts[j]))
                rc = 1;
            else if (add_put(&s, th.puts[j]) < 0)
                rc = -1;
        }
        for (j = 0; j < el.n_puts && !rc; j++) {
            bool in_then = puts_has(&th, el.puts[j]);
            if ((puts_has(&s, el.puts[j]) && !in_then) || dels_hit(&s, el.puts[j]))
                rc = 1;
            else if (!in_then && add_put(&s, el.puts[j]) < 0)
                rc = -1;
        }
        for (j = 0; j < th.n_dels && !rc; j++)
            if (add_del(&s, th.dels[j]) < 0)
                rc = -1;
        for (j = 0; j < el.n_dels && !rc; j++)
            if (add_del(&s, el.dels[j]) < 0)
                rc = -1;
        set_free(&th);
        set_free(&el);
        if (rc) {
            set_free(&s);
            return rc;
        }
    }
    for (i = 0; i < n; i++)
        if (reqs[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
            struct bin k = BIN(reqs[i]->request_put->key);
            if (puts_has(&s, k) || dels_hit(&s, k)) {
                set_free(&s);
                return 1;
            }
            if (add_put(&s, k) < 0)
                goto nomem;
        }
    *out = s;
    return 0;
nomem:
    set_free(&s);
    return -1;
}

struct node_status node_check_txn(const Etcdserverpb__TxnRequest *r, unsigned max_ops)
{
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    struct node_status st;
    struct set s = {0};
    int rc;

    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op.request_txn = (Etcdserverpb__TxnRequest *)r;
    if ((st = check_op(&op, max_ops)).code)
        return st;
    rc = intervals(r->success, r->n_success, &s);
    set_free(&s);
    if (rc == 0) {
        rc = intervals(r->failure, r->n_failure, &s);
        set_free(&s);
    }
    if (rc > 0)
        return ST_DUPLICATE_KEY;
    if (rc < 0)
        return ST_NO_MEMORY;
    return ST_OK;
}

struct node_status node_check_lease_grant(const Etcdserverpb__LeaseGrantRequest *r)
{
    if (r->ttl > MAX_LEASE_TTL)
        return ST_LEASE_TTL_TOO_LARGE;
    return ST_OK;
}

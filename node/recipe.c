/* recipe — proposals, local reads and waitDeletes for the election and lock services
 * (etcd's clientv3/concurrency recipes, served by the member itself). */
#include "node/recipe.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- proposals ------------------------------------------------------------------------ */

struct prop_ctx {
    recipe_done_fn done;
    void *arg;
};

static void prop_done(struct node *n, struct waiter *w, struct node_status st, kv_result *res)
{
    struct prop_ctx *c = w->arg;
    if (st.code) {
        c->done(n, c->arg, st.code, st.msg, NULL);
    } else if (!res || res->err || !res->msg) {
        kv_status_msg m = kv_etcd_status(res && res->err ? res->err : KV_EIO);
        c->done(n, c->arg, m.grpc_code, m.message, NULL);
    } else {
        c->done(n, c->arg, 0, NULL, res);
    }
    free(c);
}

int recipe_propose(struct node *n, int field, const ProtobufCMessage *req, recipe_done_fn done,
                   void *arg)
{
    size_t len = protobuf_c_message_get_packed_size(req), elen;
    uint8_t *buf = malloc(len + 1), *env;
    struct prop_ctx *c = malloc(sizeof(*c));
    uint64_t id;
    if (!buf || !c) {
        free(buf);
        free(c);
        return -1;
    }
    protobuf_c_message_pack(req, buf);
    id = node_new_request_id(n);
    env = node_envelope(id, field, buf, len, &elen);
    free(buf);
    if (!env) {
        free(c);
        return -1;
    }
    c->done = done;
    c->arg = arg;
    /* no call: the services track their clients themselves (a recipe may outlive one) */
    if (!node_propose(n, id, env, elen, NULL, prop_done, c)) {
        free(c);
        return -1;
    }
    return 0;
}

int recipe_session_grant(struct node *n, recipe_done_fn done, void *arg)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.ttl = 60; /* concurrency.defaultSessionTTL */
    return recipe_propose(n, RECIPE_LEASE_GRANT, &g.base, done, arg);
}

void recipe_stop_all(struct node *n)
{
    struct waiter *w = n->whead, *next;
    for (; w; w = next) {
        next = w->next;
        if (w->done == prop_done)
            node_waiter_finish(n, w, ST_STOPPED, NULL);
    }
}

/* ---- keys and reads ------------------------------------------------------------------- */

size_t recipe_prefix_end(const uint8_t *p, size_t len, uint8_t *out)
{
    size_t i = len;
    while (i > 0) {
        if (p[i - 1] < 0xff) {
            memcpy(out, p, i);
            out[i - 1]++;
            return i;
        }
        i--;
    }
    out[0] = 0;
    return 1;
}

uint8_t *recipe_session_key(const uint8_t *name, size_t len, int64_t lease, size_t *out_len)
{
    char hex[24];
    int hl = snprintf(hex, sizeof hex, "%" PRIx64, (uint64_t)lease);
    uint8_t *k = malloc(len + 1 + (size_t)hl + 1);
    if (!k)
        return NULL;
    if (len)
        memcpy(k, name, len);
    k[len] = '/';
    memcpy(k + len + 1, hex, (size_t)hl);
    *out_len = len + 1 + (size_t)hl;
    return k;
}

int recipe_read_edge(struct node *n, const uint8_t *pfx, size_t len, bool first,
                     int64_t max_create_rev, kv_result *res)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    uint8_t *end = malloc(len + 1);
    int rc;
    if (!end)
        return KV_ENOMEM;
    q.key = (ProtobufCBinaryData){len, (uint8_t *)pfx};
    q.range_end = (ProtobufCBinaryData){recipe_prefix_end(pfx, len, end), end};
    q.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
    q.sort_order = first ? ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND
                         : ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    q.limit = 1;
    q.max_create_revision = max_create_rev;
    rc = kv_range(n->kv, &q, res);
    free(end);
    if (rc == 0 && res->err) {
        rc = res->err;
        kv_result_free(res);
    }
    return rc;
}

/* ---- waitDeletes ---------------------------------------------------------------------- */

struct recipe_wait {
    struct node *n;
    uint8_t *pfx;
    size_t len;
    int64_t max_rev;
    recipe_wait_fn done;
    void *arg;
    kv_watcher *w;
    struct event *ev;    /* runs the next step from the loop, outside the hub */
    bool finished;
};

static void wait_free(struct recipe_wait *rw)
{
    if (rw->w)
        kv_watch_cancel(rw->w);
    if (rw->ev)
        event_free(rw->ev);
    free(rw->pfx);
    free(rw);
}

static int on_delete(const kv_watch_event_batch *b)
{
    struct recipe_wait *rw = b->owner;
    size_t i;
    bool deleted = b->compact_revision != 0; /* compacted: look again from the store */
    for (i = 0; i < b->n_events && !deleted; i++)
        deleted = b->events[i]->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
    if (deleted && rw->w) {
        kv_watch_cancel(rw->w);
        rw->w = NULL;
        event_active(rw->ev, EV_TIMEOUT, 0);
    }
    return KV_WATCH_TAKEN;
}

/* One round of etcd's loop: the newest key older than ours, then a watch for its delete. */
static void wait_step(evutil_socket_t fd, short what, void *arg)
{
    struct recipe_wait *rw = arg;
    struct node *n = rw->n;
    const Etcdserverpb__RangeResponse *rr;
    kv_result res = {0};
    kv_watch_opts o;
    int rc;
    (void)fd;
    (void)what;
    rc = recipe_read_edge(n, rw->pfx, rw->len, false, rw->max_rev, &res);
    if (rc) {
        kv_status_msg m = kv_etcd_status(rc);
        rw->finished = true;
        rw->done(n, rw->arg, m.grpc_code, m.message);
        wait_free(rw);
        return;
    }
    rr = (const Etcdserverpb__RangeResponse *)res.msg;
    if (rr->n_kvs == 0) {
        kv_result_free(&res);
        rw->finished = true;
        rw->done(n, rw->arg, 0, NULL);
        wait_free(rw);
        return;
    }
    memset(&o, 0, sizeof o);
    o.key = rr->kvs[0]->key.data;
    o.key_len = rr->kvs[0]->key.len;
    o.start_revision = rr->header->revision; /* etcd: WithRev(resp.Header.Revision) */
    o.no_put = true;
    o.owner = rw;
    o.fn = on_delete;
    rc = kv_watch_create(n->kv, &o, &rw->w);
    kv_result_free(&res);
    if (rc == KV_ECOMPACTED) { /* the store moved on: read again */
        rw->w = NULL;
        event_active(rw->ev, EV_TIMEOUT, 0);
    } else if (rc) {
        kv_status_msg m = kv_etcd_status(rc);
        rw->w = NULL;
        rw->finished = true;
        rw->done(n, rw->arg, m.grpc_code, m.message);
        wait_free(rw);
    } else {
        node_kick(n);
    }
}

struct recipe_wait *recipe_wait_deletes(struct node *n, const uint8_t *pfx, size_t len,
                                        int64_t max_create_rev, recipe_wait_fn done, void *arg)
{
    struct recipe_wait *rw = calloc(1, sizeof(*rw));
    if (!rw)
        return NULL;
    rw->n = n;
    rw->pfx = malloc(len + 1);
    rw->ev = event_new(n->base, -1, 0, wait_step, rw);
    if (!rw->pfx || !rw->ev) {
        wait_free(rw);
        return NULL;
    }
    memcpy(rw->pfx, pfx, len);
    rw->len = len;
    rw->max_rev = max_create_rev;
    rw->done = done;
    rw->arg = arg;
    event_active(rw->ev, EV_TIMEOUT, 0);
    return rw;
}

void recipe_wait_cancel(struct recipe_wait *rw)
{
    if (rw && !rw->finished)
        wait_free(rw);
}

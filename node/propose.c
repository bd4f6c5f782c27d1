/* propose — clients waiting for their writes: request ids, the waiter table, proposals
 * gathered per turn and proposed in one batch (or forwarded to the leader), forwarded
 * proposals accepted from followers, and refusals. */
#include "node/node_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- request ids and waiters ------------------------------------------------------- */

uint64_t node_new_request_id(struct node *n)
{
    uint64_t low = (n->next_req_id + 1) & 0xffffffffffffULL;
    n->next_req_id = (n->next_req_id & ~0xffffffffffffULL) | low;
    return n->next_req_id;
}

static size_t wbucket(uint64_t id)
{
    return (size_t)((id ^ (id >> 29)) % WAITER_BUCKETS);
}

static struct waiter *waiter_find(struct node *n, uint64_t id)
{
    struct waiter *w;
    for (w = n->wbucket[wbucket(id)]; w; w = w->hnext)
        if (w->id == id)
            return w;
    return NULL;
}

struct waiter *waiter_find_pub(struct node *n, uint64_t id)
{
    return waiter_find(n, id);
}

static void waiter_unlink(struct node *n, struct waiter *w)
{
    struct waiter **pp = &n->wbucket[wbucket(w->id)];
    while (*pp && *pp != w)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = w->hnext;
    if (w->prev)
        w->prev->next = w->next;
    else
        n->whead = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        n->wtail = w->prev;
    n->n_waiters--;
    n->metrics.proposals_pending = n->n_waiters;
}

static void waiter_close_cb(struct net_grpc_call *call, void *user, int err)
{
    struct waiter *w = user;
    (void)call;
    (void)err;
    if (w)
        w->call = NULL;
}

/* Finishes a waiter: runs done, then frees it. */
void node_waiter_finish(struct node *n, struct waiter *w, struct node_status st, kv_result *res)
{
    waiter_unlink(n, w);
    if (st.code)
        n->metrics.proposals_failed++;
    if (w->done)
        w->done(n, w, st, res);
    if (w->call) {
        net_grpc_call_set_close_cb(w->call, NULL);
        net_grpc_call_set_user(w->call, NULL);
    }
    free(w->data);
    free(w);
}

void node_waiter_fail(struct node *n, struct waiter *w, struct node_status st)
{
    node_waiter_finish(n, w, st, NULL);
}

struct waiter *node_waiter_add(struct node *n, uint64_t id, struct net_grpc_call *call,
                               waiter_done_fn done, void *arg)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        if (call)
            node_reply_status(call, ST_NO_MEMORY);
        return NULL;
    }
    w->id = id;
    w->call = call;
    w->done = done;
    w->arg = arg;
    w->deadline_ms = node_now_ms() + 5000 + 2 * (int64_t)n->cfg.election_ms;
    w->hnext = n->wbucket[wbucket(id)];
    n->wbucket[wbucket(id)] = w;
    w->prev = n->wtail;
    if (n->wtail)
        n->wtail->next = w;
    else
        n->whead = w;
    n->wtail = w;
    n->n_waiters++;
    n->metrics.proposals_pending = n->n_waiters;
    if (call) {
        net_grpc_call_set_user(call, w);
        net_grpc_call_set_close_cb(call, waiter_close_cb);
    }
    return w;
}

struct waiter *node_propose(struct node *n, uint64_t id, uint8_t *data, size_t len,
                            struct net_grpc_call *call, waiter_done_fn done, void *arg)
{
    struct waiter *w = node_waiter_add(n, id, call, done, arg);
    if (!w) {
        free(data);
        return NULL;
    }
    w->data = data;
    w->len = len;
    if (n->n_props == n->cap_props) {
        size_t c = n->cap_props ? 2 * n->cap_props : 64;
        struct waiter **p = realloc(n->props, c * sizeof(*p));
        if (!p) {
            node_waiter_finish(n, w, ST_NO_MEMORY, NULL);
            return NULL;
        }
        n->props = p;
        n->cap_props = c;
    }
    n->props[n->n_props++] = w;
    w->queued = true;
    node_kick(n);
    return w;
}

/* A forwarded proposal came back refused: propose it again if a leader is known, or
 * fail it. */
static void requeue(struct node *n, struct waiter *w)
{
    w->retry_after_ms = 0;
    if (n->n_props < n->cap_props) {
        n->props[n->n_props++] = w;
        w->queued = true;
    } else {
        node_waiter_finish(n, w, ST_LEADER_CHANGED, NULL);
    }
}

void node_forward_refused(struct node *n, uint64_t from, const uint64_t *ids, size_t count,
                          int reason)
{
    size_t i;
    for (i = 0; i < count; i++) {
        struct waiter *w = waiter_find(n, ids[i]);
        if (!w || w->queued)
            continue;
        w->fwd_to = 0;
        if (reason == 3) {
            node_waiter_finish(n, w, ST_LEARNER_NOT_READY, NULL);
        } else if (reason == 4) {
            node_waiter_finish(n, w, ST_MEMBER_NOT_FOUND, NULL);
        } else if (reason == 5) {
            node_waiter_finish(n, w, ST_MEMBER_EXIST, NULL);
        } else if (!w->data) { /* a membership change: the client decides to retry */
            node_waiter_finish(n, w, reason == 2 ? ST_UNHEALTHY : ST_LEADER_CHANGED, NULL);
        } else if (++w->tries > 5) {
            node_waiter_finish(n, w, ST_LEADER_CHANGED, NULL);
        } else if (raft_leader(n->raft) == from) {
            /* we still take it for the leader: try again once we have heard more */
            w->retry_after_ms = node_now_ms() + (int64_t)n->cfg.heartbeat_ms;
        } else {
            requeue(n, w);
        }
    }
    node_kick(n);
}

/* Refused writes wait here for a fresher view of the leader (called from the tick). */
void node_retry_refused(struct node *n, int64_t now)
{
    struct waiter *w, *next;
    for (w = n->whead; w; w = next) {
        next = w->next;
        if (w->retry_after_ms && now >= w->retry_after_ms && !w->queued)
            requeue(n, w);
    }
}

/* Hands forwarded proposals that were not proposed back to their senders, which send
 * them to the leader they know next. */
static void refuse_forwarded(struct node *n)
{
    uint64_t *ids = malloc((n->n_fwd ? n->n_fwd : 1) * sizeof(*ids));
    size_t i, j, k;
    for (i = 0; ids && i < n->n_fwd; i++) {
        uint64_t from = n->fwd_from[i];
        if (from == 0)
            continue;
        for (k = 0, j = i; j < n->n_fwd; j++)
            if (n->fwd_from[j] == from) {
                ids[k++] = n->fwd_id[j];
                n->fwd_from[j] = 0;
            }
        node_forward_refuse(n, from, ids, k, 1);
    }
    free(ids);
    for (i = 0; i < n->n_fwd; i++)
        free((void *)n->fwd[i].base);
    n->n_fwd = 0;
}

/* Sends or proposes the waiters gathered since the last turn, and the proposals that
 * followers forwarded to us. */
void node_flush_proposals(struct node *n)
{
    struct raft_buf *bufs;
    size_t i, k = 0, total;
    raft_index_t first = 0;
    int rc;

    if (n->n_props == 0 && n->n_fwd == 0)
        return;
    if (!node_is_leader(n)) {
        if (n->n_fwd) /* we lost leadership since they arrived */
            refuse_forwarded(n);
        if (node_leader_pending(n))
            return; /* kept for the next turn (the tick retries) */
        if (raft_leader(n->raft) == RAFT_NONE) {
            for (i = 0; i < n->n_props; i++) {
                n->props[i]->queued = false;
                node_waiter_finish(n, n->props[i], ST_NO_LEADER, NULL);
            }
        } else {
            for (i = 0; i < n->n_props; i++)
                n->props[i]->queued = false;
            node_forward(n, n->props, n->n_props);
            n->metrics.entries_forwarded += n->n_props;
        }
        n->n_props = 0;
        return;
    }
    total = n->n_props + n->n_fwd;
    bufs = malloc(total * sizeof(*bufs));
    if (!bufs)
        return; /* retry next turn */
    for (i = 0; i < n->n_props; i++) {
        bufs[k].base = n->props[i]->data;
        bufs[k++].len = n->props[i]->len;
    }
    for (i = 0; i < n->n_fwd; i++)
        bufs[k++] = n->fwd[i];
    rc = raft_propose(n->raft, bufs, total, &first);
    free(bufs);
    if (rc == 0)
        n->metrics.entries_proposed += total;
    if (rc == RAFT_EBUSY || rc == RAFT_ENOTLEADER) {
        /* a transfer in progress, or we just stepped down: none of them is in the log,
         * so they wait for the next turn (proposed, or forwarded to the new leader) */
        if (rc == RAFT_ENOTLEADER && n->n_fwd)
            refuse_forwarded(n);
        return;
    }
    if (rc != 0) {
        refuse_forwarded(n);
    } else {
        for (i = 0; i < n->n_fwd; i++)
            free((void *)n->fwd[i].base);
        n->n_fwd = 0;
    }
    for (i = 0; i < n->n_props; i++) {
        struct waiter *w = n->props[i];
        w->queued = false;
        if (rc == 0) {
            w->index = first + i;
            w->term = raft_term(n->raft);
        } else {
            node_waiter_finish(n, w, ST_NO_MEMORY, NULL);
        }
    }
    n->n_props = 0;
}

/* Proposals forwarded by a follower (data copied). */
void node_accept_forward(struct node *n, uint64_t from, const ProtobufCBinaryData *data,
                         const uint64_t *ids, size_t count)
{
    size_t i;
    if (!node_is_leader(n)) {
        node_forward_refuse(n, from, ids, count, 1);
        return;
    }
    for (i = 0; i < count; i++) {
        void *copy;
        if (n->n_fwd == n->cap_fwd) {
            size_t c = n->cap_fwd ? 2 * n->cap_fwd : 64;
            struct raft_buf *p = realloc(n->fwd, c * sizeof(*p));
            uint64_t *f, *d;
            if (!p)
                break;
            n->fwd = p;
            f = realloc(n->fwd_from, c * sizeof(*f));
            if (!f)
                break;
            n->fwd_from = f;
            d = realloc(n->fwd_id, c * sizeof(*d));
            if (!d)
                break;
            n->fwd_id = d;
            n->cap_fwd = c;
        }
        copy = malloc(data[i].len ? data[i].len : 1);
        if (!copy)
            break;
        if (data[i].len)
            memcpy(copy, data[i].data, data[i].len);
        n->fwd[n->n_fwd].base = copy;
        n->fwd[n->n_fwd].len = data[i].len;
        n->fwd_from[n->n_fwd] = from;
        n->fwd_id[n->n_fwd++] = ids[i];
    }
    node_kick(n);
}

/* Answers every waiting write with st (the member stops). */
void node_fail_all_waiters(struct node *n, struct node_status st)
{
    struct waiter *w, *next;
    for (w = n->whead; w; w = next) {
        next = w->next;
        if (!w->queued)
            node_waiter_finish(n, w, st, NULL);
    }
}

/* svc_watch — etcd's Watch service: one bidi stream carries many watchers (create, cancel,
 * progress requests, fragments of large revisions); events come from kv/'s watch hub. A client that does not read makes
 * the call's queue fill up: its watchers then fall behind in the hub (which keeps nothing
 * for them) and catch up from the store once the queue drains, so memory stays bounded. */
#include "node/node_int.h"

#include <stdlib.h>
#include <string.h>

#include "node/log.h"

struct frag { /* a packed fragment not yet accepted by the call */
    uint8_t *buf;
    size_t len;
};

struct wentry {
    int64_t id;
    kv_watcher *w;
    bool busy;       /* the hub was told BUSY; resume when the call drains */
    bool fragment;   /* the client asked for large revisions in fragments */
    struct frag *frags; /* the rest of a fragmented response, sent as the call drains */
    size_t n_frags, next_frag;
};

struct watch_stream {
    struct node *n;
    struct net_grpc_call *call;
    struct wentry *ws;
    size_t n_ws, cap_ws;
    int64_t next_id;
    bool require_leader;
    bool progress_pending;
    struct watch_stream *prev, *next;
};

static void send_simple(struct watch_stream *s, int64_t id, bool created, bool canceled,
                        int64_t compact_rev, const char *reason)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    node_fill_header(s->n, &h, 0);
    r.header = &h;
    r.watch_id = id;
    r.created = created;
    r.canceled = canceled;
    r.compact_revision = compact_rev;
    r.cancel_reason = (char *)(reason ? reason : "");
    net_grpc_call_send_msg(s->call, &r.base);
}

static struct wentry *find_entry(struct watch_stream *s, int64_t id)
{
    size_t i;
    for (i = 0; i < s->n_ws; i++)
        if (s->ws[i].id == id)
            return &s->ws[i];
    return NULL;
}

static void frags_free(struct wentry *e)
{
    size_t i;
    for (i = e->next_frag; i < e->n_frags; i++)
        free(e->frags[i].buf);
    free(e->frags);
    e->frags = NULL;
    e->n_frags = e->next_frag = 0;
}

static void drop_entry(struct watch_stream *s, struct wentry *e)
{
    frags_free(e);
    *e = s->ws[--s->n_ws];
}

/* ---- fragments (etcd's sendFragments, v3rpc/watch.go) -------------------------------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Queues what is left of e's fragments; returns true when all are with the call. */
static bool frags_flush(struct watch_stream *s, struct wentry *e)
{
    while (e->next_frag < e->n_frags) {
        struct frag *f = &e->frags[e->next_frag];
        int rc = net_grpc_call_send(s->call, f->buf, f->len);
        if (rc == NET_EFULL)
            return false;
        free(f->buf);
        f->buf = NULL;
        e->next_frag++;
        if (rc) /* the call is gone: drop the rest */
            break;
    }
    frags_free(e);
    return true;
}

/* Splits r (its events are all of one delivery) as etcd does: each piece takes events
 * while it stays under limit bytes (at least one event), every piece but the last has
 * fragment set. The pieces are packed into e->frags. Returns 0 or NET_ENOMEM. */
static int frags_build(struct wentry *e, Etcdserverpb__WatchResponse *r, size_t limit)
{
    Mvccpb__Event **evs = r->events;
    size_t n_evs = r->n_events, i = 0, base, cap = 4;
    int rc = 0;
    r->n_events = 0;
    r->events = NULL;
    r->fragment = true;
    base = protobuf_c_message_get_packed_size(&r->base);
    e->frags = calloc(cap, sizeof(*e->frags));
    if (!e->frags)
        return NET_ENOMEM;
    while (i < n_evs) {
        size_t start = i, size = base;
        uint8_t *buf;
        while (i < n_evs) {
            size_t el = protobuf_c_message_get_packed_size(&evs[i]->base);
            size += 1 + varint_len(el) + el; /* field 11, length-delimited */
            if (i > start && size >= limit)
                break;
            i++;
        }
        r->events = evs + start;
        r->n_events = i - start;
        r->fragment = i < n_evs;
        if (e->n_frags == cap) {
            struct frag *nf = realloc(e->frags, 2 * cap * sizeof(*nf));
            if (!nf) {
                rc = NET_ENOMEM;
                break;
            }
            e->frags = nf;
            cap *= 2;
        }
        buf = malloc(protobuf_c_message_get_packed_size(&r->base) + 1);
        if (!buf) {
            rc = NET_ENOMEM;
            break;
        }
        e->frags[e->n_frags].len = protobuf_c_message_pack(&r->base, buf);
        e->frags[e->n_frags++].buf = buf;
    }
    if (rc)
        frags_free(e);
    e->next_frag = 0;
    return rc;
}

/* Delivery from the hub (runs inside kv_watch_notify). */
static int on_events(const kv_watch_event_batch *b)
{
    struct watch_stream *s = b->owner;
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct wentry *e = find_entry(s, b->watch_id);
    int rc;

    if (!e || !s->call)
        return KV_WATCH_TAKEN;
    if (e->n_frags) { /* the previous response is still going out */
        e->busy = true;
        return KV_WATCH_BUSY;
    }
    node_fill_header(s->n, &h, b->revision);
    r.header = &h;
    r.watch_id = b->watch_id;
    if (b->compact_revision) {
        r.canceled = true;
        r.compact_revision = b->compact_revision;
        r.cancel_reason = "etcdserver: mvcc: required revision has been compacted";
    } else {
        r.n_events = b->n_events;
        r.events = b->events;
    }
    if (e->fragment && r.n_events > 1) {
        size_t limit = s->n->cfg.max_request_bytes + 512 * 1024; /* etcd's grpcOverheadBytes */
        if (protobuf_c_message_get_packed_size(&r.base) >= limit) {
            /* the pieces the call does not take now go out from on_writable; the
             * watcher gets nothing more until they are all sent */
            if (frags_build(e, &r, limit) != 0) {
                e->busy = true;
                return KV_WATCH_BUSY; /* out of memory: the hub retries from the store */
            }
            frags_flush(s, e);
            return KV_WATCH_TAKEN;
        }
    }
    rc = net_grpc_call_send_msg(s->call, &r.base);
    if (rc == NET_EFULL) {
        e->busy = true;
        return KV_WATCH_BUSY;
    }
    if (b->compact_revision) {
        kv_watch_cancel(e->w);
        drop_entry(s, e);
    }
    return KV_WATCH_TAKEN;
}

static void on_writable(struct net_grpc_call *call, void *user)
{
    struct watch_stream *s = user;
    size_t i;
    bool any = false;
    (void)call;
    for (i = 0; i < s->n_ws; i++) {
        if (s->ws[i].n_frags && !frags_flush(s, &s->ws[i]))
            continue; /* full again: this callback runs once more when it drains */
        if (s->ws[i].busy) {
            s->ws[i].busy = false;
            kv_watch_resume(s->ws[i].w);
            any = true;
        }
    }
    if (any)
        node_kick(s->n);
}

static void stream_free(struct watch_stream *s)
{
    struct node *n = s->n;
    size_t i;
    for (i = 0; i < s->n_ws; i++) {
        kv_watch_cancel(s->ws[i].w);
        frags_free(&s->ws[i]);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        n->wstreams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    n->n_watch_streams--;
    free(s->ws);
    free(s);
}

static void on_close(struct net_grpc_call *call, void *user, int err)
{
    (void)call;
    (void)err;
    if (user)
        stream_free(user);
}

static void on_half_close(struct net_grpc_call *call, void *user)
{
    (void)user;
    net_grpc_call_finish(call, GRPC_OK, NULL);
}

static bool all_synced(struct watch_stream *s)
{
    size_t i;
    for (i = 0; i < s->n_ws; i++)
        if (!kv_watch_synced(s->ws[i].w))
            return false;
    return true;
}

static void watch_create(struct watch_stream *s, const Etcdserverpb__WatchCreateRequest *c)
{
    struct node *n = s->n;
    kv_watch_opts o;
    kv_watcher *w = NULL;
    int64_t id = c->watch_id;
    size_t i;
    int rc;
    static const uint8_t zero = 0;

    if (id != 0 && find_entry(s, id)) {
        send_simple(s, -1, true, true, 0, "mvcc: duplicate watch ID provided on the WatchStream");
        return;
    }
    if (id == 0) {
        while (find_entry(s, s->next_id))
            s->next_id++;
        id = s->next_id++;
    }
    memset(&o, 0, sizeof o);
    o.key = c->key.len ? c->key.data : &zero; /* an empty key means "\0", the smallest key */
    o.key_len = c->key.len ? c->key.len : 1;
    o.range_end = c->range_end.data;
    o.range_end_len = c->range_end.len;
    o.start_revision = c->start_revision;
    for (i = 0; i < c->n_filters; i++) {
        if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT)
            o.no_put = true;
        else if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
            o.no_delete = true;
    }
    o.prev_kv = c->prev_kv;
    o.progress_notify = c->progress_notify;
    o.watch_id = id;
    o.owner = s;
    o.fn = on_events;
    rc = kv_watch_create(n->kv, &o, &w);
    if (rc == KV_ECOMPACTED) {
        /* etcd creates the watcher, then cancels it with the compacted revision */
        send_simple(s, id, true, false, 0, NULL);
        send_simple(s, id, false, true, kv_compact_revision(n->kv),
                    "etcdserver: mvcc: required revision has been compacted");
        return;
    }
    if (rc) {
        send_simple(s, -1, true, true, 0, kv_etcd_status(rc).message);
        return;
    }
    if (s->n_ws == s->cap_ws) {
        size_t cap = s->cap_ws ? 2 * s->cap_ws : 8;
        struct wentry *p = realloc(s->ws, cap * sizeof(*p));
        if (!p) {
            kv_watch_cancel(w);
            send_simple(s, -1, true, true, 0, "etcdserver: out of memory");
            return;
        }
        s->ws = p;
        s->cap_ws = cap;
    }
    memset(&s->ws[s->n_ws], 0, sizeof(s->ws[s->n_ws]));
    s->ws[s->n_ws].id = id;
    s->ws[s->n_ws].w = w;
    s->ws[s->n_ws].fragment = c->fragment;
    s->n_ws++;
    send_simple(s, id, true, false, 0, NULL);
    node_kick(n);
}

static void watch_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    struct watch_stream *s = net_grpc_call_user(call);
    Etcdserverpb__WatchRequest *req;

    if (!s) {
        const char *hl = net_grpc_call_header(call, "hasleader");
        s = calloc(1, sizeof(*s));
        if (!s) {
            node_reply_status(call, ST_NO_MEMORY);
            return;
        }
        s->n = n;
        s->call = call;
        s->require_leader = hl && !strcmp(hl, "true");
        if (s->require_leader && raft_leader(n->raft) == RAFT_NONE && !node_leader_pending(n)) {
            free(s);
            node_reply_status(call, ST_NO_LEADER);
            return;
        }
        s->next = n->wstreams;
        if (n->wstreams)
            n->wstreams->prev = s;
        n->wstreams = s;
        n->n_watch_streams++;
        net_grpc_call_set_user(call, s);
        net_grpc_call_set_close_cb(call, on_close);
        net_grpc_call_set_writable_cb(call, on_writable);
        net_grpc_call_set_half_close_cb(call, on_half_close);
    }
    req = node_unpack(call, &etcdserverpb__watch_request__descriptor, msg, len);
    if (!req)
        return;
    switch (req->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        watch_create(s, req->create_request);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST: {
        struct wentry *e = find_entry(s, req->cancel_request->watch_id);
        if (e) {
            int64_t id = e->id;
            kv_watch_cancel(e->w);
            drop_entry(s, e);
            send_simple(s, id, false, true, 0, NULL);
        }
        break;
    }
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        if (all_synced(s))
            send_simple(s, -1, false, false, 0, NULL);
        else
            s->progress_pending = true;
        break;
    default:
        break;
    }
    etcdserverpb__watch_request__free_unpacked(req, NULL);
}

void node_watch_tick(struct node *n, int64_t now)
{
    struct watch_stream *s, *next;
    bool leaderless = raft_leader(n->raft) == RAFT_NONE &&
                      now - n->no_leader_since_ms > 3 * (int64_t)n->cfg.election_ms;
    for (s = n->wstreams; s; s = next) {
        next = s->next;
        if (s->progress_pending && all_synced(s)) {
            s->progress_pending = false;
            send_simple(s, -1, false, false, 0, NULL);
        }
        if (leaderless && s->require_leader)
            node_reply_status(s->call, ST_NO_LEADER); /* the close callback frees s */
    }
}

void node_watch_free_all(struct node *n)
{
    while (n->wstreams) {
        struct watch_stream *s = n->wstreams;
        net_grpc_call_set_close_cb(s->call, NULL);
        net_grpc_call_set_user(s->call, NULL);
        stream_free(s);
    }
}

int svc_watch_register(struct node *n)
{
    return net_grpc_server_register(n->grpc, "/etcdserverpb.Watch/Watch", NET_GRPC_BIDI, watch_h, n);
}

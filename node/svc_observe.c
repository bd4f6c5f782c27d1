/* svc_observe — etcd's Election/Observe: streams the election's leader (the key under
 * <name>/ with the lowest create revision) and every change of its value, then the next
 * leader once that key is deleted, as concurrency.Election.Observe does. */
#include "node/recipe.h"

#include <stdlib.h>
#include <string.h>

#include "v3election.pb-c.h"

struct observe {
    struct node *n;
    struct net_grpc_call *call;
    uint8_t *pfx;
    size_t plen;
    kv_watcher *w;
    bool on_key;          /* watching the leader's key (else the prefix, for a first put) */
    uint8_t *key;         /* the leader's key, to watch from key_rev */
    size_t klen;
    int64_t key_rev;
    int64_t last_rev;     /* mod revision of the last value sent (a redelivery skips it) */
    bool busy;
    struct event *ev;     /* the next step, run from the loop outside the hub */
};

static void obs_free(struct observe *o)
{
    if (o->w)
        kv_watch_cancel(o->w);
    if (o->ev)
        event_free(o->ev);
    free(o->pfx);
    free(o->key);
    free(o);
}

static void obs_close(struct net_grpc_call *call, void *user, int err)
{
    (void)call;
    (void)err;
    if (user)
        obs_free(user);
}

static void obs_end(struct observe *o, int code, const char *msg)
{
    net_grpc_call_set_close_cb(o->call, NULL);
    net_grpc_call_set_user(o->call, NULL);
    net_grpc_call_finish(o->call, code, msg);
    obs_free(o);
}

static int obs_send(struct observe *o, int64_t rev, Mvccpb__KeyValue *kv)
{
    V3electionpb__LeaderResponse r = V3ELECTIONPB__LEADER_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    node_fill_header(o->n, &h, rev);
    r.header = &h;
    r.kv = kv;
    return net_grpc_call_send_msg(o->call, &r.base);
}

static void obs_later(struct observe *o)
{
    if (o->w) {
        kv_watch_cancel(o->w);
        o->w = NULL;
    }
    event_active(o->ev, EV_TIMEOUT, 0);
}

static int on_obs(const kv_watch_event_batch *b)
{
    struct observe *o = b->owner;
    size_t i;
    if (b->compact_revision) { /* read the leader again from the store */
        free(o->key);
        o->key = NULL;
        obs_later(o);
        return KV_WATCH_TAKEN;
    }
    for (i = 0; i < b->n_events; i++) {
        Mvccpb__Event *ev = b->events[i];
        if (ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE) {
            if (o->on_key) { /* the leader is gone: the next one */
                free(o->key);
                o->key = NULL;
                obs_later(o);
                return KV_WATCH_TAKEN;
            }
            continue;
        }
        if (!ev->kv || ev->kv->mod_revision <= o->last_rev)
            continue;
        /* etcd sends a first leader with the header revision set to its mod revision */
        if (obs_send(o, o->on_key ? b->revision : ev->kv->mod_revision, ev->kv) == NET_EFULL) {
            o->busy = true;
            return KV_WATCH_BUSY;
        }
        o->last_rev = ev->kv->mod_revision;
        if (!o->on_key) {
            free(o->key);
            o->key = malloc(ev->kv->key.len + 1);
            if (o->key)
                memcpy(o->key, ev->kv->key.data, ev->kv->key.len);
            o->klen = ev->kv->key.len;
            o->key_rev = ev->kv->mod_revision + 1;
            obs_later(o);
            return KV_WATCH_TAKEN;
        }
    }
    return KV_WATCH_TAKEN;
}

static void obs_watch(struct observe *o, const uint8_t *key, size_t klen, bool prefix, int64_t rev)
{
    kv_watch_opts wo;
    uint8_t *end = NULL;
    int rc;
    memset(&wo, 0, sizeof wo);
    wo.key = key;
    wo.key_len = klen;
    if (prefix) {
        end = malloc(klen + 1);
        if (!end) {
            obs_end(o, GRPC_RESOURCE_EXHAUSTED, ST_NO_MEMORY.msg);
            return;
        }
        wo.range_end = end;
        wo.range_end_len = recipe_prefix_end(key, klen, end);
    }
    wo.start_revision = rev;
    wo.owner = o;
    wo.fn = on_obs;
    o->on_key = !prefix;
    rc = kv_watch_create(o->n->kv, &wo, &o->w);
    free(end);
    if (rc == KV_ECOMPACTED) {
        o->w = NULL;
        free(o->key);
        o->key = NULL;
        obs_later(o);
    } else if (rc) {
        kv_status_msg m = kv_etcd_status(rc);
        o->w = NULL;
        obs_end(o, m.grpc_code, m.message);
    } else {
        node_kick(o->n);
    }
}

/* The leader now, or a watch for the first candidate (etcd's observe loop). */
static void obs_step(evutil_socket_t fd, short what, void *arg)
{
    struct observe *o = arg;
    const Etcdserverpb__RangeResponse *rr;
    kv_result res = {0};
    int rc;
    (void)fd;
    (void)what;
    if (o->key) { /* a first leader was sent from the prefix watch: follow its key */
        obs_watch(o, o->key, o->klen, false, o->key_rev);
        return;
    }
    if ((rc = recipe_read_edge(o->n, o->pfx, o->plen, true, 0, &res)) != 0) {
        kv_status_msg m = kv_etcd_status(rc);
        obs_end(o, m.grpc_code, m.message);
        return;
    }
    rr = (const Etcdserverpb__RangeResponse *)res.msg;
    if (rr->n_kvs == 0) {
        obs_watch(o, o->pfx, o->plen, true, rr->header->revision);
    } else {
        Mvccpb__KeyValue *kv = rr->kvs[0];
        obs_send(o, rr->header->revision, kv); /* a message always fits an empty queue */
        o->last_rev = kv->mod_revision;
        obs_watch(o, kv->key.data, kv->key.len, false, rr->header->revision + 1);
    }
    kv_result_free(&res);
}

static void obs_writable(struct net_grpc_call *call, void *user)
{
    struct observe *o = user;
    (void)call;
    if (o && o->busy && o->w) {
        o->busy = false;
        kv_watch_resume(o->w);
        node_kick(o->n);
    }
}

/* The first read is linearizable; the stream then follows the store. */
static void obs_start(struct node *n, struct read_req *r, struct node_status st)
{
    struct observe *o = r->arg;
    (void)n;
    if (!r->call) {
        obs_free(o);
        return;
    }
    o->call = r->call;
    if (st.code) {
        node_reply_status(r->call, st);
        obs_free(o);
        return;
    }
    net_grpc_call_set_user(o->call, o);
    net_grpc_call_set_close_cb(o->call, obs_close);
    net_grpc_call_set_writable_cb(o->call, obs_writable);
    obs_step(-1, 0, o);
}

static void observe_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    V3electionpb__LeaderRequest *req;
    struct observe *o;
    struct node_status st;
    if (net_grpc_call_user(call))
        return; /* one request per call */
    req = node_unpack(call, &v3electionpb__leader_request__descriptor, msg, len);
    if (!req)
        return;
    if ((st = node_can_serve(n, false)).code) {
        node_reply_status(call, st);
        v3electionpb__leader_request__free_unpacked(req, NULL);
        return;
    }
    o = calloc(1, sizeof(*o));
    if (o) {
        o->n = n;
        o->pfx = malloc(req->name.len + 1);
        o->ev = event_new(n->base, -1, 0, obs_step, o);
    }
    if (!o || !o->pfx || !o->ev) {
        if (o)
            obs_free(o);
        node_reply_status(call, ST_NO_MEMORY);
        v3electionpb__leader_request__free_unpacked(req, NULL);
        return;
    }
    if (req->name.len)
        memcpy(o->pfx, req->name.data, req->name.len);
    o->pfx[req->name.len] = '/';
    o->plen = req->name.len + 1;
    v3electionpb__leader_request__free_unpacked(req, NULL);
    node_read(n, call, obs_start, o);
}

int svc_observe_register(struct node *n)
{
    return net_grpc_server_register(n->grpc, "/v3electionpb.Election/Observe",
                                    NET_GRPC_SERVER_STREAM, observe_h, n);
}

/* watch — event latency from a put's acknowledgement to its delivery, fanned out to
 * --watchers watchers of one key spread over --conns watch streams, while --clients
 * writers put that key --total times (or for --duration). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "net/tls.h"

/* One slot per put revision: when it was acknowledged, and deliveries seen before that. */
struct slot {
    int64_t rev;
    double ack;
    long early;
};

struct wstate {
    const struct bench_opts *o;
    struct event_base *base;
    struct event *tick;
    struct slot *slots;
    size_t nslots;             /* power of two */
    long created, canceled, events, puts_issued, puts_acked, put_errors;
    long expected_events;      /* puts_acked * watchers */
    double start, put_start, end_at, last_ack, drain_until;
    int phase;                 /* 0 creating watchers, 1 writing, 2 draining */
    int writers_active;
    struct bench_lat lat, put_lat;
    char first_error[NET_GRPC_MSGLEN + 32];
    uint8_t key[512];
    size_t key_len;
    uint8_t *val;
    struct net_grpc_client *wc;
};

struct writer {
    struct wstate *w;
    double sent;
};

static struct slot *slot_of(struct wstate *w, int64_t rev)
{
    struct slot *s = &w->slots[(size_t)rev & (w->nslots - 1)];
    if (s->rev != rev) {
        s->rev = rev;
        s->ack = 0;
        s->early = 0;
    }
    return s;
}

static void note_error(struct wstate *w, const char *what, const struct net_grpc_status *st)
{
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s: %s: %s", what,
                 net_grpc_code_name(st->code), st->message);
}

static void on_watch_msg(void *ud, struct net_grpc_stream *s, const uint8_t *msg, size_t len)
{
    (void)s;
    struct wstate *w = ud;
    double t = now_us();
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!r)
        return;
    if (r->created)
        w->created++;
    if (r->canceled) {
        w->canceled++;
        if (!w->first_error[0])
            snprintf(w->first_error, sizeof w->first_error, "watch canceled: %s",
                     r->cancel_reason ? r->cancel_reason : "");
    }
    for (size_t i = 0; i < r->n_events; i++) {
        Mvccpb__Event *e = r->events[i];
        if (!e->kv)
            continue;
        w->events++;
        struct slot *sl = slot_of(w, e->kv->mod_revision);
        if (sl->ack > 0)
            lat_add(&w->lat, t - sl->ack);
        else
            sl->early++; /* delivered before the writer saw its ack: latency 0 */
    }
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    if (w->phase == 0 && w->created >= w->o->watchers)
        event_base_loopbreak(w->base);
    if (w->phase == 2 && w->events >= w->expected_events)
        event_base_loopbreak(w->base);
}

static void on_watch_close(void *ud, struct net_grpc_stream *s, const struct net_grpc_status *st)
{
    (void)s;
    struct wstate *w = ud;
    if (st->code != NET_GRPC_OK && st->code != NET_GRPC_CANCELLED)
        note_error(w, "watch stream", st);
}

static void put_next(struct writer *wr);

static void on_put(void *ud, const struct net_grpc_status *st, const uint8_t *resp, size_t len)
{
    struct writer *wr = ud;
    struct wstate *w = wr->w;
    double t = now_us();
    if (st->code != NET_GRPC_OK) {
        w->put_errors++;
        note_error(w, "put", st);
    } else {
        Etcdserverpb__PutResponse *r = etcdserverpb__put_response__unpack(NULL, len, resp);
        if (r && r->header) {
            struct slot *sl = slot_of(w, r->header->revision);
            sl->ack = t;
            for (long i = 0; i < sl->early; i++)
                lat_add(&w->lat, 0);
            sl->early = 0;
            w->puts_acked++;
            w->expected_events += w->o->watchers;
            lat_add(&w->put_lat, t - wr->sent);
            w->last_ack = t;
        }
        if (r)
            etcdserverpb__put_response__free_unpacked(r, NULL);
    }
    put_next(wr);
}

static void put_next(struct writer *wr)
{
    struct wstate *w = wr->w;
    const struct bench_opts *o = w->o;
    int go = w->phase == 1 && now_us() < w->end_at && (o->total == 0 || w->puts_issued < o->total);
    if (go) {
        Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){ w->key_len, w->key };
        req.value = (ProtobufCBinaryData){ (size_t)o->val_size, w->val };
        uint8_t buf[1024];
        size_t need = etcdserverpb__put_request__get_packed_size(&req);
        uint8_t *p = need <= sizeof buf ? buf : malloc(need);
        if (p) {
            size_t len = etcdserverpb__put_request__pack(&req, p);
            wr->sent = now_us();
            w->puts_issued++;
            int rc = net_grpc_unary_async(w->wc, "/etcdserverpb.KV/Put", p, len, o->timeout_ms,
                                          on_put, wr);
            if (p != buf)
                free(p);
            if (rc == 0)
                return;
        }
        w->put_errors++;
    }
    if (--w->writers_active == 0) {
        /* all writes answered: wait up to 5 s for the last deliveries */
        w->phase = 2;
        w->drain_until = now_us() + 5e6;
        if (w->events >= w->expected_events)
            event_base_loopbreak(w->base);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wstate *w = arg;
    double t = now_us();
    if (w->phase == 0 && t > w->start + 60e6)
        event_base_loopbreak(w->base);
    if (w->phase == 2 && t > w->drain_until)
        event_base_loopbreak(w->base);
    if (t > w->start + w->o->max_time * 1e6 + w->o->timeout_ms * 1000.0)
        event_base_loopbreak(w->base);
    if (w->phase == 1)
        progress(w->o, "watch (puts)", w->puts_acked, w->put_errors, w->put_start);
}

int run_watch(const struct bench_opts *o)
{
    struct wstate w = { .o = o };
    int rc = 1, s = o->conns;
    struct net_grpc_client **cs = calloc((size_t)s + 1, sizeof *cs);
    struct net_grpc_stream **ss = calloc((size_t)s, sizeof *ss);
    struct writer *wrs = calloc((size_t)o->clients, sizeof *wrs);
    SSL_CTX *ctx = NULL;
    w.nslots = 1 << 16;
    w.slots = calloc(w.nslots, sizeof *w.slots);
    w.val = malloc((size_t)o->val_size + 1);
    w.base = event_base_new();
    if (!cs || !ss || !wrs || !w.slots || !w.val || !w.base) {
        fprintf(stderr, "plinth-bench: out of memory\n");
        goto out;
    }
    memset(w.val, 'v', (size_t)o->val_size);
    w.key_len = (size_t)snprintf((char *)w.key, sizeof w.key, "%swatched", o->prefix);
    if (make_clients(o, o->endpoints, w.base, cs, s + 1, &ctx) != 0)
        goto out;
    w.wc = cs[s];
    w.start = now_us();
    w.tick = event_new(w.base, -1, EV_PERSIST, on_tick, &w);
    struct timeval tv = { 0, 100000 };
    event_add(w.tick, &tv);

    /* phase 0: watchers, spread evenly over the streams */
    static const char *const md[] = { "hasleader", "true", NULL };
    for (int i = 0; i < s; i++) {
        struct net_grpc_stream_opts so = { .on_msg = on_watch_msg, .on_close = on_watch_close,
                                           .ud = &w, .metadata = md };
        if (net_grpc_stream_open(cs[i], "/etcdserverpb.Watch/Watch", &so, &ss[i]) != 0) {
            fprintf(stderr, "plinth-bench: watch: cannot open a stream\n");
            goto out;
        }
        int count = o->watchers / s + (i < o->watchers % s);
        for (int k = 0; k < count; k++) {
            Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
            cr.key = (ProtobufCBinaryData){ w.key_len, w.key };
            Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
            req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
            req.create_request = &cr;
            net_grpc_stream_send_msg(ss[i], &req.base);
        }
    }
    event_base_dispatch(w.base);
    if (w.created < o->watchers) {
        fprintf(stderr, "plinth-bench: watch: only %ld of %d watchers were created%s%s\n",
                w.created, o->watchers, w.first_error[0] ? ": " : "", w.first_error);
        goto out;
    }
    double created_s = (now_us() - w.start) / 1e6;

    /* phase 1: writers; phase 2: drain */
    w.phase = 1;
    w.put_start = now_us();
    w.end_at = w.put_start + o->duration * 1e6;
    w.writers_active = o->clients;
    for (int i = 0; i < o->clients; i++) {
        wrs[i].w = &w;
        put_next(&wrs[i]);
    }
    if (w.phase != 2 || w.events < w.expected_events)
        event_base_dispatch(w.base);
    progress_end(o);
    double put_s = ((w.last_ack > 0 ? w.last_ack : now_us()) - w.put_start) / 1e6;
    long missing = w.expected_events - w.events;
    char extra[512], text[512];
    snprintf(extra, sizeof extra,
             "\"watchers\":%d,\"watchers_created_s\":%.3f,\"puts\":%ld,\"put_errors\":%ld,"
             "\"put_ops_per_sec\":%.1f,\"put_p99_ms\":%.3f,\"events_missing\":%ld",
             o->watchers, created_s, w.puts_acked, w.put_errors,
             put_s > 0 ? w.puts_acked / put_s : 0, lat_pct_ms(&w.put_lat, 0.99),
             missing > 0 ? missing : 0);
    snprintf(text, sizeof text,
             "%d watchers (created in %.2f s); %ld puts at %.1f puts/s (put p99 %.3f ms); "
             "%ld events delivered, %ld missing",
             o->watchers, created_s, w.puts_acked, put_s > 0 ? w.puts_acked / put_s : 0,
             lat_pct_ms(&w.put_lat, 0.99), w.events, missing > 0 ? missing : 0);
    struct bench_report r = { .workload = "watch", .ops = w.events,
                              .errors = w.put_errors + w.canceled + (missing > 0 ? missing : 0),
                              .seconds = put_s, .lat = &w.lat,
                              .first_error = w.first_error[0] ? w.first_error : NULL,
                              .extra = extra, .extra_text = text };
    report_print(o, &r);
    rc = (w.puts_acked > 0 && missing <= 0) ? 0 : 1;
out:
    for (int i = 0; ss && i < s; i++)
        net_grpc_stream_free(ss[i]);
    for (int i = 0; cs && i <= s; i++)
        net_grpc_client_free(cs[i]);
    net_tls_ctx_free(ctx);
    if (w.tick)
        event_free(w.tick);
    if (w.base)
        event_base_free(w.base);
    lat_free(&w.lat);
    lat_free(&w.put_lat);
    free(w.slots);
    free(w.val);
    free(wrs);
    free(ss);
    free(cs);
    return rc;
}

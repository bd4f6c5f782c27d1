/* watch — plinthctl watch: prints events (PUT/DELETE, then the key and value lines) until
 * Ctrl-C, as etcdctl does; also the watch helper the lock and elect recipes use. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct net_grpc_stream *watch_open(struct ctl *c, const uint8_t *key, size_t klen,
                                   const uint8_t *end, size_t elen, int64_t rev, int prev_kv)
{
    struct net_grpc_client *cl = ctl_client(c);
    if (!cl)
        return NULL;
    static const char *const md[] = { "hasleader", "true", NULL };
    struct net_grpc_stream_opts so = { .metadata = md };
    struct net_grpc_stream *s = NULL;
    if (net_grpc_stream_open(cl, "/etcdserverpb.Watch/Watch", &so, &s) != 0) {
        ctl_err("watch: cannot open a stream");
        return NULL;
    }
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){ klen, (uint8_t *)key };
    cr.range_end = (ProtobufCBinaryData){ elen, (uint8_t *)end };
    cr.start_revision = rev;
    cr.prev_kv = prev_kv;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    if (net_grpc_stream_send_msg(s, &req.base) != 0) {
        net_grpc_stream_free(s);
        ctl_err("watch: cannot send the create request");
        return NULL;
    }
    return s;
}

static void print_event(const struct ctl *c, const Mvccpb__Event *e)
{
    puts(e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? "DELETE" : "PUT");
    if (e->prev_kv)
        print_kv(c, e->prev_kv, 0, 0);
    if (e->kv)
        print_kv(c, e->kv, 0, 0);
}

int cmd_watch(struct ctl *c, int argc, char **argv)
{
    int prefix = 0, prev = 0;
    int64_t rev = 0;
    struct flag_spec specs[] = { { "prefix", F_BOOL, &prefix }, { "prev-kv", F_BOOL, &prev },
                                 { "rev", F_INT, &rev }, { NULL, 0, NULL } };
    char *pos[3];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 2, &np)))
        return rc;
    if (np < 1)
        return ctl_usage("watch needs a key (interactive mode is not supported)");
    if (np == 2 && prefix)
        return ctl_usage("`range_end` and `--prefix` are mutually exclusive");
    const uint8_t *key = (const uint8_t *)pos[0];
    size_t klen = strlen(pos[0]), elen = 0;
    uint8_t endbuf[4096];
    const uint8_t *end = NULL;
    if (np == 2) {
        end = (const uint8_t *)pos[1];
        elen = strlen(pos[1]);
    } else if (prefix) {
        if (klen == 0) {
            key = (const uint8_t *)"";
            klen = 1;
            end = (const uint8_t *)"";
            elen = 1;
        } else {
            elen = prefix_end(key, klen, endbuf, sizeof endbuf);
            end = endbuf;
        }
    }
    ctl_catch_signals();
    struct net_grpc_stream *s = watch_open(c, key, klen, end, elen, rev, prev);
    if (!s)
        return CTL_EXIT_ERR;
    rc = 0;
    while (!ctl_interrupted) {
        ProtobufCMessage *m = NULL;
        int r = net_grpc_stream_recv_msg(s, &etcdserverpb__watch_response__descriptor, &m, 200);
        if (r == NET_GRPC_RECV_TIMEOUT)
            continue;
        if (r == NET_GRPC_RECV_CLOSED) {
            const struct net_grpc_status *st = net_grpc_stream_status(s);
            rc = ctl_err("watch is canceled by the server: %s",
                         st->message[0] ? st->message : net_grpc_code_name(st->code));
            break;
        }
        Etcdserverpb__WatchResponse *w = (Etcdserverpb__WatchResponse *)m;
        if (w->canceled) {
            if (w->compact_revision)
                rc = ctl_err("watch was canceled (etcdserver: mvcc: required revision has been "
                             "compacted; compact revision %" PRId64 ")", w->compact_revision);
            else
                rc = ctl_err("watch is canceled by the server%s%s",
                             w->cancel_reason && *w->cancel_reason ? ": " : "",
                             w->cancel_reason ? w->cancel_reason : "");
            protobuf_c_message_free_unpacked(m, NULL);
            break;
        }
        if (c->out == OUT_JSON) {
            if (w->n_events)
                print_json(m);
        } else {
            for (size_t i = 0; i < w->n_events; i++)
                print_event(c, w->events[i]);
        }
        fflush(stdout);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    net_grpc_stream_free(s);
    return rc;
}

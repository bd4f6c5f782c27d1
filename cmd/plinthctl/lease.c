/* lease — plinthctl lease grant, revoke, keep-alive, timetolive and list. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int parse_id(const char *s, int64_t *id)
{
    char *end;
    long long v = strtoll(s, &end, 16);
    if (!*s || *end)
        return ctl_usage("bad lease ID arg (%s), expecting ID in Hex", s);
    *id = v;
    return 0;
}

static int lease_grant(struct ctl *c, char **pos, int np)
{
    if (np != 1)
        return ctl_usage("lease grant command needs TTL argument");
    char *end;
    long long ttl = strtoll(pos[0], &end, 10);
    if (!*pos[0] || *end || ttl <= 0)
        return ctl_usage("bad TTL (%s)", pos[0]);
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = ttl;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Lease/LeaseGrant", &req.base,
                      &etcdserverpb__lease_grant_response__descriptor, &resp);
    if (rc)
        return rc;
    Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)resp;
    if (r->error && *r->error)
        rc = ctl_err("failed to grant lease (%s)", r->error);
    else if (c->out == OUT_JSON)
        print_json(resp);
    else
        printf("lease %016" PRIx64 " granted with TTL(%" PRId64 "s)\n", (uint64_t)r->id, r->ttl);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

static int lease_revoke(struct ctl *c, char **pos, int np)
{
    int64_t id = 0;
    if (np != 1)
        return ctl_usage("lease revoke command needs 1 argument");
    if (parse_id(pos[0], &id))
        return CTL_EXIT_USAGE;
    Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    req.id = id;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Lease/LeaseRevoke", &req.base,
                      &etcdserverpb__lease_revoke_response__descriptor, &resp);
    if (rc)
        return rc;
    if (c->out == OUT_JSON)
        print_json(resp);
    else
        printf("lease %016" PRIx64 " revoked\n", (uint64_t)id);
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int lease_ttl(struct ctl *c, char **pos, int np, int keys)
{
    int64_t id = 0;
    if (np != 1)
        return ctl_usage("lease timetolive command needs lease ID as argument");
    if (parse_id(pos[0], &id))
        return CTL_EXIT_USAGE;
    Etcdserverpb__LeaseTimeToLiveRequest req = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    req.id = id;
    req.keys = keys;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Lease/LeaseTimeToLive", &req.base,
                      &etcdserverpb__lease_time_to_live_response__descriptor, &resp);
    if (rc)
        return rc;
    Etcdserverpb__LeaseTimeToLiveResponse *r = (Etcdserverpb__LeaseTimeToLiveResponse *)resp;
    if (c->out == OUT_JSON) {
        print_json(resp);
    } else if (r->ttl == -1) {
        printf("lease %016" PRIx64 " already expired\n", (uint64_t)id);
    } else {
        printf("lease %016" PRIx64 " granted with TTL(%" PRId64 "s), remaining(%" PRId64 "s)",
               (uint64_t)r->id, r->grantedttl, r->ttl);
        if (keys) {
            printf(", attached keys([");
            for (size_t i = 0; i < r->n_keys; i++) {
                if (i)
                    putchar(' ');
                if (r->keys[i].len)
                    fwrite(r->keys[i].data, 1, r->keys[i].len, stdout);
            }
            printf("])");
        }
        putchar('\n');
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int lease_list(struct ctl *c)
{
    Etcdserverpb__LeaseLeasesRequest req = ETCDSERVERPB__LEASE_LEASES_REQUEST__INIT;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Lease/LeaseLeases", &req.base,
                      &etcdserverpb__lease_leases_response__descriptor, &resp);
    if (rc)
        return rc;
    Etcdserverpb__LeaseLeasesResponse *r = (Etcdserverpb__LeaseLeasesResponse *)resp;
    if (c->out == OUT_JSON) {
        print_json(resp);
    } else {
        printf("found %zu leases\n", r->n_leases);
        for (size_t i = 0; i < r->n_leases; i++)
            printf("%016" PRIx64 "\n", (uint64_t)r->leases[i]->id);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int lease_keepalive(struct ctl *c, char **pos, int np, int once)
{
    int64_t id = 0;
    if (np != 1)
        return ctl_usage("lease keep-alive command needs lease ID as argument");
    if (parse_id(pos[0], &id))
        return CTL_EXIT_USAGE;
    struct net_grpc_client *cl = ctl_client(c);
    if (!cl)
        return CTL_EXIT_USAGE;
    ctl_catch_signals();
    struct net_grpc_stream_opts so = { 0 };
    struct net_grpc_stream *s;
    if (net_grpc_stream_open(cl, "/etcdserverpb.Lease/LeaseKeepAlive", &so, &s) != 0)
        return ctl_err("keep-alive: cannot open a stream");
    Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    req.id = id;
    int rc = 0, wait_ms = 0;
    while (!ctl_interrupted) {
        if (net_grpc_stream_send_msg(s, &req.base) != 0) {
            rc = ctl_err("keep-alive: stream closed");
            break;
        }
        ProtobufCMessage *m = NULL;
        int r;
        do {
            r = net_grpc_stream_recv_msg(s, &etcdserverpb__lease_keep_alive_response__descriptor,
                                         &m, 200);
            wait_ms += 200;
        } while (r == NET_GRPC_RECV_TIMEOUT && !ctl_interrupted && wait_ms < c->command_timeout_ms);
        if (r != NET_GRPC_RECV_MSG) {
            if (!ctl_interrupted) {
                const struct net_grpc_status *st = net_grpc_stream_status(s);
                rc = ctl_err("%s", r == NET_GRPC_RECV_TIMEOUT ? "context deadline exceeded"
                                                              : st->message);
            }
            break;
        }
        Etcdserverpb__LeaseKeepAliveResponse *k = (Etcdserverpb__LeaseKeepAliveResponse *)m;
        int64_t ttl = k->ttl;
        if (c->out == OUT_JSON)
            print_json(m);
        else if (ttl > 0)
            printf("lease %016" PRIx64 " keepalived with TTL(%" PRId64 ")\n", (uint64_t)k->id, ttl);
        fflush(stdout);
        protobuf_c_message_free_unpacked(m, NULL);
        if (ttl <= 0) {
            if (c->out != OUT_JSON)
                printf("lease %016" PRIx64 " expired or revoked.\n", (uint64_t)id);
            rc = once ? CTL_EXIT_ERR : 0;
            break;
        }
        if (once)
            break;
        /* renew at a third of the TTL, like clientv3 */
        int sleep_ms = (int)(ttl * 1000 / 3);
        for (int t = 0; t < sleep_ms && !ctl_interrupted; t += 200)
            net_grpc_client_poll(cl, 200);
        wait_ms = 0;
    }
    net_grpc_stream_free(s);
    return rc;
}

int cmd_lease(struct ctl *c, const char *sub, int argc, char **argv)
{
    int keys = 0, once = 0;
    struct flag_spec specs[] = { { "keys", F_BOOL, &keys }, { "once", F_BOOL, &once },
                                 { NULL, 0, NULL } };
    char *pos[2];
    int np, rc;
    if (!sub)
        return ctl_usage("lease needs a sub-command: grant, revoke, keep-alive, timetolive, list");
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 1, &np)))
        return rc;
    if (!strcmp(sub, "grant")) return lease_grant(c, pos, np);
    if (!strcmp(sub, "revoke")) return lease_revoke(c, pos, np);
    if (!strcmp(sub, "timetolive")) return lease_ttl(c, pos, np, keys);
    if (!strcmp(sub, "list")) return lease_list(c);
    if (!strcmp(sub, "keep-alive")) return lease_keepalive(c, pos, np, once);
    return ctl_usage("unknown lease sub-command \"%s\"", sub);
}

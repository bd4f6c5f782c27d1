/* maint — plinthctl alarm list/disarm, move-leader, defrag and member update. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *alarm_name(int a)
{
    return a == ETCDSERVERPB__ALARM_TYPE__NOSPACE ? "NOSPACE"
           : a == ETCDSERVERPB__ALARM_TYPE__CORRUPT ? "CORRUPT" : "NONE";
}

static int alarm_call(struct ctl *c, int action, uint64_t member, int alarm,
                      Etcdserverpb__AlarmResponse **out)
{
    Etcdserverpb__AlarmRequest req = ETCDSERVERPB__ALARM_REQUEST__INIT;
    req.action = action;
    req.memberid = member;
    req.alarm = alarm;
    return ctl_call(c, "/etcdserverpb.Maintenance/Alarm", &req.base,
                    &etcdserverpb__alarm_response__descriptor, (ProtobufCMessage **)out);
}

static void print_alarms(const struct ctl *c, const Etcdserverpb__AlarmResponse *r)
{
    if (c->out == OUT_JSON) {
        print_json(&r->base);
        return;
    }
    for (size_t i = 0; i < r->n_alarms; i++)
        printf("memberID:%" PRIu64 " alarm:%s \n", r->alarms[i]->memberid,
               alarm_name(r->alarms[i]->alarm));
}

int cmd_alarm(struct ctl *c, const char *sub, int argc, char **argv)
{
    char *pos[1];
    int np, rc;
    if (!sub)
        return ctl_usage("alarm needs a sub-command: list, disarm");
    if ((rc = ctl_parse(c, argc, argv, NULL, pos, 0, &np)))
        return rc;
    Etcdserverpb__AlarmResponse *r = NULL;
    if (!strcmp(sub, "list")) {
        if ((rc = alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET, 0, 0, &r)))
            return rc;
        print_alarms(c, r);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return 0;
    }
    if (strcmp(sub, "disarm"))
        return ctl_usage("unknown alarm sub-command \"%s\"", sub);
    /* as clientv3: list the alarms, then deactivate each */
    if ((rc = alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET, 0, 0, &r)))
        return rc;
    for (size_t i = 0; i < r->n_alarms && !rc; i++) {
        Etcdserverpb__AlarmResponse *d = NULL;
        rc = alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE,
                        r->alarms[i]->memberid, r->alarms[i]->alarm, &d);
        if (d)
            protobuf_c_message_free_unpacked(&d->base, NULL);
    }
    if (!rc)
        print_alarms(c, r);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int cmd_move_leader(struct ctl *c, int argc, char **argv)
{
    char *pos[2];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, NULL, pos, 1, &np)))
        return rc;
    if (np != 1)
        return ctl_usage("move-leader command needs 1 argument");
    char *end;
    errno = 0;
    uint64_t target = strtoull(pos[0], &end, 16);
    if (!*pos[0] || *end || errno)
        return ctl_usage("bad member ID arg (%s), expecting ID in Hex", pos[0]);
    /* the request must reach the leader: find it among the endpoints */
    char *eps = strdup(c->endpoints), *save = NULL, *leader_ep = NULL;
    uint64_t leader = 0;
    for (char *u = strtok_r(eps, ",", &save); u && !leader_ep; u = strtok_r(NULL, ",", &save)) {
        struct net_grpc_client *cl = ctl_client_for(c, u);
        if (!cl)
            continue;
        Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        if (net_grpc_unary(cl, "/etcdserverpb.Maintenance/Status", &req.base,
                           &etcdserverpb__status_response__descriptor, &resp, NULL,
                           c->command_timeout_ms) == NET_GRPC_OK) {
            Etcdserverpb__StatusResponse *s = (Etcdserverpb__StatusResponse *)resp;
            if (s->header && s->leader && s->leader == s->header->member_id) {
                leader = s->leader;
                leader_ep = strdup(u);
            }
            protobuf_c_message_free_unpacked(resp, NULL);
        }
        net_grpc_client_free(cl);
    }
    free(eps);
    if (!leader_ep)
        return ctl_err("no leader endpoint given at [%s]", c->endpoints);
    struct net_grpc_client *cl = ctl_client_for(c, leader_ep);
    rc = CTL_EXIT_ERR;
    if (cl) {
        Etcdserverpb__MoveLeaderRequest req = ETCDSERVERPB__MOVE_LEADER_REQUEST__INIT;
        req.targetid = target;
        ProtobufCMessage *resp = NULL;
        struct net_grpc_status st;
        if (net_grpc_unary(cl, "/etcdserverpb.Maintenance/MoveLeader", &req.base,
                           &etcdserverpb__move_leader_response__descriptor, &resp, &st,
                           c->command_timeout_ms) == NET_GRPC_OK) {
            if (c->out == OUT_JSON)
                print_json(resp);
            else
                printf("Leadership transferred from %" PRIx64 " to %" PRIx64 "\n", leader, target);
            protobuf_c_message_free_unpacked(resp, NULL);
            rc = 0;
        } else {
            rc = ctl_err("%s", st.message);
        }
        net_grpc_client_free(cl);
    }
    free(leader_ep);
    return rc;
}

int cmd_defrag(struct ctl *c, int argc, char **argv)
{
    char *pos[1];
    int np, rc, bad = 0;
    if ((rc = ctl_parse(c, argc, argv, NULL, pos, 0, &np)))
        return rc;
    char *eps = strdup(c->endpoints), *save = NULL;
    for (char *u = strtok_r(eps, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        struct net_grpc_client *cl = ctl_client_for(c, u);
        struct net_grpc_status st = { 0 };
        ProtobufCMessage *resp = NULL;
        Etcdserverpb__DefragmentRequest req = ETCDSERVERPB__DEFRAGMENT_REQUEST__INIT;
        if (cl && net_grpc_unary(cl, "/etcdserverpb.Maintenance/Defragment", &req.base,
                                 &etcdserverpb__defragment_response__descriptor, &resp, &st,
                                 c->command_timeout_ms) == NET_GRPC_OK) {
            printf("Finished defragmenting etcd member[%s]\n", u);
            protobuf_c_message_free_unpacked(resp, NULL);
        } else {
            fprintf(stderr, "Failed to defragment etcd member[%s] (%s)\n", u,
                    cl ? st.message : "no client");
            bad = 1;
        }
        net_grpc_client_free(cl);
    }
    free(eps);
    return bad ? CTL_EXIT_ERR : 0;
}

int member_update(struct ctl *c, char **pos, int np, const char *peer_urls)
{
    if (np != 1)
        return ctl_usage("member ID is not provided");
    if (!peer_urls || !*peer_urls)
        return ctl_usage("member peer urls not provided (--peer-urls)");
    char *end;
    errno = 0;
    uint64_t id = strtoull(pos[0], &end, 16);
    if (!*pos[0] || *end || errno)
        return ctl_usage("bad member ID arg (%s), expecting ID in Hex", pos[0]);
    char *urls = strdup(peer_urls), *save = NULL, *list[16];
    size_t n = 0;
    for (char *u = strtok_r(urls, ",", &save); u && n < 16; u = strtok_r(NULL, ",", &save))
        list[n++] = u;
    Etcdserverpb__MemberUpdateRequest req = ETCDSERVERPB__MEMBER_UPDATE_REQUEST__INIT;
    req.id = id;
    req.n_peerurls = n;
    req.peerurls = list;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Cluster/MemberUpdate", &req.base,
                      &etcdserverpb__member_update_response__descriptor, &resp);
    if (!rc) {
        Etcdserverpb__MemberUpdateResponse *r = (Etcdserverpb__MemberUpdateResponse *)resp;
        if (c->out == OUT_JSON)
            print_json(resp);
        else
            printf("Member %16" PRIx64 " updated in cluster %16" PRIx64 "\n", id,
                   r->header ? r->header->cluster_id : 0);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    free(urls);
    return rc;
}

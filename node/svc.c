/* svc — what the etcd services share: response headers, error answers, the replicated
 * request envelope, and registration of every method path. */
#include "node/node_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.pb-c.h"

void *node_unpack(struct net_grpc_call *call, const ProtobufCMessageDescriptor *d,
                  const uint8_t *msg, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, msg);
    if (!m)
        net_grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "grpc: error unmarshalling request");
    return m;
}

void node_fill_header(const struct node *n, Etcdserverpb__ResponseHeader *h, int64_t rev)
{
    h->cluster_id = n->cluster_id;
    h->member_id = n->id;
    h->revision = rev ? rev : kv_current_revision(n->kv);
    h->raft_term = raft_term(n->raft);
}

void node_reply_status(struct net_grpc_call *call, struct node_status st)
{
    if (call)
        net_grpc_call_finish(call, st.code, st.code ? st.msg : NULL);
}

/* Every etcd response has its ResponseHeader as field `header`; complete it. */
static void complete_header(const struct node *n, ProtobufCMessage *msg)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "header");
    Etcdserverpb__ResponseHeader *h;
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return;
    h = *(Etcdserverpb__ResponseHeader **)((char *)msg + f->offset);
    if (!h)
        return;
    h->cluster_id = n->cluster_id;
    h->member_id = n->id;
    h->raft_term = raft_term(n->raft);
}

void node_reply_result(struct node *n, struct net_grpc_call *call, kv_result *res)
{
    if (!call)
        return;
    if (!res || (!res->msg && !res->err)) {
        node_reply_status(call, ST_INTERNAL);
        return;
    }
    if (res->err) {
        kv_status_msg m = kv_etcd_status(res->err);
        net_grpc_call_finish(call, m.grpc_code, m.message);
        return;
    }
    complete_header(n, res->msg);
    net_grpc_call_reply_msg(call, res->msg);
}

void node_reply_done(struct node *n, struct waiter *w, struct node_status st, kv_result *res)
{
    if (!w->call)
        return;
    if (st.code) {
        node_reply_status(w->call, st);
        return;
    }
    node_reply_result(n, w->call, res);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

/* The client's message bytes are embedded as they came: a Request is field 1 (the id)
 * and one length-delimited field holding the etcd request, so no re-encoding is needed. */
uint8_t *node_envelope(uint64_t id, int field, const uint8_t *msg, size_t len, size_t *out_len)
{
    uint8_t *b = malloc(len + 32);
    size_t k = 0;
    if (!b)
        return NULL;
    b[k++] = 0x08;
    k += put_varint(b + k, id);
    k += put_varint(b + k, ((uint64_t)field << 3) | 2);
    k += put_varint(b + k, len);
    if (len)
        memcpy(b + k, msg, len);
    *out_len = k + len;
    return b;
}

/* ---- grpc.health.v1 ---------------------------------------------------------------------- */

static void health_check(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    (void)msg;
    (void)len;
    r.status = raft_leader(n->raft) != RAFT_NONE ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                                   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    net_grpc_call_reply_msg(call, &r.base);
}

static void auth_status(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__AuthStatusResponse r = ETCDSERVERPB__AUTH_STATUS_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    (void)msg;
    (void)len;
    node_fill_header(n, &h, 0);
    r.header = &h;
    net_grpc_call_reply_msg(call, &r.base);
}

static void auth_disabled(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)msg;
    (void)len;
    (void)ud;
    node_reply_status(call, ST_AUTH_NOT_ENABLED);
}

int node_services_register(struct node *n)
{
    static const char *auth_methods[] = {
        "AuthEnable", "AuthDisable", "Authenticate", "UserAdd", "UserGet", "UserList",
        "UserDelete", "UserChangePassword", "UserGrantRole", "UserRevokeRole", "RoleAdd",
        "RoleGet", "RoleList", "RoleDelete", "RoleGrantPermission", "RoleRevokePermission"};
    char path[128];
    size_t i;
    if (svc_kv_register(n) || svc_watch_register(n) || svc_lease_register(n) ||
        svc_cluster_register(n) || svc_maint_register(n) || svc_election_register(n) ||
        svc_lock_register(n))
        return -1;
    if (net_grpc_server_register(n->grpc, "/grpc.health.v1.Health/Check", NET_GRPC_UNARY,
                                 health_check, n) ||
        net_grpc_server_register(n->grpc, "/etcdserverpb.Auth/AuthStatus", NET_GRPC_UNARY,
                                 auth_status, n))
        return -1;
    for (i = 0; i < sizeof auth_methods / sizeof auth_methods[0]; i++) {
        snprintf(path, sizeof path, "/etcdserverpb.Auth/%s", auth_methods[i]);
        if (net_grpc_server_register(n->grpc, path, NET_GRPC_UNARY, auth_disabled, n))
            return -1;
    }
    return 0;
}

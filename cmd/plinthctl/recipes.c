/* recipes — plinthctl lock and elect, built from leases, transactions and watches the way
 * etcdctl's concurrency recipes build them (so plinthctl and etcdctl interoperate on the
 * same names): a session lease kept alive, a key NAME/<lease-hex> created with it, and the
 * lowest create revision under NAME/ holds the lock or leads. */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "ctl.h"

struct session {
    struct ctl *c;
    int64_t lease;
    int ttl;
    struct net_grpc_stream *ka;
    struct event *timer;
    int lost;
};

static void ka_send(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    req.id = s->lease;
    if (net_grpc_stream_send_msg(s->ka, &req.base) != 0)
        s->lost = 1;
}

static void ka_msg(void *ud, struct net_grpc_stream *st, const uint8_t *msg, size_t len)
{
    (void)st;
    struct session *s = ud;
    Etcdserverpb__LeaseKeepAliveResponse *r =
        etcdserverpb__lease_keep_alive_response__unpack(NULL, len, msg);
    if (r) {
        if (r->ttl <= 0)
            s->lost = 1;
        etcdserverpb__lease_keep_alive_response__free_unpacked(r, NULL);
    }
}

static void ka_close(void *ud, struct net_grpc_stream *st, const struct net_grpc_status *status)
{
    (void)st;
    (void)status;
    ((struct session *)ud)->lost = 1;
}

static int session_open(struct ctl *c, struct session *s, int ttl)
{
    *s = (struct session){ .c = c, .ttl = ttl };
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = ttl;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Lease/LeaseGrant", &req.base,
                      &etcdserverpb__lease_grant_response__descriptor, &resp);
    if (rc)
        return rc;
    s->lease = ((Etcdserverpb__LeaseGrantResponse *)resp)->id;
    protobuf_c_message_free_unpacked(resp, NULL);
    struct net_grpc_stream_opts so = { .on_msg = ka_msg, .on_close = ka_close, .ud = s };
    if (net_grpc_stream_open(c->client, "/etcdserverpb.Lease/LeaseKeepAlive", &so, &s->ka) != 0)
        return ctl_err("cannot open the lease keep-alive stream");
    s->timer = event_new(net_grpc_client_base(c->client), -1, EV_PERSIST, ka_send, s);
    struct timeval tv = { ttl / 3 > 0 ? ttl / 3 : 1, 0 };
    event_add(s->timer, &tv);
    ka_send(-1, 0, s);
    return 0;
}

static void session_close(struct session *s)
{
    if (s->timer)
        event_free(s->timer);
    net_grpc_stream_free(s->ka);
    s->timer = NULL;
    s->ka = NULL;
    if (s->lease) {
        Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
        req.id = s->lease;
        ProtobufCMessage *resp = NULL;
        if (net_grpc_unary(s->c->client, "/etcdserverpb.Lease/LeaseRevoke", &req.base,
                           &etcdserverpb__lease_revoke_response__descriptor, &resp, NULL, 2000) ==
            NET_GRPC_OK)
            protobuf_c_message_free_unpacked(resp, NULL);
    }
}

static Etcdserverpb__RequestOp *op_range(Etcdserverpb__RequestOp *op, Etcdserverpb__RangeRequest *r)
{
    etcdserverpb__request_op__init(op);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op->request_range = r;
    return op;
}

/* Waits for the first event on [key, end) from rev. Returns 0 with the response in *out
 * (caller frees) and the event at index 0, 1 when interrupted or the session was lost, or an
 * exit code after printing an error. */
static int wait_event(struct ctl *c, struct session *s, const uint8_t *key, size_t klen,
                      const uint8_t *end, size_t elen, int64_t rev,
                      Etcdserverpb__WatchResponse **out)
{
    struct net_grpc_stream *w = watch_open(c, key, klen, end, elen, rev, 0);
    if (!w)
        return CTL_EXIT_ERR;
    int rc = 1;
    while (!ctl_interrupted && !(s && s->lost)) {
        ProtobufCMessage *m = NULL;
        int r = net_grpc_stream_recv_msg(w, &etcdserverpb__watch_response__descriptor, &m, 200);
        if (r == NET_GRPC_RECV_TIMEOUT)
            continue;
        if (r == NET_GRPC_RECV_CLOSED) {
            rc = ctl_err("watch: %s", net_grpc_stream_status(w)->message);
            break;
        }
        Etcdserverpb__WatchResponse *wr = (Etcdserverpb__WatchResponse *)m;
        if (wr->canceled) {
            protobuf_c_message_free_unpacked(m, NULL);
            rc = ctl_err("watch canceled by the server");
            break;
        }
        if (wr->n_events) {
            *out = wr;
            rc = 0;
            break;
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    net_grpc_stream_free(w);
    return rc;
}

/* Waits until no key under pfx has a create revision at or below maxrev (those ahead of us
 * in the queue). Returns 0, 1 when interrupted, or an exit code. */
static int wait_deletes(struct ctl *c, struct session *s, const char *pfx, int64_t maxrev)
{
    uint8_t end[1024];
    size_t plen = strlen(pfx), elen = prefix_end((const uint8_t *)pfx, plen, end, sizeof end);
    for (;;) {
        Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){ plen, (uint8_t *)pfx };
        req.range_end = (ProtobufCBinaryData){ elen, end };
        req.max_create_revision = maxrev;
        req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
        req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
        req.limit = 1;
        ProtobufCMessage *resp;
        int rc = ctl_call(c, "/etcdserverpb.KV/Range", &req.base,
                          &etcdserverpb__range_response__descriptor, &resp);
        if (rc)
            return rc;
        Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)resp;
        if (r->n_kvs == 0) {
            protobuf_c_message_free_unpacked(resp, NULL);
            return 0;
        }
        uint8_t kb[1024];
        size_t kl = r->kvs[0]->key.len < sizeof kb ? r->kvs[0]->key.len : sizeof kb;
        memcpy(kb, r->kvs[0]->key.data, kl);
        int64_t rev = r->header ? r->header->revision : 0;
        protobuf_c_message_free_unpacked(resp, NULL);
        /* wait for that key's delete, then look again */
        for (;;) {
            Etcdserverpb__WatchResponse *wr = NULL;
            rc = wait_event(c, s, kb, kl, NULL, 0, rev, &wr);
            if (rc)
                return rc;
            int deleted = 0;
            for (size_t i = 0; i < wr->n_events; i++) {
                if (wr->events[i]->type == MVCCPB__EVENT__EVENT_TYPE__DELETE)
                    deleted = 1;
                if (wr->events[i]->kv && wr->events[i]->kv->mod_revision >= rev)
                    rev = wr->events[i]->kv->mod_revision + 1;
            }
            protobuf_c_message_free_unpacked(&wr->base, NULL);
            if (deleted)
                break;
        }
    }
}

/* Creates pfx/<lease> with val (or finds it) and queues behind older keys. On success
 * *myrev is the key's create revision; returns 0 when it holds the lowest revision. */
static int acquire(struct ctl *c, struct session *s, const char *pfx, const char *val,
                   char *mykey, size_t keylen, int64_t *myrev)
{
    snprintf(mykey, keylen, "%s%" PRIx64, pfx, (uint64_t)s->lease);
    size_t klen = strlen(mykey), plen = strlen(pfx), vlen = strlen(val);
    uint8_t end[1024];
    size_t elen = prefix_end((const uint8_t *)pfx, plen, end, sizeof end);
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.key = (ProtobufCBinaryData){ klen, (uint8_t *)mykey };
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    cmp.create_revision = 0;
    Etcdserverpb__Compare *cmps[1] = { &cmp };
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = cmp.key;
    put.value = (ProtobufCBinaryData){ vlen, (uint8_t *)val };
    put.lease = s->lease;
    Etcdserverpb__RangeRequest owner = ETCDSERVERPB__RANGE_REQUEST__INIT;
    owner.key = (ProtobufCBinaryData){ plen, (uint8_t *)pfx };
    owner.range_end = (ProtobufCBinaryData){ elen, end };
    owner.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
    owner.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    owner.limit = 1;
    Etcdserverpb__RangeRequest self = ETCDSERVERPB__RANGE_REQUEST__INIT;
    self.key = cmp.key;
    Etcdserverpb__RequestOp ok_put, ok_owner, no_self, no_owner;
    etcdserverpb__request_op__init(&ok_put);
    ok_put.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ok_put.request_put = &put;
    Etcdserverpb__RequestOp *oks[2] = { &ok_put, op_range(&ok_owner, &owner) };
    Etcdserverpb__RequestOp *fails[2] = { op_range(&no_self, &self), op_range(&no_owner, &owner) };
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_compare = 1;
    req.compare = cmps;
    req.n_success = 2;
    req.success = oks;
    req.n_failure = 2;
    req.failure = fails;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.KV/Txn", &req.base, &etcdserverpb__txn_response__descriptor,
                      &resp);
    if (rc)
        return rc;
    Etcdserverpb__TxnResponse *r = (Etcdserverpb__TxnResponse *)resp;
    *myrev = r->header ? r->header->revision : 0;
    if (!r->succeeded && r->n_responses > 0 && r->responses[0]->response_range &&
        r->responses[0]->response_range->n_kvs)
        *myrev = r->responses[0]->response_range->kvs[0]->create_revision;
    int64_t owner_rev = -1;
    if (r->n_responses > 1 && r->responses[1]->response_range &&
        r->responses[1]->response_range->n_kvs)
        owner_rev = r->responses[1]->response_range->kvs[0]->create_revision;
    protobuf_c_message_free_unpacked(resp, NULL);
    if (owner_rev == *myrev)
        return 0;
    return wait_deletes(c, s, pfx, *myrev - 1);
}

static void delete_key(struct ctl *c, const char *key)
{
    Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){ strlen(key), (uint8_t *)key };
    ProtobufCMessage *resp = NULL;
    if (net_grpc_unary(c->client, "/etcdserverpb.KV/DeleteRange", &req.base,
                       &etcdserverpb__delete_range_response__descriptor, &resp, NULL, 2000) ==
        NET_GRPC_OK)
        protobuf_c_message_free_unpacked(resp, NULL);
}

/* Keeps the session alive until Ctrl-C (0) or until the lease is lost (error). */
static int hold(struct ctl *c, struct session *s, const char *what)
{
    while (!ctl_interrupted && !s->lost)
        net_grpc_client_poll(c->client, 200);
    if (s->lost)
        return ctl_err("%s: session expired", what);
    return 0;
}

int cmd_lock(struct ctl *c, int argc, char **argv)
{
    int64_t ttl = 10;
    struct flag_spec specs[] = { { "ttl", F_INT, &ttl }, { NULL, 0, NULL } };
    char *pos[64];
    int np, rc;
    c->parse_stop_after = 2; /* lock NAME COMMAND ARGS...: the command's flags are its own */
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 63, &np)))
        return rc;
    if (np < 1)
        return ctl_usage("lock takes a lock name argument and an optional command to execute");
    if (!ctl_client(c))
        return CTL_EXIT_USAGE;
    ctl_catch_signals();
    struct session s;
    if ((rc = session_open(c, &s, (int)ttl))) {
        session_close(&s);
        return rc;
    }
    char pfx[512], key[600];
    int64_t rev = 0;
    snprintf(pfx, sizeof pfx, "%s/", pos[0]);
    rc = acquire(c, &s, pfx, "", key, sizeof key, &rev);
    if (rc) {
        if (rc == 1 && s.lost)
            rc = ctl_err("lock: session expired");
        delete_key(c, key);
        session_close(&s);
        return rc;
    }
    if (np == 1) {
        printf("%s\n", key);
        fflush(stdout);
        rc = hold(c, &s, "lock");
    } else {
        /* run the command while holding the lock, as etcdctl does */
        char revs[32];
        snprintf(revs, sizeof revs, "%" PRId64, rev);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("ETCD_LOCK_KEY", key, 1);
            setenv("ETCD_LOCK_REV", revs, 1);
            pos[np] = NULL;
            execvp(pos[1], &pos[1]);
            fprintf(stderr, "Error: lock: cannot run %s\n", pos[1]);
            _exit(127);
        }
        int status = 0;
        rc = CTL_EXIT_ERR;
        while (pid > 0) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                rc = WIFEXITED(status) ? WEXITSTATUS(status) : CTL_EXIT_ERR;
                break;
            }
            if (ctl_interrupted)
                kill(pid, SIGTERM);
            net_grpc_client_poll(c->client, 100);
        }
    }
    delete_key(c, key);
    session_close(&s);
    return rc;
}

static int observe(struct ctl *c, const char *pfx)
{
    uint8_t end[1024];
    size_t plen = strlen(pfx), elen = prefix_end((const uint8_t *)pfx, plen, end, sizeof end);
    while (!ctl_interrupted) {
        Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){ plen, (uint8_t *)pfx };
        req.range_end = (ProtobufCBinaryData){ elen, end };
        req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
        req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
        req.limit = 1;
        ProtobufCMessage *resp;
        int rc = ctl_call(c, "/etcdserverpb.KV/Range", &req.base,
                          &etcdserverpb__range_response__descriptor, &resp);
        if (rc)
            return rc;
        Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)resp;
        int64_t rev = (r->header ? r->header->revision : 0) + 1;
        uint8_t kb[1024];
        size_t kl = 0;
        if (r->n_kvs) {
            print_kv(c, r->kvs[0], 0, 0);
            fflush(stdout);
            kl = r->kvs[0]->key.len < sizeof kb ? r->kvs[0]->key.len : sizeof kb;
            memcpy(kb, r->kvs[0]->key.data, kl);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        /* no leader: wait for any key under the prefix; a leader: for its change or exit */
        for (;;) {
            Etcdserverpb__WatchResponse *wr = NULL;
            rc = kl ? wait_event(c, NULL, kb, kl, NULL, 0, rev, &wr)
                    : wait_event(c, NULL, (const uint8_t *)pfx, plen, end, elen, rev, &wr);
            if (rc)
                return rc == 1 ? 0 : rc;
            int again = 1;
            for (size_t i = 0; i < wr->n_events; i++) {
                Mvccpb__Event *e = wr->events[i];
                if (kl && e->type == MVCCPB__EVENT__EVENT_TYPE__PUT && e->kv) {
                    print_kv(c, e->kv, 0, 0); /* the leader changed its proposal */
                    fflush(stdout);
                    rev = e->kv->mod_revision + 1;
                    again = 0;
                }
            }
            protobuf_c_message_free_unpacked(&wr->base, NULL);
            if (again)
                break;
        }
    }
    return 0;
}

int cmd_elect(struct ctl *c, int argc, char **argv)
{
    int listen = 0;
    int64_t ttl = 10;
    struct flag_spec specs[] = { { "l", F_BOOL, &listen }, { "listen", F_BOOL, &listen },
                                 { "ttl", F_INT, &ttl }, { NULL, 0, NULL } };
    char *pos[3];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 2, &np)))
        return rc;
    if (np != 1 + !listen)
        return ctl_usage(listen ? "elect -l takes one election name argument"
                                : "elect takes an election name and a proposal");
    if (!ctl_client(c))
        return CTL_EXIT_USAGE;
    ctl_catch_signals();
    char pfx[512], key[600];
    snprintf(pfx, sizeof pfx, "%s/", pos[0]);
    if (listen)
        return observe(c, pfx);
    struct session s;
    if ((rc = session_open(c, &s, (int)ttl))) {
        session_close(&s);
        return rc;
    }
    int64_t rev = 0;
    rc = acquire(c, &s, pfx, pos[1], key, sizeof key, &rev);
    if (rc == 0) {
        printf("%s\n%s\n", key, pos[1]);
        fflush(stdout);
        rc = hold(c, &s, "elect");
    } else if (rc == 1) {
        rc = s.lost ? ctl_err("elect: session expired") : 0;
    }
    delete_key(c, key); /* resign */
    session_close(&s);
    return rc;
}

/* svc_maint — etcd's Maintenance service: Status, Alarm, Snapshot (a consistent copy of the
 * store streamed in chunks with remaining_bytes, then its SHA-256 as etcd sends it), Hash,
 * HashKV, MoveLeader, and Defragment (LMDB reuses free pages: nothing to do). */
#include "node/node_int.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "node/log.h"

#define SNAP_CHUNK (256 * 1024)

enum { F_ALARM = 9 };

static void answer_kv_status(struct net_grpc_call *call, int err)
{
    kv_status_msg m = kv_etcd_status(err);
    net_grpc_call_finish(call, m.grpc_code, m.message);
}

/* ---- Status ----------------------------------------------------------------------------- */

static void status_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__StatusResponse r = ETCDSERVERPB__STATUS_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct node_member *self = node_member_find(n, n->id);
    char *errs[8];
    kv_stats st;
    (void)msg;
    (void)len;
    memset(&st, 0, sizeof st);
    kv_stat(n->kv, &st);
    node_fill_header(n, &h, st.revision);
    r.header = &h;
    r.version = "3.5.0";
    r.dbsize = st.db_size;
    r.dbsizeinuse = st.db_size_in_use;
    r.leader = raft_leader(n->raft);
    r.raftindex = raft_last_index(n->raft);
    r.raftterm = raft_term(n->raft);
    r.raftappliedindex = kv_applied_index(n->kv);
    r.islearner = self && self->learner;
    if (st.alarm_nospace || st.alarm_corrupt) { /* etcd's text: "memberID:<id> alarm:NOSPACE " */
        kv_result ar = {0};
        if (kv_alarms(n->kv, &ar) == 0 && !ar.err && ar.msg) {
            Etcdserverpb__AlarmResponse *a = (Etcdserverpb__AlarmResponse *)ar.msg;
            size_t i;
            for (i = 0; i < a->n_alarms && r.n_errors < 8; i++) {
                char *e = malloc(80);
                if (!e)
                    break;
                snprintf(e, 80, "memberID:%" PRIu64 " alarm:%s ", a->alarms[i]->memberid,
                         a->alarms[i]->alarm == ETCDSERVERPB__ALARM_TYPE__NOSPACE ? "NOSPACE" : "CORRUPT");
                errs[r.n_errors++] = e;
            }
        }
        kv_result_free(&ar);
    }
    r.errors = errs;
    net_grpc_call_reply_msg(call, &r.base);
    while (r.n_errors)
        free(errs[--r.n_errors]);
}

/* ---- Alarm ------------------------------------------------------------------------------- */

static void alarm_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__AlarmRequest *req = node_unpack(call, &etcdserverpb__alarm_request__descriptor, msg, len);
    if (!req)
        return;
    if (req->action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET) {
        kv_result res = {0};
        int rc = kv_alarms(n->kv, &res);
        if (rc)
            answer_kv_status(call, rc);
        else
            node_reply_result(n, call, &res);
        kv_result_free(&res);
    } else {
        struct node_status st = node_can_serve(n, true);
        if (st.code) {
            node_reply_status(call, st);
        } else {
            if (req->action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE)
                n->nospace_raised = false;
            node_propose_client(n, call, F_ALARM, msg, len);
        }
    }
    etcdserverpb__alarm_request__free_unpacked(req, NULL);
}

/* ---- Hash, HashKV, Defragment ------------------------------------------------------------ */

static void hashkv_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__HashKVRequest *req = node_unpack(call, &etcdserverpb__hash_kvrequest__descriptor, msg, len);
    kv_result res = {0};
    int rc;
    if (!req)
        return;
    rc = kv_hash_kv(n->kv, req->revision, &res);
    if (rc)
        answer_kv_status(call, rc);
    else
        node_reply_result(n, call, &res);
    kv_result_free(&res);
    etcdserverpb__hash_kvrequest__free_unpacked(req, NULL);
}

static void hash_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__HashResponse r = ETCDSERVERPB__HASH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    kv_result res = {0};
    int rc;
    (void)msg;
    (void)len;
    rc = kv_hash_kv(n->kv, 0, &res);
    if (rc || res.err || !res.msg) {
        answer_kv_status(call, rc ? rc : res.err ? res.err : KV_EIO);
        kv_result_free(&res);
        return;
    }
    node_fill_header(n, &h, 0);
    r.header = &h;
    r.hash = ((Etcdserverpb__HashKVResponse *)res.msg)->hash;
    net_grpc_call_reply_msg(call, &r.base);
    kv_result_free(&res);
}

static void defrag_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__DefragmentResponse r = ETCDSERVERPB__DEFRAGMENT_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    (void)msg;
    (void)len;
    node_fill_header(n, &h, 0);
    r.header = &h;
    net_grpc_call_reply_msg(call, &r.base);
}

/* ---- MoveLeader ------------------------------------------------------------------------- */

struct move_wait {
    struct net_grpc_call *call;
    uint64_t target;
    int64_t deadline_ms;
    struct move_wait *next;
};

static void move_close(struct net_grpc_call *call, void *user, int err)
{
    struct move_wait *m = user;
    (void)call;
    (void)err;
    if (m)
        m->call = NULL;
}

static void move_leader_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    Etcdserverpb__MoveLeaderRequest *req = node_unpack(call, &etcdserverpb__move_leader_request__descriptor, msg, len);
    struct raft_conf_state c;
    struct move_wait *m;
    size_t i;
    bool voter = false;
    if (!req)
        return;
    raft_conf_state(n->raft, &c);
    for (i = 0; i < c.n_voters; i++)
        if (c.voters[i] == req->targetid)
            voter = true;
    if (!node_is_leader(n)) {
        node_reply_status(call, ST_NOT_LEADER);
    } else if (!voter || req->targetid == n->id) {
        node_reply_status(call, ST_BAD_LEADER_TRANSFEREE);
    } else if (raft_transfer_leader(n->raft, req->targetid) != 0) {
        node_reply_status(call, ST_BAD_LEADER_TRANSFEREE);
    } else if ((m = calloc(1, sizeof(*m))) == NULL) {
        node_reply_status(call, ST_NO_MEMORY);
    } else {
        m->call = call;
        m->target = req->targetid;
        m->deadline_ms = node_now_ms() + 2 * (int64_t)n->cfg.election_ms;
        m->next = n->moves;
        n->moves = m;
        net_grpc_call_set_user(call, m);
        net_grpc_call_set_close_cb(call, move_close);
        node_kick(n);
    }
    etcdserverpb__move_leader_request__free_unpacked(req, NULL);
}

static void moves_tick(struct node *n, int64_t now)
{
    struct move_wait **pp = &n->moves;
    while (*pp) {
        struct move_wait *m = *pp;
        bool moved = raft_leader(n->raft) == m->target;
        if (!m->call || moved || now >= m->deadline_ms) {
            if (m->call) {
                net_grpc_call_set_close_cb(m->call, NULL);
                net_grpc_call_set_user(m->call, NULL);
                if (moved) {
                    Etcdserverpb__MoveLeaderResponse r = ETCDSERVERPB__MOVE_LEADER_RESPONSE__INIT;
                    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
                    node_fill_header(n, &h, 0);
                    r.header = &h;
                    net_grpc_call_reply_msg(m->call, &r.base);
                } else {
                    node_reply_status(m->call, ST_TIMEOUT);
                }
            }
            *pp = m->next;
            free(m);
        } else {
            pp = &m->next;
        }
    }
}

/* ---- Snapshot ---------------------------------------------------------------------------- */

struct snap_stream {
    struct snap_job job;         /* first: the worker thread sees only this part */
    struct node *n;
    struct net_grpc_call *call;  /* NULL once the client went away */
    bool building;               /* the copy is still being written on a worker thread */
    int fd;
    uint64_t size, off;
    EVP_MD_CTX *sha;
    bool hash_sent;
};

static void snap_stream_free(struct snap_stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->sha)
        EVP_MD_CTX_free(s->sha);
    free(s);
}

static void snap_close(struct net_grpc_call *call, void *user, int err)
{
    struct snap_stream *s = user;
    (void)call;
    (void)err;
    if (!s)
        return;
    if (s->building)
        s->call = NULL; /* freed when the copy is done */
    else
        snap_stream_free(s);
}

/* Sends chunks until the call's queue is full; the writable callback brings us back. */
static void snap_pump(struct net_grpc_call *call, void *user)
{
    struct snap_stream *s = user;
    uint8_t *buf = malloc(SNAP_CHUNK);
    if (!buf) {
        net_grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
        return;
    }
    while (!s->hash_sent) {
        Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        ssize_t got = 0;
        int rc;
        node_fill_header(s->n, &h, 0);
        r.header = &h;
        if (s->off < s->size) {
            size_t want = s->size - s->off > SNAP_CHUNK ? SNAP_CHUNK : (size_t)(s->size - s->off);
            got = pread(s->fd, buf, want, (off_t)s->off);
            if (got <= 0) {
                net_grpc_call_finish(call, GRPC_INTERNAL, "etcdserver: snapshot read failed");
                break;
            }
            r.blob.data = buf;
            r.blob.len = (size_t)got;
            r.remaining_bytes = s->size - s->off - (uint64_t)got;
        } else {
            /* etcd ends the stream with the SHA-256 of what it sent */
            EVP_DigestFinal_ex(s->sha, md, &mdlen);
            r.blob.data = md;
            r.blob.len = mdlen;
            r.remaining_bytes = 0;
        }
        rc = net_grpc_call_send_msg(call, &r.base);
        if (rc == NET_EFULL)
            break; /* resumed by the writable callback */
        if (rc != 0)
            break;
        if (s->off < s->size) {
            EVP_DigestUpdate(s->sha, buf, (size_t)got);
            s->off += (uint64_t)got;
        } else {
            s->hash_sent = true;
            net_grpc_call_finish(call, GRPC_OK, NULL);
        }
    }
    free(buf);
}

static int snap_work(void *arg)
{
    struct snap_job *j = arg; /* the first member of struct snap_stream */
    return kv_snapshot_write_path(j->kv, j->path, false);
}

/* The copy is on disk: stream it, unless the client is gone. */
static void snap_done(struct node *n, void *arg, int rc)
{
    struct snap_stream *s = arg;
    struct stat st;
    s->building = false;
    if (rc == 0)
        s->fd = open(s->job.path, O_RDONLY | O_CLOEXEC);
    unlink(s->job.path);
    if (!s->call) {
        snap_stream_free(s);
        return;
    }
    if (rc != 0 || s->fd < 0 || fstat(s->fd, &st) != 0 || !(s->sha = EVP_MD_CTX_new()) ||
        EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1) {
        node_log(n, LOG_WARN, "snapshot: %s", rc ? kv_strerror(rc) : "cannot read the copy");
        net_grpc_call_finish(s->call, GRPC_INTERNAL, "etcdserver: snapshot failed");
        return; /* the close callback frees s */
    }
    s->size = (uint64_t)st.st_size;
    net_grpc_call_set_writable_cb(s->call, snap_pump);
    snap_pump(s->call, s);
}

static void snapshot_h(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    struct node *n = ud;
    struct snap_stream *s;
    static unsigned seq;
    (void)msg;
    (void)len;
    s = calloc(1, sizeof(*s));
    if (!s) {
        node_reply_status(call, ST_NO_MEMORY);
        return;
    }
    s->n = n;
    s->call = call;
    s->fd = -1;
    s->job.kv = n->kv;
    snprintf(s->job.path, sizeof s->job.path, "%s/snapshot-%d-%u.tmp", n->member_dir, (int)getpid(), ++seq);
    s->building = true;
    if (node_bg_run(n, snap_work, snap_done, s) != 0) {
        net_grpc_call_finish(call, GRPC_INTERNAL, "etcdserver: snapshot failed");
        free(s);
        return;
    }
    net_grpc_call_set_user(call, s);
    net_grpc_call_set_close_cb(call, snap_close);
}

/* ---- registration -------------------------------------------------------------------------- */

void node_cluster_tick(struct node *n, int64_t now)
{
    moves_tick(n, now);
    node_lease_tick(n, now);
}

int svc_maint_register(struct node *n)
{
    struct net_grpc_server *g = n->grpc;
    return net_grpc_server_register(g, "/etcdserverpb.Maintenance/Status", NET_GRPC_UNARY, status_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Maintenance/Alarm", NET_GRPC_UNARY, alarm_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Maintenance/Defragment", NET_GRPC_UNARY, defrag_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Maintenance/Hash", NET_GRPC_UNARY, hash_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Maintenance/HashKV", NET_GRPC_UNARY, hashkv_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Maintenance/Snapshot", NET_GRPC_SERVER_STREAM, snapshot_h, n) ||
           net_grpc_server_register(g, "/etcdserverpb.Maintenance/MoveLeader", NET_GRPC_UNARY, move_leader_h, n);
}

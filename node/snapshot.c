/* snapshot — Raft snapshots over the peer transport: the leader copies the store on a
 * worker thread and streams it in 1 MiB chunks (the first carries the Raft message), paced
 * by the peer's queue; the follower writes the chunks to <member>/snap-in.mdb, steps the
 * message once all arrived, and installs the file (kv_restore) when the core says so. */
#include "node/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "node/log.h"
#include "node/peerwire.h"

#define SNAP_CHUNK (1024 * 1024)
#define SNAP_QUEUE_MAX (8u * 1024 * 1024)

/* ---- snapshots out --------------------------------------------------------------------- */

void node_snap_out_free(struct snap_out *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->msg_buf);
    free(s);
}

void node_snap_pump(evutil_socket_t fd, short what, void *arg);

static void snap_schedule(struct node *n, int ms)
{
    struct timeval tv = {0, ms * 1000};
    if (n->snap_ev)
        evtimer_add(n->snap_ev, &tv);
}

void node_snap_pump(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    struct snap_out **pp = &n->snaps_out;
    (void)fd;
    (void)what;
    while (*pp) {
        struct snap_out *s = *pp;
        struct net_peer_stats st;
        bool done = false, failed = false;
        if (s->building) {
            pp = &s->next;
            continue;
        }
        if (net_peer_stats(n->peers, s->to, &st) != 0) {
            failed = true;
        } else if (!st.connected) {
            failed = true;
        } else {
            while (st.queued_bytes < SNAP_QUEUE_MAX && s->off < s->size) {
                Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
                Plinthraftpb__SnapshotChunk c = PLINTHRAFTPB__SNAPSHOT_CHUNK__INIT;
                Plinthraftpb__Message *m = NULL;
                uint8_t *buf = malloc(SNAP_CHUNK);
                ssize_t r;
                size_t want = s->size - s->off > SNAP_CHUNK ? SNAP_CHUNK : (size_t)(s->size - s->off);
                if (!buf)
                    break;
                r = pread(s->fd, buf, want, (off_t)s->off);
                if (r <= 0) {
                    free(buf);
                    failed = true;
                    break;
                }
                c.snap_id = s->snap_id;
                c.offset = s->off;
                c.total = s->size;
                c.data.data = buf;
                c.data.len = (size_t)r;
                if (s->off == 0) {
                    m = plinthraftpb__message__unpack(NULL, s->msg_len, s->msg_buf);
                    c.msg = m;
                }
                f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_SNAP;
                f.snap = &c;
                {
                    uint8_t *out;
                    size_t len;
                    int rc = -1;
                    if (peerwire_pack(&f, &out, &len) == 0) {
                        rc = net_peer_send(n->peers, s->to, out, len);
                        free(out);
                    }
                    if (m)
                        plinthraftpb__message__free_unpacked(m, NULL);
                    free(buf);
                    if (rc == NET_EFULL)
                        break; /* try again on the next pump */
                    if (rc != 0) {
                        failed = true;
                        break;
                    }
                }
                s->off += (uint64_t)r;
                net_peer_stats(n->peers, s->to, &st);
            }
            if (s->off >= s->size)
                done = true;
        }
        if (done || failed) {
            *pp = s->next;
            node_log(n, failed ? LOG_WARN : LOG_INFO, "snapshot to %016" PRIx64 ": %s (%" PRIu64 " bytes)",
                     s->to, failed ? "failed" : "sent", s->size);
            raft_report_snapshot(n->raft, s->to, !failed);
            node_snap_out_free(s);
            node_kick(n);
        } else {
            pp = &s->next;
        }
    }
    for (pp = &n->snaps_out; *pp; pp = &(*pp)->next)
        if (!(*pp)->building) {
            snap_schedule(n, 5);
            break;
        }
}

struct raft_snap_job {
    struct snap_job job;
    uint64_t snap_id;
};

static int snap_copy_work(void *arg)
{
    struct snap_job *j = arg;
    return kv_snapshot_write_path(j->kv, j->path, false);
}

/* The copy for a follower is written: stream it (if the transfer is still wanted). */
static void raft_snap_done(struct node *n, void *arg, int rc)
{
    struct raft_snap_job *j = arg;
    struct snap_out *s;
    struct stat stt;
    for (s = n->snaps_out; s; s = s->next)
        if (s->snap_id == j->snap_id)
            break;
    if (s && rc == 0 && !n->stopping) {
        s->fd = open(j->job.path, O_RDONLY | O_CLOEXEC);
        if (s->fd >= 0 && fstat(s->fd, &stt) == 0) {
            s->size = (uint64_t)stt.st_size;
            s->building = false;
            node_log(n, LOG_INFO, "sending snapshot (%" PRIu64 " bytes) to %016" PRIx64, s->size, s->to);
            snap_schedule(n, 0);
        }
    }
    if (s && s->building) { /* failed: forget it, the leader retries */
        struct snap_out **pp;
        node_log(n, LOG_WARN, "snapshot for %016" PRIx64 ": %s", s->to,
                 rc ? kv_strerror(rc) : "cannot open the copy");
        for (pp = &n->snaps_out; *pp != s; pp = &(*pp)->next)
            ;
        *pp = s->next;
        if (!n->stopping)
            raft_report_snapshot(n->raft, s->to, false);
        node_snap_out_free(s);
    }
    unlink(j->job.path); /* the open descriptor keeps the data */
    free(j);
}

void node_snapshots_start(struct node *n, const struct raft_msg *m)
{
    struct snap_out *s, **pp;
    Plinthraftpb__Message pm;
    void *scratch;

    for (pp = &n->snaps_out; *pp; pp = &(*pp)->next)
        if ((*pp)->to == m->to) { /* a newer snapshot replaces one in flight */
            struct snap_out *old = *pp;
            *pp = old->next;
            node_snap_out_free(old);
            break;
        }
    s = calloc(1, sizeof(*s));
    if (!s)
        return;
    s->fd = -1;
    s->to = m->to;
    s->snap_id = ((uint64_t)time(NULL) << 20) ^ m->snapshot->index;
    if (peerwire_msg_from_raft(m, &pm, &scratch) < 0)
        goto fail;
    s->msg_len = plinthraftpb__message__get_packed_size(&pm);
    s->msg_buf = malloc(s->msg_len ? s->msg_len : 1);
    if (!s->msg_buf) {
        free(scratch);
        goto fail;
    }
    plinthraftpb__message__pack(&pm, s->msg_buf);
    free(scratch);
    {
        struct raft_snap_job *j = calloc(1, sizeof(*j));
        if (!j)
            goto fail;
        j->snap_id = s->snap_id;
        j->job.kv = n->kv;
        snprintf(j->job.path, sizeof j->job.path, "%s/snap-out-%016" PRIx64 "-%" PRIx64 ".mdb",
                 n->member_dir, m->to, s->snap_id);
        unlink(j->job.path);
        s->building = true;
        if (node_bg_run(n, snap_copy_work, raft_snap_done, j) != 0) {
            free(j);
            goto fail;
        }
    }
    node_log(n, LOG_INFO, "building a snapshot at index %" PRIu64 " for %016" PRIx64, m->snapshot->index,
             m->to);
    s->next = n->snaps_out;
    n->snaps_out = s;
    return;
fail:
    node_snap_out_free(s);
    /* raft_report_snapshot cannot run inside the ready batch; the core retries anyway
     * after its snapshot timeout, so just log */
    node_log(n, LOG_WARN, "could not send a snapshot to %016" PRIx64, m->to);
}

/* ---- snapshots in ------------------------------------------------------------------------- */

void node_snap_in_reset(struct node *n)
{
    struct snap_in *si = &n->snap_in;
    if (si->fd >= 0)
        close(si->fd);
    si->fd = -1;
    free(si->msg_buf);
    si->msg_buf = NULL;
    si->snap_id = 0;
    si->got = si->total = 0;
}

void node_snap_receive(struct node *n, uint64_t from, const Plinthraftpb__SnapshotChunk *c)
{
    struct snap_in *si = &n->snap_in;
    if (c->offset == 0) {
        node_snap_in_reset(n);
        if (!c->msg)
            return;
        snprintf(si->path, sizeof si->path, "%s/snap-in.mdb", n->member_dir);
        si->fd = open(si->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (si->fd < 0) {
            node_log(n, LOG_WARN, "snapshot: open %s: %s", si->path, strerror(errno));
            return;
        }
        si->msg_len = plinthraftpb__message__get_packed_size(c->msg);
        si->msg_buf = malloc(si->msg_len ? si->msg_len : 1);
        if (!si->msg_buf) {
            node_snap_in_reset(n);
            return;
        }
        plinthraftpb__message__pack(c->msg, si->msg_buf);
        si->snap_id = c->snap_id;
        si->from = from;
        si->total = c->total;
        si->ready = false;
    }
    if (si->fd < 0 || c->snap_id != si->snap_id || c->offset != si->got)
        return;
    if (write(si->fd, c->data.data, c->data.len) != (ssize_t)c->data.len) {
        node_log(n, LOG_WARN, "snapshot: write %s: %s", si->path, strerror(errno));
        node_snap_in_reset(n);
        return;
    }
    si->got += c->data.len;
    if (si->got >= si->total) {
        Plinthraftpb__Message *pm;
        struct peerwire_raft pr;
        fsync(si->fd);
        close(si->fd);
        si->fd = -1;
        pm = plinthraftpb__message__unpack(NULL, si->msg_len, si->msg_buf);
        if (pm && peerwire_msg_to_raft(pm, &pr) == 0) {
            node_log(n, LOG_INFO, "received snapshot at index %" PRIu64 " (%" PRIu64 " bytes)",
                     pr.msg.snapshot->index, si->total);
            si->ready = true;
            si->index = pr.msg.snapshot->index;
            raft_step(n->raft, &pr.msg);
            peerwire_raft_release(&pr);
            node_kick(n);
        }
        if (pm)
            plinthraftpb__message__free_unpacked(pm, NULL);
    }
}

int node_snapshot_install(struct node *n, const struct raft_snapshot_meta *meta)
{
    struct snap_in *si = &n->snap_in;
    kv_snap_meta sm = {meta->index, meta->term};
    int rc;
    if (!si->ready || si->index != meta->index) {
        node_log(n, LOG_ERROR, "snapshot at %" PRIu64 " to install, but its data is not here", meta->index);
        return KV_ENOTFOUND;
    }
    node_bg_drain(n); /* no store copy may be running while the environment is replaced */
    rc = kv_restore(n->kv, si->path, &sm);
    si->ready = false;
    if (rc)
        return rc;
    node_members_load(n);
    {
        uint64_t cid = 0, mid = 0;
        kv_ids_get(n->kv, &cid, &mid);
        if (cid)
            n->cluster_id = cid;
    }
    n->applied = kv_applied_index(n->kv);
    n->last_compact_index = n->applied;
    node_log(n, LOG_INFO, "installed snapshot at index %" PRIu64 " (applied %" PRIu64 ", revision %" PRId64 ")",
             meta->index, n->applied, kv_current_revision(n->kv));
    return 0;
}

/* loop — the node's turn (DESIGN.md "The server's loop"): gather proposals and reads,
 * take the Raft core's ready batch, persist and apply it in one LMDB transaction with one
 * fsync, then send, answer the waiting clients and serve the reads. */
#include "node/node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "node/log.h"

int64_t node_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Schedules a turn. Under load (many clients waiting) a turn that would start right
 * after the previous commit waits a little, up to the last commit's duration, so that
 * one fsync covers more work (group commit); an idle member turns at once. */
void node_kick(struct node *n)
{
    int64_t now, wait;
    if (n->turn_pending || !n->turn_ev)
        return;
    n->turn_pending = true;
    if (n->batch_window_us > 0 && n->n_waiters >= (size_t)n->batch_min_waiters) {
        now = now_us();
        wait = n->last_commit_end_us + (n->last_commit_us < n->batch_window_us ? n->last_commit_us
                                                                               : n->batch_window_us) - now;
        if (wait > 0) {
            struct timeval tv = {0, (suseconds_t)wait};
            event_add(n->turn_ev, &tv);
            return;
        }
    }
    event_active(n->turn_ev, EV_TIMEOUT, 0);
}

bool node_is_leader(const struct node *n)
{
    return raft_role(n->raft) == RAFT_LEADER;
}

struct node_status node_can_serve(const struct node *n, bool write)
{
    const struct node_member *self = NULL;
    int i;
    if (n->removed)
        return ST_STOPPED;
    for (i = 0; i < n->members.n; i++)
        if (n->members.m[i].id == n->id)
            self = &n->members.m[i];
    if (self && self->learner)
        return ST_NOT_SUPPORTED_FOR_LEARNER;
    if (raft_leader(n->raft) == RAFT_NONE && !node_leader_pending(n))
        return ST_NO_LEADER;
    (void)write;
    return ST_OK;
}

/* True while this member has had no leader for less than an election timeout: an
 * election (or a leadership transfer) is likely under way, so requests wait for its
 * outcome instead of failing; a member without a leader for longer (partitioned, or the
 * cluster lost quorum) answers "no leader" at once. */
bool node_leader_pending(const struct node *n)
{
    if (raft_leader(n->raft) != RAFT_NONE)
        return false;
    if (n->leader != RAFT_NONE) /* lost just now; the turn has not seen it yet */
        return true;
    return node_now_ms() - n->no_leader_since_ms < (int64_t)n->cfg.election_ms;
}

/* ---- the turn ------------------------------------------------------------------------ */

static int done_push(struct turn_state *ts, struct waiter *w, kv_result *res, bool own)
{
    if (ts->n_done == ts->cap_done) {
        size_t c = ts->cap_done ? 2 * ts->cap_done : 64;
        struct applied_result *p = realloc(ts->done, c * sizeof(*p));
        if (!p)
            return -1;
        ts->done = p;
        ts->cap_done = c;
    }
    ts->done[ts->n_done].w = w;
    ts->done[ts->n_done].own = own;
    if (res)
        ts->done[ts->n_done].res = *res;
    else
        memset(&ts->done[ts->n_done].res, 0, sizeof(kv_result));
    ts->n_done++;
    return 0;
}

void turn_done_own(struct turn_state *ts, struct waiter *w)
{
    done_push(ts, w, NULL, true);
}

static void turn_state_reset(struct turn_state *ts)
{
    size_t i;
    for (i = 0; i < ts->n_done; i++)
        kv_result_free(&ts->done[i].res);
    ts->n_done = 0;
    ts->members_changed = false;
    ts->removed_self = false;
}

/* Applies one committed entry inside w. Returns 0 or a fatal kv error. */
static int apply_entry(struct node *n, kv_wtxn *w, const struct raft_entry *e, struct turn_state *ts)
{
    int rc;
    if (e->index <= kv_applied_index(n->kv))
        return 0; /* replayed after a restart or a snapshot */
    if (e->type == RAFT_ENTRY_NORMAL && e->len > 0) {
        Plinthpb__Request *req = plinthpb__request__unpack(NULL, e->len, e->data);
        kv_result res = {0};
        if (!req) {
            node_log(n, LOG_WARN, "apply: entry %" PRIu64 " does not decode; skipped", e->index);
            return kv_applied_set(w, e->index, e->term);
        }
        rc = kv_apply(w, e->index, e->term, req, &res);
        if (rc == 0) {
            struct waiter *wt = waiter_find_pub(n, req->id);
            if (wt) {
                if (done_push(ts, wt, &res, false) < 0)
                    kv_result_free(&res);
            } else {
                kv_result_free(&res);
            }
        } else if (rc == KV_EUNKNOWNREQ) {
            rc = node_apply_own(n, w, e, req->id, ts);
            if (rc == 0)
                rc = kv_applied_set(w, e->index, e->term);
        } else if (rc == KV_EAPPLIED) {
            rc = 0;
        }
        plinthpb__request__free_unpacked(req, NULL);
        return rc;
    }
    if (e->type == RAFT_ENTRY_CONF_CHANGE) {
        rc = node_apply_conf_change(n, w, e, ts);
        if (rc)
            return rc;
    }
    return kv_applied_set(w, e->index, e->term);
}

static int persist_and_apply(struct node *n, const struct raft_ready *rd, struct turn_state *ts)
{
    kv_wtxn *w;
    size_t i;
    int rc;
    double t0, t1;

    bool apply_only;

    ts->meta_written = false;
    rc = kv_wtxn_begin(n->kv, &w);
    if (rc)
        return rc;
    if (rd->n_entries) {
        kv_entry *ke = malloc(rd->n_entries * sizeof(*ke));
        if (!ke) {
            kv_wtxn_abort(w);
            return KV_ENOMEM;
        }
        for (i = 0; i < rd->n_entries; i++) {
            ke[i].index = rd->entries[i].index;
            ke[i].term = rd->entries[i].term;
            ke[i].type = rd->entries[i].type;
            ke[i].data = rd->entries[i].data;
            ke[i].len = rd->entries[i].len;
        }
        rc = kv_log_append(w, ke, rd->n_entries);
        free(ke);
        if (rc)
            goto fail;
    }
    if (rd->hard_state_changed) {
        kv_hard_state hs = {rd->hard_state.term, rd->hard_state.vote, rd->hard_state.commit};
        if ((rc = kv_hard_state_set(w, &hs)) != 0)
            goto fail;
    }
    if (n->ids_unsaved) {
        struct raft_conf_state c;
        if ((rc = kv_ids_set(w, n->cluster_id, n->id)) != 0)
            goto fail;
        if ((rc = node_members_save(n, w)) != 0)
            goto fail;
        raft_conf_state(n->raft, &c); /* the founding membership, for restarts */
        if (c.n_voters && (rc = node_conf_state_save(n, w, &c)) != 0)
            goto fail;
    }
    if (rd->snapshot) {
        if ((rc = node_conf_state_save(n, w, &rd->snapshot->conf)) != 0)
            goto fail;
    }
    t0 = now_s();
    for (i = 0; i < rd->n_committed; i++)
        if ((rc = apply_entry(n, w, &rd->committed[i], ts)) != 0)
            goto fail;
    if (rd->conf_state_changed)
        if ((rc = node_conf_state_save(n, w, &rd->conf_state)) != 0)
            goto fail;
    t1 = now_s();
    if (rd->n_committed)
        node_hist_observe(&n->metrics.apply, t1 - t0);
    /* Entries are durable in the log since the synced turn that appended them, and the
     * commit index may lag after a crash (it is learned again): a turn that only applies
     * them needs no meta-page sync. Replay after a machine crash is idempotent (kv.h). */
    apply_only = n->apply_nosync && !rd->n_entries && !rd->snapshot && !n->ids_unsaved &&
                 !rd->conf_state_changed && !ts->meta_written &&
                 (!rd->hard_state_changed || (rd->hard_state.term == n->durable_term &&
                                              rd->hard_state.vote == n->durable_vote));
    rc = apply_only ? kv_wtxn_commit_nosync(w) : kv_wtxn_commit(w);
    if (rc)
        return rc;
    if (!apply_only && rd->hard_state_changed) {
        n->durable_term = rd->hard_state.term;
        n->durable_vote = rd->hard_state.vote;
    }
    n->last_commit_end_us = now_us();
    n->last_commit_us = n->last_commit_end_us - (int64_t)(t1 * 1e6);
    {
        double d = now_s() - t1;
        node_hist_observe(&n->metrics.backend_commit, d);
        if (rd->n_entries || rd->hard_state_changed)
            node_hist_observe(&n->metrics.wal_fsync, d);
    }
    n->ids_unsaved = false;
    return 0;
fail:
    kv_wtxn_abort(w);
    return rc;
}

static void handle_soft_state(struct node *n, const struct raft_soft_state *ss)
{
    int64_t now = node_now_ms();
    if (ss->leader != n->leader) {
        if (ss->leader != RAFT_NONE)
            n->metrics.leader_changes++;
        node_log(n, LOG_INFO, "leader is now %016" PRIx64 " (term %" PRIu64 ")", ss->leader,
                 raft_term(n->raft));
        n->leader = ss->leader;
        n->leader_down = false;
        if (ss->leader == RAFT_NONE)
            n->no_leader_since_ms = now;
        /* Proposals forwarded to a leader that is gone may still commit (the new leader
         * may hold them): give them one election timeout more, not the full request
         * timeout, before telling the client. */
        {
            struct waiter *w;
            for (w = n->whead; w; w = w->next)
                if (w->fwd_to && w->fwd_to != ss->leader && !w->queued &&
                    w->deadline_ms > now + (int64_t)n->cfg.election_ms)
                    w->deadline_ms = now + (int64_t)n->cfg.election_ms;
        }
    }
    if (ss->role != n->role) {
        if (ss->role == RAFT_LEADER) {
            kv_lease_promote(n->kv, now);
        } else if (n->role == RAFT_LEADER) {
            kv_lease_demote(n->kv);
        }
        n->role = ss->role;
    }
}

static void process_ready(struct node *n, struct turn_state *ts)
{
    struct raft_ready rd;
    size_t i;
    int rc, attempt;

    if (raft_ready_get(n->raft, &rd) != 0)
        return;
    n->metrics.turns++;
    if (rd.soft_state_changed)
        handle_soft_state(n, &rd.soft_state);

    /* 1. messages that do not wait for our disk; snapshots go once the state is built */
    ts->n_snaps = 0;
    for (i = 0; i < rd.n_msgs; i++) {
        if (rd.msgs[i].type == RAFT_MSG_SNAPSHOT) {
            const struct raft_msg **p = realloc(ts->snaps, (ts->n_snaps + 1) * sizeof(*p));
            if (p) {
                ts->snaps = p;
                ts->snaps[ts->n_snaps++] = &rd.msgs[i];
            }
        } else {
            node_send_msgs(n, &rd.msgs[i], 1);
        }
    }
    /* the appends are on the wire while this member syncs (turns run from the loop's
     * timer event, never inside a transport callback) */
    if (rd.n_msgs && n->peers)
        net_peer_flush(n->peers);

    /* 2. an arriving snapshot replaces the store before the turn's transaction */
    if (rd.snapshot) {
        rc = node_snapshot_install(n, rd.snapshot);
        if (rc) {
            node_log(n, LOG_ERROR, "install snapshot at %" PRIu64 ": %s", rd.snapshot->index,
                     kv_errmsg(n->kv));
            exit(1);
        }
    }
    for (attempt = 0;; attempt++) {
        rc = persist_and_apply(n, &rd, ts);
        if (rc == 0)
            break;
        turn_state_reset(ts);
        if (!kv_error_is_fatal_txn(rc) || attempt >= 3) {
            node_log(n, LOG_ERROR, "persist: %s (%s); stopping", kv_strerror(rc), kv_errmsg(n->kv));
            exit(1);
        }
    }
    n->applied = kv_applied_index(n->kv);
    n->metrics.proposals_applied = n->applied;
    n->metrics.proposals_committed = raft_commit_index(n->raft);

    /* 3. messages that promise durability */
    node_send_msgs(n, rd.msgs_after_persist, rd.n_msgs_after_persist);
    if (rd.n_msgs_after_persist && n->peers) /* acks and votes before the answers of step 4 */
        net_peer_flush(n->peers);

    /* 4. answer the clients, serve reads, start snapshot transfers */
    for (i = 0; i < ts->n_done; i++) {
        struct waiter *w = ts->done[i].w;
        node_waiter_finish(n, w, ST_OK, ts->done[i].own ? NULL : &ts->done[i].res);
        kv_result_free(&ts->done[i].res);
    }
    ts->n_done = 0;
    if (rd.n_committed) {
        /* local proposals whose index was applied with another entry lost their place */
        struct waiter *w = n->whead, *next;
        for (; w; w = next) {
            next = w->next;
            if (w->index && w->index <= n->applied)
                node_waiter_finish(n, w, ST_LEADER_CHANGED, NULL);
        }
    }
    node_reads_answered(n, rd.reads, rd.n_reads);
    for (i = 0; i < ts->n_snaps; i++)
        node_snapshots_start(n, ts->snaps[i]);
    raft_advance(n->raft, &rd);
    if (ts->members_changed)
        node_peers_sync(n);
    if (ts->removed_self) {
        node_log(n, LOG_WARN, "this member was removed from the cluster; stopping");
        n->removed = true;
    }
}

/* Log compaction after --snapshot-count applied entries, keeping 5000 for followers that
 * lag a little (etcd's SnapshotCatchUpEntries). */
static void maybe_compact(struct node *n)
{
    uint64_t applied = n->applied, keep = 5000, upto;
    kv_wtxn *w = NULL;
    int rc;
    if (applied < n->last_compact_index + n->cfg.snapshot_count)
        return;
    if (applied <= keep)
        return;
    upto = applied - keep;
    if (upto < kv_log_first_index(n->kv))
        return;
    if ((rc = raft_compact(n->raft, upto)) != 0) {
        node_log(n, LOG_WARN, "compact the Raft log through %" PRIu64 ": %s", upto, raft_strerror(rc));
        return;
    }
    if ((rc = kv_wtxn_begin(n->kv, &w)) != 0 || (rc = kv_log_compact(w, upto)) != 0) {
        if (w)
            kv_wtxn_abort(w);
        node_log(n, LOG_WARN, "compact the stored Raft log through %" PRIu64 ": %s", upto, kv_errmsg(n->kv));
        return;
    }
    if (kv_wtxn_commit(w) == 0) {
        n->last_compact_index = applied;
        node_log(n, LOG_INFO, "compacted the Raft log through %" PRIu64, upto);
    }
}

static void retry_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node_kick(arg);
}

void node_turn(struct node *n)
{
    size_t more;

    if (n->in_turn)
        return;
    n->in_turn = true;
    if (n->held_votes && node_release_votes(n))
        event_base_once(n->base, -1, EV_TIMEOUT, retry_turn, n, &(struct timeval){0, 2000});
    node_flush_proposals(n);
    node_issue_reads(n);
    while (raft_has_ready(n->raft))
        process_ready(n, &n->ts);
    node_serve_reads(n);
    more = kv_watch_notify(n->kv);
    maybe_compact(n);
    n->in_turn = false;
    if (more)
        node_kick(n);
    /* proposals held back by a leadership transfer are retried by the tick */
}

/* ---- ticks ---------------------------------------------------------------------------- */

void node_tick(struct node *n)
{
    int64_t now = node_now_ms();
    struct waiter *w, *next;

    raft_tick(n->raft);
    for (w = n->whead; w; w = next) {
        next = w->next;
        if (w->queued || w->deadline_ms > now)
            continue;
        node_waiter_finish(n, w, n->leader == RAFT_NONE ? ST_TIMEOUT_LEADER_FAIL : ST_TIMEOUT, NULL);
    }
    node_reads_tick(n, now);
    node_retry_refused(n, now);
    if (node_is_leader(n)) {
        kv_lease_id_t ids[16];
        size_t k, m = kv_lease_expired(n->kv, now, ids, 16);
        for (k = 0; k < m; k++)
            node_propose_lease_revoke(n, ids[k]);
    }
    kv_watch_progress_tick(n->kv, now, 600000);
    node_kick(n);
}

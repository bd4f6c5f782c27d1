/* node — starting and stopping one member: the store, the Raft core (fresh or restarted
 * from the store), TLS contexts, the peer transport, the gRPC and metrics servers, the
 * tick timer; publishing this member's client URLs; leader transfer on stop. */
#include "node/node_int.h"
#include "node/recipe.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "net/tls.h"
#include "node/log.h"

static void turn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    (void)fd;
    (void)what;
    n->turn_pending = false;
    node_turn(n);
}

static void maybe_publish(struct node *n, int64_t now);
static void stop_check(struct node *n, int64_t now);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    int64_t now = node_now_ms();
    (void)fd;
    (void)what;
    node_tick(n);
    if (now / 1000 != n->last_ping_s) {
        n->last_ping_s = now / 1000;
        node_peers_ping(n);
    }
    node_watch_tick(n, now);
    maybe_publish(n, now);
    if (n->stopping)
        stop_check(n, now);
    node_cluster_tick(n, now);
    node_housekeeping_tick(n, now);
    node_peers_sync(n); /* forgets peers that left, once told */
    if (n->removed && !n->stopping) {
        /* etcd answers "server stopped" and exits; leave the answers time to go out */
        struct timeval later = {0, 300000};
        n->stopping = true;
        node_fail_all_waiters(n, ST_STOPPED);
        event_base_loopexit(n->base, &later);
    }
}

static int mkdir_p(const char *path)
{
    char buf[1200];
    size_t i, len = strlen(path);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++)
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    return 0;
}

static int tls_setup(struct node *n, char *err, size_t errlen)
{
    const struct node_config *c = &n->cfg;
    char e[NET_TLS_ERRLEN];
    if (c->cert_file[0]) {
        struct net_tls_server_opts o = {0};
        o.cert_file = c->cert_file;
        o.key_file = c->key_file;
        o.ca_file = c->trusted_ca_file[0] ? c->trusted_ca_file : NULL;
        o.client_cert_auth = c->client_cert_auth;
        if (net_tls_server_ctx_new(&o, &n->client_tls, e, sizeof e) != 0) {
            snprintf(err, errlen, "client TLS: %s", e);
            return -1;
        }
        /* /metrics and /health speak HTTP/1.1 (evhttp): no ALPN h2, no client certificate */
        o.alpn = "";
        o.client_cert_auth = false;
        if (net_tls_server_ctx_new(&o, &n->metrics_tls, e, sizeof e) != 0) {
            snprintf(err, errlen, "metrics TLS: %s", e);
            return -1;
        }
    }
    if (c->peer_cert_file[0]) {
        struct net_tls_server_opts o = {0};
        struct net_tls_client_opts co = {0};
        o.cert_file = c->peer_cert_file;
        o.key_file = c->peer_key_file;
        o.ca_file = c->peer_trusted_ca_file[0] ? c->peer_trusted_ca_file : NULL;
        o.client_cert_auth = c->peer_trusted_ca_file[0] != 0;
        o.alpn = "";
        if (net_tls_server_ctx_new(&o, &n->peer_server_tls, e, sizeof e) != 0) {
            snprintf(err, errlen, "peer TLS: %s", e);
            return -1;
        }
        co.ca_file = c->peer_trusted_ca_file[0] ? c->peer_trusted_ca_file : NULL;
        co.cert_file = c->peer_cert_file;
        co.key_file = c->peer_key_file;
        co.alpn = "";
        if (net_tls_client_ctx_new(&co, &n->peer_client_tls, e, sizeof e) != 0) {
            snprintf(err, errlen, "peer TLS: %s", e);
            return -1;
        }
    }
    return 0;
}

void node_members_from_config(struct node *n)
{
    int i;
    n->members.n = 0;
    for (i = 0; i < n->cfg.n_members && i < RAFT_MAX_MEMBERS; i++) {
        struct node_member *m = &n->members.m[n->members.n++];
        memset(m, 0, sizeof(*m));
        m->id = n->cfg.members[i].id;
        memcpy(m->name, n->cfg.members[i].name, sizeof m->name); /* same size, NUL-terminated */
        m->peer_urls = n->cfg.members[i].peer_urls;
        if (m->id == n->id)
            m->client_urls = n->cfg.advertise_client_urls;
    }
}

/* Builds the Raft core: from the store after a restart, from the flags on a first start. */
static int raft_setup(struct node *n, char *err, size_t errlen)
{
    struct raft_config rc;
    struct raft_restore rs;
    kv_hard_state hs;
    kv_snap_meta sm;
    kv_entry *ents = NULL;
    struct raft_entry *rents = NULL;
    size_t n_ents = 0, i;
    uint64_t stored_cid = 0, stored_mid = 0;
    raft_id_t voters[RAFT_MAX_MEMBERS];
    int r;
    bool restart;

    memset(&rc, 0, sizeof rc);
    kv_ids_get(n->kv, &stored_cid, &stored_mid);
    kv_hard_state_get(n->kv, &hs);
    n->durable_term = hs.term;
    n->durable_vote = hs.vote;
    n->apply_nosync = !getenv("PLINTH_APPLY_SYNC");
    restart = stored_mid != 0;
    rc.election_tick = (int)(n->cfg.election_ms / n->cfg.heartbeat_ms);
    if (rc.election_tick < 2)
        rc.election_tick = 2;
    rc.heartbeat_tick = 1;
    rc.pre_vote = n->cfg.pre_vote;
    rc.check_quorum = true;
    rc.max_inflight_msgs = 256;
    rc.max_size_per_msg = 1024 * 1024;
    {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        rc.seed = (uint64_t)tv.tv_usec ^ ((uint64_t)tv.tv_sec << 20) ^ n->cfg.self_id ^ (uint64_t)getpid();
    }
    if (restart) {
        n->id = stored_mid;
        n->cluster_id = stored_cid;
        if (node_members_load(n) != 0)
            node_members_from_config(n);
        if (node_id_removed(n, n->id)) {
            snprintf(err, errlen,
                     "member %016" PRIx64 " was removed from the cluster and cannot rejoin on this data dir "
                     "(remove the data dir, then add the member again with other peer URLs)",
                     n->id);
            return -1;
        }
        memset(&rs, 0, sizeof rs);
        rs.hard_state.term = hs.term;
        rs.hard_state.vote = hs.vote;
        rs.hard_state.commit = hs.commit;
        kv_snap_meta_get(n->kv, &sm);
        rs.log_start = sm.index;
        rs.log_start_term = sm.term;
        rs.applied = kv_applied_index(n->kv);
        if (rs.applied < rs.log_start)
            rs.applied = rs.log_start;
        if (rs.hard_state.commit < rs.applied)
            rs.hard_state.commit = rs.applied;
        node_conf_state_load(n, &rs.conf);
        if (kv_log_last_index(n->kv) >= kv_log_first_index(n->kv)) {
            r = kv_log_entries(n->kv, kv_log_first_index(n->kv), kv_log_last_index(n->kv) + 1, 0,
                               &ents, &n_ents);
            if (r) {
                snprintf(err, errlen, "read the Raft log: %s", kv_errmsg(n->kv));
                return -1;
            }
            rents = calloc(n_ents ? n_ents : 1, sizeof(*rents));
            if (!rents) {
                free(ents);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            for (i = 0; i < n_ents; i++) {
                rents[i].index = ents[i].index;
                rents[i].term = ents[i].term;
                rents[i].type = (enum raft_entry_type)ents[i].type;
                rents[i].data = ents[i].data;
                rents[i].len = ents[i].len;
            }
        }
        rs.entries = rents;
        rs.n_entries = n_ents;
        rc.restore = &rs;
        rc.id = n->id;
        node_log(n, LOG_INFO, "restarting member %016" PRIx64 " in cluster %016" PRIx64
                 ": term %" PRIu64 ", commit %" PRIu64 ", applied %" PRIu64 ", %zu log entries, %zu voters",
                 n->id, n->cluster_id, hs.term, rs.hard_state.commit, rs.applied, n_ents, rs.conf.n_voters);
    } else {
        n->id = n->cfg.self_id;
        node_members_from_config(n);
        rc.id = n->id;
        if (!n->cfg.initial_cluster_existing) {
            n->cluster_id = n->cfg.cluster_id;
            for (i = 0; i < (size_t)n->members.n; i++)
                voters[i] = n->members.m[i].id;
            rc.voters = voters;
            rc.n_voters = (size_t)n->members.n;
        } else {
            n->cluster_id = 0; /* learned from the leader's log or snapshot */
        }
        n->ids_unsaved = true;
        node_log(n, LOG_INFO, "starting member %016" PRIx64 " (%s) %s cluster, %d members in --initial-cluster",
                 n->id, n->cfg.name, n->cfg.initial_cluster_existing ? "joining an existing" : "forming a new",
                 n->members.n);
    }
    r = raft_new(&rc, &n->raft);
    free(rents);
    free(ents);
    if (r) {
        snprintf(err, errlen, "raft: %s", raft_strerror(r));
        return -1;
    }
    n->applied = kv_applied_index(n->kv);
    n->last_compact_index = n->applied;
    return 0;
}

int node_start(const struct node_config *cfg, struct event_base *base, struct node **out,
               char *err, size_t errlen)
{
    struct node *n = calloc(1, sizeof(*n));
    kv_options ko;
    struct timeval tv;
    int i;

    if (!n) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n->cfg = *cfg;
    n->base = base;
    n->reads_pending_tail = &n->reads_pending;
    node_log_set_level(cfg->log_level);
    snprintf(n->member_dir, sizeof n->member_dir, "%s/member", cfg->data_dir);
    if (mkdir_p(n->member_dir) != 0) {
        snprintf(err, errlen, "create data dir %s: %s", n->member_dir, strerror(errno));
        goto fail;
    }
    kv_options_init(&ko);
    ko.quota_bytes = cfg->quota_backend_bytes;
    ko.max_txn_ops = cfg->max_txn_ops;
    ko.min_lease_ttl = (int64_t)ceil(1.5 * cfg->election_ms / 1000.0);
    if (getenv("PLINTH_UNSAFE_NO_FSYNC"))
        ko.no_sync = true;
    n->batch_window_us = getenv("PLINTH_BATCH_WINDOW_US") ? atoll(getenv("PLINTH_BATCH_WINDOW_US")) : 2000;
    n->batch_min_waiters = getenv("PLINTH_BATCH_MIN_WAITERS") ? atoi(getenv("PLINTH_BATCH_MIN_WAITERS")) : 32;
    if (cfg->restore_snapshot[0] && node_restore_snapshot(n, &ko, err, errlen) != 0)
        goto fail;
    {
        char e[512];
        if (kv_open(cfg->data_dir, &ko, &n->kv, e, sizeof e) != 0) {
            snprintf(err, errlen, "open data dir %s: %s", cfg->data_dir, e);
            goto fail;
        }
    }
    if (raft_setup(n, err, errlen) != 0)
        goto fail;
    gettimeofday(&tv, NULL);
    n->next_req_id = ((n->id & 0xffff) << 48) |
                     ((((uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000) & 0xffffffffffULL) << 8);
    if (tls_setup(n, err, errlen) != 0)
        goto fail;
    n->turn_ev = event_new(base, -1, 0, turn_cb, n);
    n->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, n);
    if (!n->turn_ev || !n->tick_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (node_peers_start(n, err, errlen) != 0)
        goto fail;
    {
        struct net_grpc_server_opts o;
        memset(&o, 0, sizeof o);
        o.ssl_ctx = n->client_tls;
        /* etcd's gRPC limit: the request limit plus 512 KiB of overhead; requests over
         * --max-request-bytes itself are refused with "request is too large" */
        o.max_request_bytes = cfg->max_request_bytes + 512 * 1024;
        o.max_pending_bytes = 4u * 1024 * 1024;
        if (net_grpc_server_new(base, &o, &n->grpc) != 0) {
            snprintf(err, errlen, "grpc server: out of memory");
            goto fail;
        }
        if (node_services_register(n) != 0) {
            snprintf(err, errlen, "grpc server: cannot register services");
            goto fail;
        }
        for (i = 0; i < cfg->listen_client_urls.n; i++) {
            const struct node_url *u = &cfg->listen_client_urls.u[i];
            if (u->tls && !n->client_tls) {
                snprintf(err, errlen, "%s needs --cert-file and --key-file", u->raw);
                goto fail;
            }
            if (net_grpc_server_listen(n->grpc, u->raw, NULL, err, errlen) != 0)
                goto fail;
        }
    }
    if (cfg->listen_metrics_urls.n > 0 &&
        node_metrics_server_start(base, &cfg->listen_metrics_urls, n->metrics_tls, &n->metrics,
                                  node_gauges, n, &n->msrv, err, errlen) != 0)
        goto fail;
    tv.tv_sec = cfg->heartbeat_ms / 1000;
    tv.tv_usec = (cfg->heartbeat_ms % 1000) * 1000;
    event_add(n->tick_ev, &tv);
    /* a member that just started has not heard from the cluster yet: its first requests
     * wait for the leader a little longer (the grace counts from one second ahead) */
    n->no_leader_since_ms = node_now_ms() + 1000;
    node_log(n, LOG_INFO, "serving clients on %s, peers on %s", cfg->listen_client_urls.u[0].raw,
             cfg->listen_peer_urls.u[0].raw);
    node_kick(n);
    *out = n;
    return 0;
fail:
    node_free(n);
    return -1;
}

/* Announces this member's name and client URLs through Raft once a leader is known
 * (etcd's publish), so `member list` shows them on every member. */
static void publish_done(struct node *n, struct waiter *w, struct node_status st, kv_result *res)
{
    (void)w;
    (void)res;
    if (st.code == 0)
        n->published = true;
}

static void maybe_publish(struct node *n, int64_t now)
{
    Plinthraftpb__NodeRequest r = PLINTHRAFTPB__NODE_REQUEST__INIT;
    Etcdserverpb__Member pb;
    struct node_member self, *cur;
    char *urls[2 * NODE_MAX_URLS];
    uint8_t *buf;
    size_t len;
    uint64_t id;

    if (n->published || raft_leader(n->raft) == RAFT_NONE || now < n->publish_at_ms)
        return;
    cur = node_member_find(n, n->id);
    if (!cur)
        return; /* not a member yet (joining) */
    self = *cur;
    snprintf(self.name, sizeof self.name, "%s", n->cfg.name);
    self.client_urls = n->cfg.advertise_client_urls;
    node_member_to_pb(&self, &pb, urls);
    id = node_new_request_id(n);
    r.id = id;
    r.publish = &pb;
    len = plinthraftpb__node_request__get_packed_size(&r);
    buf = malloc(len);
    if (!buf)
        return;
    plinthraftpb__node_request__pack(&r, buf);
    n->publish_at_ms = now + 3000;
    node_propose(n, id, buf, len, NULL, publish_done, NULL);
}

/* ---- stop ------------------------------------------------------------------------------ */

static void stop_finish(struct node *n)
{
    void (*done)(void *) = n->stop_done;
    n->stop_done = NULL;
    if (done)
        done(n->stop_ud);
}

/* Stop, second phase: no new calls (GOAWAY); writes and reads already accepted get up to
 * one second to be answered (the new leader commits them), then the node stops. Streams
 * (watches, keep-alives) are cut at the end; their clients reconnect elsewhere. */
static void stop_drain(struct node *n, int64_t now)
{
    if (!n->draining) {
        n->draining = true;
        n->stop_deadline_ms = now + 1000;
        net_grpc_server_shutdown(n->grpc);
    }
    if ((n->n_waiters == 0 && !n->rounds && !n->reads_pending) || now >= n->stop_deadline_ms)
        stop_finish(n);
}

static void stop_check(struct node *n, int64_t now)
{
    if (!n->stop_done)
        return;
    if (n->draining) {
        stop_drain(n, now);
        return;
    }
    if (!node_is_leader(n) || now >= n->stop_deadline_ms) {
        if (node_is_leader(n))
            node_log(n, LOG_WARN, "leadership transfer did not finish in time; stopping anyway");
        else
            node_log(n, LOG_INFO, "stopping (leader is now %016" PRIx64 ")", raft_leader(n->raft));
        stop_drain(n, now);
    }
}

void node_stop(struct node *n, void (*done)(void *ud), void *ud)
{
    raft_id_t best = RAFT_NONE;
    raft_index_t best_match = 0;
    struct raft_conf_state c;
    size_t i;

    if (n->stopping)
        return;
    n->stopping = true;
    n->stop_done = done;
    n->stop_ud = ud;
    n->stop_deadline_ms = node_now_ms() + n->cfg.election_ms;
    if (!node_is_leader(n)) {
        stop_drain(n, node_now_ms());
        return;
    }
    raft_conf_state(n->raft, &c);
    for (i = 0; i < c.n_voters; i++) {
        struct raft_progress p;
        if (c.voters[i] == n->id || raft_progress(n->raft, c.voters[i], &p) != 0)
            continue;
        if (!net_peer_connected(n->peers, c.voters[i]))
            continue;
        if (best == RAFT_NONE || p.match > best_match) {
            best = c.voters[i];
            best_match = p.match;
        }
    }
    if (best == RAFT_NONE || raft_transfer_leader(n->raft, best) != 0) {
        stop_drain(n, node_now_ms());
        return;
    }
    node_log(n, LOG_INFO, "transferring leadership to %016" PRIx64 " before stopping", best);
    node_kick(n);
}

void node_free(struct node *n)
{
    if (!n)
        return;
    n->stopping = true;
    if (n->tick_ev)
        event_free(n->tick_ev);
    if (n->turn_ev)
        event_free(n->turn_ev);
    node_metrics_server_free(n->msrv);
    node_bg_drain(n);              /* snapshot copies still being written */
    net_grpc_server_free(n->grpc); /* closes calls: their close callbacks detach waiters */
    node_watch_free_all(n);
    while (n->ttl_waits)
        node_lease_ttl_forget(n, n->ttl_waits);
    node_peers_free(n);
    recipe_stop_all(n);
    while (n->whead) {
        struct waiter *w = n->whead;
        n->whead = w->next;
        free(w->data);
        free(w);
    }
    while (n->rounds) {
        struct read_round *rr = n->rounds;
        n->rounds = rr->next;
        while (rr->reads) {
            struct read_req *r = rr->reads;
            rr->reads = r->next;
            r->call = NULL;
            r->serve(n, r, ST_STOPPED);
            free(r);
        }
        free(rr);
    }
    while (n->reads_pending) {
        struct read_req *r = n->reads_pending;
        n->reads_pending = r->next;
        r->call = NULL;
        r->serve(n, r, ST_STOPPED);
        free(r);
    }
    for (size_t i = 0; i < n->n_fwd; i++)
        free((void *)n->fwd[i].base);
    free(n->fwd);
    free(n->fwd_from);
    free(n->fwd_id);
    free(n->props);
    free(n->removed_ids);
    free(n->ts.done);
    free(n->ts.snaps);
    raft_free(n->raft);
    if (n->kv)
        kv_sync(n->kv); /* the meta page of a last apply-only turn */
    kv_close(n->kv);
    net_tls_ctx_free(n->client_tls);
    net_tls_ctx_free(n->metrics_tls);
    net_tls_ctx_free(n->peer_server_tls);
    net_tls_ctx_free(n->peer_client_tls);
    free(n);
}

/* ---- gauges for /metrics and /health ---------------------------------------------------- */

void node_gauges(void *ud, struct node_gauges *g)
{
    struct node *n = ud;
    kv_stats st;
    int i, k = 0;
    memset(&st, 0, sizeof st);
    kv_stat(n->kv, &st);
    g->has_leader = raft_leader(n->raft) != RAFT_NONE;
    g->is_leader = node_is_leader(n);
    g->term = raft_term(n->raft);
    g->member_id = n->id;
    g->db_size = st.db_size;
    g->db_size_in_use = st.db_size_in_use;
    g->revision = st.revision;
    g->compact_revision = st.compact_revision;
    g->watchers = st.watchers;
    g->watch_streams = n->n_watch_streams;
    g->leases = st.leases;
    g->alarm_nospace = st.alarm_nospace;
    {
        struct node_member *self = node_member_find(n, n->id);
        g->is_learner = self && self->learner;
    }
    for (i = 0; i < n->n_peer_ids && k < 16; i++) {
        struct net_peer_stats ps;
        int s;
        g->peer_id[k] = n->peer_ids[i];
        g->peer_rtt_s[k] = -1;
        for (s = 0; s < RAFT_MAX_MEMBERS; s++)
            if (n->peer_rtt_id[s] == n->peer_ids[i])
                g->peer_rtt_s[k] = n->peer_rtt[s];
        if (net_peer_stats(n->peers, n->peer_ids[i], &ps) == 0) {
            g->peer_sent_bytes[k] = ps.sent_bytes;
            g->peer_recv_bytes[k] = ps.recv_bytes;
        }
        k++;
    }
    g->n_peers = k;
    if (!g->has_leader) {
        g->health = false;
        snprintf(g->health_reason, sizeof g->health_reason, "RAFT NO LEADER");
    } else if (st.alarm_nospace || st.alarm_corrupt) {
        g->health = false;
        snprintf(g->health_reason, sizeof g->health_reason, "ALARM %s",
                 st.alarm_nospace ? "NOSPACE" : "CORRUPT");
    } else {
        g->health = true;
    }
}

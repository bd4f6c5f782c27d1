/* peers — the node's side of the peer transport: Raft messages out and in, proposals
 * forwarded to the leader, state machine snapshots streamed in chunks, lease keep-alives
 * relayed to the leader, and round-trip probes. */
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

#define FORWARD_MAX_BYTES (4u * 1024 * 1024)

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void send_frame(struct node *n, uint64_t to, const Plinthraftpb__PeerFrame *f)
{
    uint8_t *buf;
    size_t len;
    if (peerwire_pack(f, &buf, &len) < 0)
        return;
    net_peer_send(n->peers, to, buf, len);
    free(buf);
}

void node_send_msgs(struct node *n, const struct raft_msg *msgs, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++) {
        uint8_t *buf;
        size_t len;
        if (msgs[i].to == n->id)
            continue;
        if (peerwire_encode_raft(&msgs[i], &buf, &len) < 0)
            continue;
        net_peer_send(n->peers, msgs[i].to, buf, len);
        free(buf);
    }
}

/* ---- forwarding ------------------------------------------------------------------------ */

void node_forward(struct node *n, struct waiter **ws, size_t count)
{
    uint64_t leader = raft_leader(n->raft);
    size_t i = 0;
    while (i < count) {
        Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
        Plinthraftpb__Forward fw = PLINTHRAFTPB__FORWARD__INIT;
        ProtobufCBinaryData *data = malloc((count - i) * sizeof(*data));
        uint64_t *ids = malloc((count - i) * sizeof(*ids));
        size_t k = 0, bytes = 0;
        if (!data || !ids) {
            free(data);
            free(ids);
            return;
        }
        while (i < count && (k == 0 || bytes + ws[i]->len < FORWARD_MAX_BYTES)) {
            data[k].data = ws[i]->data;
            data[k].len = ws[i]->len;
            ids[k++] = ws[i]->id;
            ws[i]->fwd_to = leader;
            bytes += ws[i]->len;
            i++;
        }
        fw.n_data = k;
        fw.data = data;
        fw.n_request_ids = k;
        fw.request_ids = ids;
        f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_FORWARD;
        f.forward = &fw;
        send_frame(n, leader, &f);
        free(data);
        free(ids);
    }
}

void node_forward_refuse(struct node *n, uint64_t to, const uint64_t *ids, size_t count, int reason)
{
    Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
    Plinthraftpb__ForwardRefused r = PLINTHRAFTPB__FORWARD_REFUSED__INIT;
    r.n_request_ids = count;
    r.request_ids = (uint64_t *)ids;
    r.reason = (uint32_t)reason;
    f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_REFUSED;
    f.refused = &r;
    send_frame(n, to, &f);
}

void node_forward_conf(struct node *n, uint64_t request_id, const struct raft_conf_change *cc)
{
    Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
    Plinthraftpb__Forward fw = PLINTHRAFTPB__FORWARD__INIT;
    Plinthraftpb__ConfProposal cp = PLINTHRAFTPB__CONF_PROPOSAL__INIT;
    cp.request_id = request_id;
    cp.type = cc->type;
    cp.node = cc->node;
    cp.context.data = (uint8_t *)cc->context.base;
    cp.context.len = cc->context.len;
    fw.conf = &cp;
    f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_FORWARD;
    f.forward = &fw;
    send_frame(n, raft_leader(n->raft), &f);
}

/* ---- pings ---------------------------------------------------------------------------- */

void node_peers_ping(struct node *n)
{
    int i;
    for (i = 0; i < n->members.n; i++) {
        Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
        Plinthraftpb__Ping p = PLINTHRAFTPB__PING__INIT;
        if (n->members.m[i].id == n->id)
            continue;
        p.sent_us = now_us();
        f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_PING;
        f.ping = &p;
        send_frame(n, n->members.m[i].id, &f);
    }
}

static void got_ping(struct node *n, uint64_t from, const Plinthraftpb__Ping *p)
{
    int i, slot = -1;
    if (!p->pong) {
        Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
        Plinthraftpb__Ping r = PLINTHRAFTPB__PING__INIT;
        r.sent_us = p->sent_us;
        r.pong = true;
        f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_PING;
        f.ping = &r;
        send_frame(n, from, &f);
        return;
    }
    for (i = 0; i < RAFT_MAX_MEMBERS; i++)
        if (n->peer_rtt_id[i] == from || (slot < 0 && n->peer_rtt_id[i] == 0))
            slot = i;
    for (i = 0; i < RAFT_MAX_MEMBERS; i++)
        if (n->peer_rtt_id[i] == from)
            slot = i;
    if (slot < 0)
        return;
    n->peer_rtt_id[slot] = from;
    n->peer_rtt[slot] = (double)(now_us() - p->sent_us) / 1e6;
}

/* ---- lease keep-alives relayed to the leader ------------------------------------------ */

void node_lease_renew_remote(struct node *n, uint64_t request_id, int64_t lease_id)
{
    Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
    Plinthraftpb__LeaseRenew r = PLINTHRAFTPB__LEASE_RENEW__INIT;
    r.request_id = request_id;
    r.lease_id = lease_id;
    f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_RENEW;
    f.renew = &r;
    send_frame(n, raft_leader(n->raft), &f);
}

static void got_renew(struct node *n, uint64_t from, const Plinthraftpb__LeaseRenew *r)
{
    if (r->answer) {
        node_lease_renew_answer(n, r->request_id, r->lease_id, r->ttl);
        return;
    }
    {
        Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
        Plinthraftpb__LeaseRenew a = PLINTHRAFTPB__LEASE_RENEW__INIT;
        int64_t ttl = 0;
        if (!node_is_leader(n))
            ttl = -1; /* not the leader any more: the follower retries */
        else if (kv_lease_renew(n->kv, r->lease_id, node_now_ms(), &ttl) != 0)
            ttl = 0;
        a.request_id = r->request_id;
        a.lease_id = r->lease_id;
        a.ttl = ttl;
        a.answer = true;
        f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_RENEW;
        f.renew = &a;
        send_frame(n, from, &f);
    }
}

/* ---- (pre)votes of a campaign for a crashed leader ------------------------------------- */

/* When the leader crashes, every follower's connection to it closes at about the same
 * moment, and the first to notice campaigns at once (flag RAFT_MSG_F_LEADER_LOST). A peer
 * whose own notice is still queued in this loop iteration would refuse that campaign
 * (it still believes in the leader) and the election would fall back to the timeout.
 * So such a request waits, briefly, for our own notice: it is stepped at the next turn
 * once the leader is gone for us too, or after HOLD_MS anyway. */
#define HOLD_MS 20

struct held_vote {
    struct raft_msg *msg;
    int64_t since_ms;
    struct held_vote *next;
};

static bool hold_vote(struct node *n, const struct raft_msg *m)
{
    struct held_vote *h;
    if ((m->type != RAFT_MSG_PREVOTE && m->type != RAFT_MSG_VOTE) ||
        !(m->flags & RAFT_MSG_F_LEADER_LOST) || raft_leader(n->raft) == RAFT_NONE ||
        raft_leader(n->raft) == n->id || m->from == raft_leader(n->raft))
        return false;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->msg = raft_msg_clone(m))) {
        free(h);
        return false;
    }
    h->since_ms = node_now_ms();
    h->next = n->held_votes;
    n->held_votes = h;
    return true;
}

/* Steps the held requests whose wait is over; returns true while some remain. */
bool node_release_votes(struct node *n)
{
    struct held_vote **pp = &n->held_votes;
    int64_t now = node_now_ms();
    /* stopping first: a start that failed early frees the node before raft exists */
    bool lost = n->stopping || raft_leader(n->raft) == RAFT_NONE || n->leader_down;
    while (*pp) {
        struct held_vote *h = *pp;
        if (lost || now - h->since_ms >= HOLD_MS || n->stopping) {
            *pp = h->next;
            if (!n->stopping)
                raft_step(n->raft, h->msg);
            raft_msg_free(h->msg);
            free(h);
        } else {
            pp = &h->next;
        }
    }
    return n->held_votes != NULL;
}

/* ---- transport callbacks -------------------------------------------------------------- */

static void on_message(void *ud, uint64_t from, const uint8_t *buf, size_t len)
{
    struct node *n = ud;
    Plinthraftpb__PeerFrame *f;
    if (node_id_removed(n, from)) {
        int64_t now = node_now_ms();
        if (now - n->removed_log_ms > 10000) {
            node_log(n, LOG_WARN, "ignoring peer traffic from %016" PRIx64 ", a member removed from the cluster",
                     from);
            n->removed_log_ms = now;
        }
        return;
    }
    f = plinthraftpb__peer_frame__unpack(NULL, len, buf);
    if (!f) {
        node_log(n, LOG_WARN, "peer %016" PRIx64 ": malformed frame (%zu bytes)", from, len);
        return;
    }
    switch (f->body_case) {
    case PLINTHRAFTPB__PEER_FRAME__BODY_RAFT: {
        struct peerwire_raft pr;
        if (peerwire_msg_to_raft(f->raft, &pr) == 0) {
            if (pr.msg.from == from && !hold_vote(n, &pr.msg))
                raft_step(n->raft, &pr.msg);
            peerwire_raft_release(&pr);
            node_kick(n);
        }
        break;
    }
    case PLINTHRAFTPB__PEER_FRAME__BODY_FORWARD:
        if (f->forward->conf)
            node_conf_forwarded(n, from, f->forward->conf);
        else
            node_accept_forward(n, from, f->forward->data, f->forward->request_ids,
                                f->forward->n_data < f->forward->n_request_ids ? f->forward->n_data
                                                                               : f->forward->n_request_ids);
        break;
    case PLINTHRAFTPB__PEER_FRAME__BODY_REFUSED:
        node_forward_refused(n, from, f->refused->request_ids, f->refused->n_request_ids,
                             (int)f->refused->reason);
        break;
    case PLINTHRAFTPB__PEER_FRAME__BODY_SNAP:
        node_snap_receive(n, from, f->snap);
        break;
    case PLINTHRAFTPB__PEER_FRAME__BODY_PING:
        got_ping(n, from, f->ping);
        break;
    case PLINTHRAFTPB__PEER_FRAME__BODY_RENEW:
        got_renew(n, from, f->renew);
        break;
    case PLINTHRAFTPB__PEER_FRAME__BODY_TTL:
        node_lease_ttl_peer(n, from, f->ttl);
        break;
    case PLINTHRAFTPB__PEER_FRAME__BODY_REMOVED:
        if (f->removed->id == n->id && !n->removed) {
            node_log(n, LOG_WARN, "member %016" PRIx64 " says this member was removed from the cluster; stopping",
                     from);
            n->removed = true;
        }
        break;
    default:
        break;
    }
    plinthraftpb__peer_frame__free_unpacked(f, NULL);
}

static void on_peer_down(void *ud, uint64_t peer)
{
    struct node *n = ud;
    struct snap_out **pp;
    if (peer == raft_leader(n->raft)) {
        node_log(n, LOG_INFO, "lost the connection to the leader %016" PRIx64, peer);
        n->leader_down = true;
    }
    raft_leader_conn_lost(n->raft, peer);
    for (pp = &n->snaps_out; *pp; pp = &(*pp)->next)
        if ((*pp)->to == peer) {
            struct snap_out *s = *pp;
            *pp = s->next;
            raft_report_snapshot(n->raft, peer, false);
            node_snap_out_free(s);
            break;
        }
    node_kick(n);
}

/* The transport's cluster guard: a hash of the cluster token, which every member (also
 * one joining later, before it knows the cluster id) can compute. */
static uint64_t token_guard(const char *token)
{
    struct node_url_list none = {0};
    return node_member_id(&none, token, 0);
}

int node_peers_start(struct node *n, char *err, size_t errlen)
{
    struct net_peer_opts o;
    int i, rc;
    memset(&o, 0, sizeof o);
    o.base = n->base;
    o.server_ctx = n->peer_server_tls;
    o.client_ctx = n->peer_client_tls;
    o.self_id = n->id;
    o.cluster_id = token_guard(n->cfg.initial_cluster_token);
    o.on_message = on_message;
    o.on_peer_down = on_peer_down;
    o.ud = n;
    o.max_frame = 16u * 1024 * 1024;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = (int)(2 * n->cfg.heartbeat_ms); /* a restarted member is heard from soon */
    o.dial_timeout_ms = 1000;
    rc = net_peer_transport_new(&o, &n->peers);
    if (rc) {
        snprintf(err, errlen, "peer transport: %s", net_strerror(rc));
        return -1;
    }
    for (i = 0; i < n->cfg.listen_peer_urls.n; i++)
        if (net_peer_listen(n->peers, n->cfg.listen_peer_urls.u[i].raw, err, errlen) != 0)
            return -1;
    n->snap_ev = evtimer_new(n->base, node_snap_pump, n);
    n->snap_in.fd = -1;
    node_peers_sync(n);
    return 0;
}

/* A peer that left the cluster is told so, and forgotten a little later (removing it at
 * once would drop the notice from its queue). */
#define FORGET_AFTER_MS 1000

void node_peers_sync(struct node *n)
{
    int64_t now = node_now_ms();
    int i, k;
    for (k = 0; k < n->n_peer_ids; k++) {
        if (node_member_find(n, n->peer_ids[k])) {
            n->peer_gone_ms[k] = 0;
            continue;
        }
        if (!n->peer_gone_ms[k]) {
            Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
            Plinthraftpb__Removed r = PLINTHRAFTPB__REMOVED__INIT;
            r.id = n->peer_ids[k];
            f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_REMOVED;
            f.removed = &r;
            send_frame(n, n->peer_ids[k], &f);
            n->peer_gone_ms[k] = now;
        } else if (now - n->peer_gone_ms[k] >= FORGET_AFTER_MS) {
            net_peer_remove(n->peers, n->peer_ids[k]);
            n->n_peer_ids--;
            n->peer_ids[k] = n->peer_ids[n->n_peer_ids];
            n->peer_gone_ms[k] = n->peer_gone_ms[n->n_peer_ids];
            n->peer_url_idx[k] = n->peer_url_idx[n->n_peer_ids];
            n->peer_down_ms[k] = n->peer_down_ms[n->n_peer_ids];
            memcpy(n->peer_url[k], n->peer_url[n->n_peer_ids], sizeof n->peer_url[k]);
            k--;
        }
    }
    for (i = 0; i < n->members.n; i++) {
        const struct node_member *m = &n->members.m[i];
        int u;
        if (m->id == n->id || m->peer_urls.n == 0)
            continue;
        for (k = 0; k < n->n_peer_ids; k++)
            if (n->peer_ids[k] == m->id)
                break;
        if (k == n->n_peer_ids) {
            if (n->n_peer_ids == RAFT_MAX_MEMBERS)
                continue;
            n->peer_gone_ms[k] = 0;
            n->peer_url_idx[k] = 0;
            n->peer_down_ms[k] = 0;
            n->peer_url[k][0] = 0;
            n->peer_ids[n->n_peer_ids++] = m->id;
        }
        /* A member may have several peer URLs: dial one, and move to the next when it
         * has not connected for a second (etcd's peers try every URL). The URL in use
         * stays in use while it is in the member's list (a MemberUpdate that adds URLs
         * must not cut a working connection). */
        for (u = 0; u < m->peer_urls.n; u++)
            if (!strcmp(m->peer_urls.u[u].raw, n->peer_url[k])) {
                n->peer_url_idx[k] = (unsigned)u;
                break;
            }
        if (net_peer_connected(n->peers, m->id)) {
            n->peer_down_ms[k] = 0;
        } else if (!n->peer_down_ms[k]) {
            n->peer_down_ms[k] = now;
        } else if (m->peer_urls.n > 1 && now - n->peer_down_ms[k] >= 1000) {
            n->peer_url_idx[k]++;
            n->peer_down_ms[k] = now;
        }
        u = (int)(n->peer_url_idx[k] % (unsigned)m->peer_urls.n);
        if (net_peer_add(n->peers, m->id, m->peer_urls.u[u].raw) == 0)
            memcpy(n->peer_url[k], m->peer_urls.u[u].raw, sizeof n->peer_url[k]); /* same size */
    }
}

void node_peers_free(struct node *n)
{
    n->stopping = true;
    node_release_votes(n); /* frees what is held */
    while (n->snaps_out) {
        struct snap_out *s = n->snaps_out;
        n->snaps_out = s->next;
        node_snap_out_free(s);
    }
    node_snap_in_reset(n);
    if (n->snap_ev)
        event_free(n->snap_ev);
    n->snap_ev = NULL;
    net_peer_transport_free(n->peers);
    n->peers = NULL;
}

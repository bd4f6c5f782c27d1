/* sim.c — deterministic simulation of a plinth Raft cluster: one seed drives a lossy,
 * duplicating, reordering, partitionable network, crashes that lose unpersisted state,
 * restarts, membership changes and leader transfers; safety is checked after every
 * step and a liveness phase demands progress once the faults heal.
 *
 *   sim --seeds N [--random]   run seeds 1..N (or N seeds from a random base)
 *   sim --seed S               replay one seed with a trace */
#include "sim.h"
#include "tests/lib/testlib.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 10
#define FAULT_MS 30000
#define LIVE_MS 4000
#define SPARES 3

struct netmsg {
    uint64_t at, seq;
    struct raft_msg *m;
    int from_inc;
    bool has_snap;
    struct sim_sm snap;
    bool report_fail; /* a dropped snapshot: tell the sender at `at` */
};

struct pending_read {
    uint64_t ctx;
    raft_index_t required;
};

/* What the seeds exercised, summed over a run. */
static struct {
    uint64_t leaders, snapshots, conf_applied, crashes, reads, commits, transfers;
} stats;

struct world {
    uint64_t rng;
    uint64_t seed;
    int n_init, n_pool;
    struct sim_node nodes[SIM_MAX_NODES];
    bool link[SIM_MAX_NODES][SIM_MAX_NODES];
    unsigned drop_pct, dup_pct, lat_max;
    bool check_quorum;
    size_t max_size, max_inflight;
    struct checker *chk;
    uint64_t now, msg_seq;
    bool trace, failed, faults;
    struct netmsg *net;
    size_t n_net, cap_net;
    struct pending_read reads[64];
    size_t n_reads;
    uint64_t read_ctr, prop_ctr;
    bool spare_used[SIM_MAX_NODES];
    bool live_done;
};

static uint64_t wrand(struct world *w)
{
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned pct(struct world *w) { return (unsigned)(wrand(w) % 1000); } /* per mille */

#define TRACE(w, ...)                                                  \
    do {                                                               \
        if ((w)->trace) {                                              \
            printf("t=%-6llu ", (unsigned long long)(w)->now);         \
            printf(__VA_ARGS__);                                       \
            printf("\n");                                              \
        }                                                              \
    } while (0)

static void sim_fail(struct world *w, const char *what)
{
    if (!w->failed)
        fprintf(stderr, "seed %llu t=%llu: %s\n", (unsigned long long)w->seed,
                (unsigned long long)w->now, what);
    w->failed = true;
}

static struct sim_node *node(struct world *w, raft_id_t id)
{
    if (id == 0 || id > (raft_id_t)w->n_pool)
        return NULL;
    return &w->nodes[id - 1];
}

/* ---- the node's disk ---- */

static void disk_truncate(struct sim_node *n, raft_index_t from)
{
    while (n->n_log && n->log[n->n_log - 1].index >= from) {
        free(n->log[n->n_log - 1].data);
        n->n_log--;
    }
}

static void disk_append(struct sim_node *n, const struct raft_entry *e)
{
    if (n->n_log == n->cap_log) {
        n->cap_log = n->cap_log ? 2 * n->cap_log : 64;
        n->log = realloc(n->log, n->cap_log * sizeof(*n->log));
    }
    struct sim_entry *d = &n->log[n->n_log++];
    d->term = e->term;
    d->index = e->index;
    d->type = e->type;
    d->len = e->len;
    d->data = e->len ? malloc(e->len) : NULL;
    if (e->len)
        memcpy(d->data, e->data, e->len);
}

static void disk_compact(struct sim_node *n, raft_index_t upto, raft_term_t term)
{
    size_t k = 0;
    while (k < n->n_log && n->log[k].index <= upto)
        free(n->log[k++].data);
    memmove(n->log, n->log + k, (n->n_log - k) * sizeof(*n->log));
    n->n_log -= k;
    n->log_start = upto;
    n->log_start_term = term;
}

/* ---- network ---- */

static void net_push(struct world *w, struct netmsg nm)
{
    if (w->n_net == w->cap_net) {
        w->cap_net = w->cap_net ? 2 * w->cap_net : 256;
        w->net = realloc(w->net, w->cap_net * sizeof(*w->net));
    }
    nm.seq = w->msg_seq++;
    w->net[w->n_net++] = nm;
}

static void net_send(struct world *w, struct sim_node *from, const struct raft_msg *m)
{
    struct sim_node *to = node(w, m->to);
    if (!to)
        return;
    bool snap = m->type == RAFT_MSG_SNAPSHOT;
    struct netmsg nm = {.from_inc = from->incarnation};
    if (!w->link[from->id - 1][m->to - 1] || pct(w) < w->drop_pct) {
        TRACE(w, "n%llu -x-> n%llu %s dropped", (unsigned long long)from->id,
              (unsigned long long)m->to, raft_msg_type_name(m->type));
        if (snap) {
            nm.at = w->now + 1;
            nm.report_fail = true;
            nm.m = raft_msg_clone(m);
            net_push(w, nm);
        }
        return;
    }
    if (snap) {
        if (from->sm.index != m->snapshot->index)
            sim_fail(w, "snapshot metadata does not describe the sender's applied state");
        nm.has_snap = true;
        nm.snap = from->sm;
    }
    int copies = pct(w) < w->dup_pct ? 2 : 1;
    for (int i = 0; i < copies; i++) {
        nm.m = raft_msg_clone(m);
        nm.at = w->now + 1 + wrand(w) % w->lat_max;
        net_push(w, nm);
    }
}

/* ---- nodes ---- */

static void node_start(struct world *w, struct sim_node *n)
{
    struct raft_config cfg = {
        .id = n->id, .election_tick = 10, .heartbeat_tick = 1, .pre_vote = true,
        .check_quorum = w->check_quorum, .max_inflight_msgs = w->max_inflight,
        .max_size_per_msg = w->max_size, .seed = wrand(w),
    };
    struct raft_restore rs;
    struct raft_entry *ents = NULL;
    raft_id_t v[SIM_MAX_NODES];
    if (n->persisted) {
        ents = calloc(n->n_log + 1, sizeof(*ents));
        for (size_t i = 0; i < n->n_log; i++) {
            ents[i].term = n->log[i].term;
            ents[i].index = n->log[i].index;
            ents[i].type = n->log[i].type;
            ents[i].data = n->log[i].data;
            ents[i].len = n->log[i].len;
        }
        rs = (struct raft_restore){
            .hard_state = n->hs, .log_start = n->log_start,
            .log_start_term = n->log_start_term, .applied = n->sm.index, .conf = n->conf,
            .entries = ents, .n_entries = n->n_log,
        };
        cfg.restore = &rs;
    } else {
        size_t nv = 0;
        if ((int)n->id <= w->n_init)
            for (int i = 1; i <= w->n_init; i++)
                v[nv++] = (raft_id_t)i;
        cfg.voters = v;
        cfg.n_voters = nv;
        n->exists = true;
    }
    int rc = raft_new(&cfg, &n->r);
    free(ents);
    if (rc) {
        sim_fail(w, "raft_new failed on restart");
        return;
    }
    n->up = true;
    n->incarnation++;
    n->has_pending_snap = false;
    TRACE(w, "n%llu starts (term %llu, commit %llu, applied %llu, log %llu..%llu)",
          (unsigned long long)n->id, (unsigned long long)n->hs.term,
          (unsigned long long)n->hs.commit, (unsigned long long)n->sm.index,
          (unsigned long long)n->log_start + 1, (unsigned long long)n->log_start + n->n_log);
}

static void node_crash(struct world *w, struct sim_node *n)
{
    if (!n->up)
        return;
    TRACE(w, "n%llu CRASH", (unsigned long long)n->id);
    stats.crashes++;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    /* Every peer's connection to it closes. */
    for (int i = 0; i < w->n_pool; i++)
        if (w->nodes[i].up)
            raft_leader_conn_lost(w->nodes[i].r, n->id);
}

static void apply_reads(struct world *w, struct sim_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_reads; i++) {
        const struct raft_read_state *s = &rd->reads[i];
        uint64_t ctx = 0;
        if (s->ctx.len == sizeof(ctx))
            memcpy(&ctx, s->ctx.base, sizeof(ctx));
        if (s->index > n->sm.index)
            sim_fail(w, "read state released before its index was applied");
        for (size_t j = 0; j < w->n_reads; j++)
            if (w->reads[j].ctx == ctx) {
                TRACE(w, "n%llu read %llu served at index %llu", (unsigned long long)n->id,
                      (unsigned long long)ctx, (unsigned long long)s->index);
                stats.reads++;
                if (check_read(w->chk, n->id, s->index, w->reads[j].required))
                    sim_fail(w, "linearizable read violated");
                w->reads[j] = w->reads[--w->n_reads];
                break;
            }
    }
}

/* One ready batch, in the order the driver contract gives. */
static void node_ready(struct world *w, struct sim_node *n)
{
    struct raft_ready rd;
    if (raft_ready_get(n->r, &rd)) {
        sim_fail(w, "raft_ready_get failed");
        return;
    }
    raft_term_t term = rd.hard_state.term;
    if (rd.soft_state_changed) {
        TRACE(w, "n%llu is %s, leader n%llu, term %llu", (unsigned long long)n->id,
              raft_role_name(rd.soft_state.role), (unsigned long long)rd.soft_state.leader,
              (unsigned long long)term);
        if (rd.soft_state.role == RAFT_LEADER) {
            stats.leaders++;
            /* short-lived leaders leave divergent logs behind (Figure 8's setting) */
            if (w->faults && pct(w) < 400)
                n->crash_at = w->now + 2 + wrand(w) % 25;
            if (check_leader(w->chk, n->id, raft_term(n->r)) ||
                check_leader_complete(w->chk, n->r))
                sim_fail(w, "leader safety violated");
        }
    }
    for (size_t i = 0; i < rd.n_entries; i++) {
        const struct raft_entry *e = &rd.entries[i];
        raft_term_t prev = 0;
        if (i)
            prev = rd.entries[i - 1].term;
        else if (raft_term_at(n->r, e->index - 1, &prev))
            sim_fail(w, "previous entry's term unknown");
        if (check_new_entry(w->chk, n->id, e, prev))
            sim_fail(w, "log matching violated");
    }
    /* 1. messages that need no durability (snapshots after applying, below) */
    for (size_t i = 0; i < rd.n_msgs; i++)
        if (rd.msgs[i].type != RAFT_MSG_SNAPSHOT)
            net_send(w, n, &rd.msgs[i]);
    if (w->faults && pct(w) < 2) {
        /* crash in the middle of the batch: nothing of it reaches the disk */
        raft_advance(n->r, &rd);
        node_crash(w, n);
        return;
    }
    /* 2. persist and apply, atomically */
    if (rd.snapshot) {
        if (!n->has_pending_snap || n->pending_snap.index != rd.snapshot->index) {
            sim_fail(w, "snapshot to install does not match the data received");
        } else {
            disk_truncate(n, 0);
            n->log_start = rd.snapshot->index;
            n->log_start_term = rd.snapshot->term;
            n->sm = n->pending_snap;
            stats.snapshots++;
            TRACE(w, "n%llu installs snapshot at %llu", (unsigned long long)n->id,
                  (unsigned long long)rd.snapshot->index);
        }
        n->has_pending_snap = false;
    }
    if (rd.n_entries) {
        disk_truncate(n, rd.entries[0].index);
        for (size_t i = 0; i < rd.n_entries; i++)
            disk_append(n, &rd.entries[i]);
    }
    if (rd.hard_state_changed) {
        /* what is on disk only moves forward: a term never goes back, a vote cast in a
         * term is never changed, a commit index never shrinks */
        const struct raft_hard_state *o = &n->hs, *h = &rd.hard_state;
        if (h->term < o->term || (h->term == o->term && o->vote != RAFT_NONE && h->vote != o->vote) ||
            h->commit < o->commit)
            sim_fail(w, "persisted hard state went backwards");
        n->hs = rd.hard_state;
    }
    for (size_t i = 0; i < rd.n_committed; i++) {
        const struct raft_entry *e = &rd.committed[i];
        if (e->index != n->sm.index + 1) {
            sim_fail(w, "committed entries handed out with a gap");
            break;
        }
        if (check_applied(w->chk, n->id, e, term))
            sim_fail(w, "state machine safety violated");
        stats.commits++;
        if (e->type == RAFT_ENTRY_CONF_CHANGE)
            stats.conf_applied++;
        if (e->type == RAFT_ENTRY_NORMAL) {
            n->sm.hash = check_hash(e->data, e->len, n->sm.hash);
            if (e->len >= 4 && memcmp(e->data, "live", 4) == 0)
                w->live_done = true;
        }
        n->sm.index = e->index;
    }
    if (rd.conf_state_changed)
        n->conf = rd.conf_state;
    n->persisted = true;
    /* 3. messages that promise durability; snapshots of the applied state */
    for (size_t i = 0; i < rd.n_msgs; i++)
        if (rd.msgs[i].type == RAFT_MSG_SNAPSHOT)
            net_send(w, n, &rd.msgs[i]);
    for (size_t i = 0; i < rd.n_msgs_after_persist; i++)
        net_send(w, n, &rd.msgs_after_persist[i]);
    apply_reads(w, n, &rd);
    raft_advance(n->r, &rd);

    /* compaction keeps the log short so snapshots happen */
    if (n->sm.index > n->log_start + 40 && pct(w) < 300) {
        raft_index_t c = n->sm.index - 10;
        raft_term_t t;
        if (raft_compact(n->r, c) == 0 && raft_term_at(n->r, c, &t) == 0)
            disk_compact(n, c, t);
    }
}

static void node_drain(struct world *w, struct sim_node *n)
{
    for (int guard = 0; n->up && raft_has_ready(n->r) && guard < 100; guard++)
        node_ready(w, n);
}

static void deliver(struct world *w, struct netmsg *nm)
{
    struct raft_msg *m = nm->m;
    struct sim_node *from = node(w, m->from);
    struct sim_node *to = node(w, m->to);
    if (nm->report_fail) {
        if (from && from->up && from->incarnation == nm->from_inc)
            raft_report_snapshot(from->r, m->to, false);
        return;
    }
    if (!to || !to->up)
        return;
    if (!w->link[m->from - 1][m->to - 1])
        return; /* cut while in flight */
    if (w->trace)
        TRACE(w, "n%llu -> n%llu %s term %llu idx %llu lt %llu n %zu commit %llu%s",
              (unsigned long long)m->from, (unsigned long long)m->to,
              raft_msg_type_name(m->type), (unsigned long long)m->term,
              (unsigned long long)m->index, (unsigned long long)m->log_term, m->n_entries,
              (unsigned long long)m->commit, m->reject ? " reject" : "");
    if (nm->has_snap) {
        to->has_pending_snap = true;
        to->pending_snap = nm->snap;
    }
    if (raft_step(to->r, m) && m->type != RAFT_MSG_SNAPSHOT)
        sim_fail(w, "raft_step refused a well-formed message");
    node_drain(w, to);
    if (nm->has_snap && from && from->up && from->incarnation == nm->from_inc) {
        raft_report_snapshot(from->r, m->to, true);
        node_drain(w, from);
    }
}

static void net_step(struct world *w)
{
    /* deliver everything due now, in (at, seq) order */
    for (;;) {
        size_t best = w->n_net;
        for (size_t i = 0; i < w->n_net; i++)
            if (w->net[i].at <= w->now &&
                (best == w->n_net || w->net[i].at < w->net[best].at ||
                 (w->net[i].at == w->net[best].at && w->net[i].seq < w->net[best].seq)))
                best = i;
        if (best == w->n_net)
            return;
        struct netmsg nm = w->net[best];
        w->net[best] = w->net[--w->n_net];
        deliver(w, &nm);
        raft_msg_free(nm.m);
        if (w->failed)
            return;
    }
}

/* ---- workload and faults ---- */

static struct sim_node *leader(struct world *w)
{
    struct sim_node *best = NULL;
    for (int i = 0; i < w->n_pool; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->up && raft_role(n->r) == RAFT_LEADER &&
            (!best || raft_term(n->r) > raft_term(best->r)))
            best = n;
    }
    return best;
}

static struct sim_node *random_up(struct world *w)
{
    int k = (int)(wrand(w) % (uint64_t)w->n_pool);
    for (int i = 0; i < w->n_pool; i++) {
        struct sim_node *n = &w->nodes[(k + i) % w->n_pool];
        if (n->up)
            return n;
    }
    return NULL;
}

static void propose(struct world *w, const char *tag)
{
    struct sim_node *l = leader(w);
    if (!l)
        return;
    /* clients back off while the leader cannot commit (bounded uncommitted tail) */
    if (raft_last_index(l->r) > raft_commit_index(l->r) + 48 && strcmp(tag, "live"))
        return;
    char buf[64];
    int len = snprintf(buf, sizeof(buf), "%s-%llu-%llu", tag, (unsigned long long)w->seed,
                       (unsigned long long)++w->prop_ctr);
    size_t n = 1 + wrand(w) % 3;
    struct raft_buf b[3];
    for (size_t i = 0; i < n; i++)
        b[i] = (struct raft_buf){buf, (size_t)len};
    if (raft_propose(l->r, b, n, NULL) == 0)
        TRACE(w, "n%llu propose %s x%zu", (unsigned long long)l->id, buf, n);
    node_drain(w, l);
}

static void conf_change(struct world *w)
{
    struct sim_node *l = leader(w);
    if (!l)
        return;
    struct raft_conf_state c;
    raft_conf_state(l->r, &c);
    struct raft_conf_change cc = {.context = {"peer-url", 8}};
    unsigned k = pct(w);
    raft_id_t spare = 0;
    for (int i = w->n_init; i < w->n_pool; i++)
        if (!w->spare_used[i]) {
            spare = (raft_id_t)i + 1;
            break;
        }
    if (k < 300 && spare) {
        cc.type = RAFT_CC_ADD_LEARNER;
        cc.node = spare;
    } else if (k < 450 && spare) {
        cc.type = RAFT_CC_ADD_VOTER;
        cc.node = spare;
    } else if (k < 750 && c.n_learners) {
        cc.type = RAFT_CC_PROMOTE;
        cc.node = c.learners[wrand(w) % c.n_learners];
    } else if (c.n_voters > 3) {
        cc.type = RAFT_CC_REMOVE;
        cc.node = c.voters[wrand(w) % c.n_voters];
    } else {
        return;
    }
    int rc = raft_propose_conf_change(l->r, &cc, NULL);
    TRACE(w, "n%llu conf change type %d node %llu: %s", (unsigned long long)l->id, cc.type,
          (unsigned long long)cc.node, raft_strerror(rc));
    if (rc == 0 && (cc.type == RAFT_CC_ADD_LEARNER || cc.type == RAFT_CC_ADD_VOTER)) {
        w->spare_used[cc.node - 1] = true;
        node_start(w, node(w, cc.node));
    }
    node_drain(w, l);
}

static void set_link(struct world *w, int a, int b, bool up)
{
    if (w->link[a][b] == up)
        return;
    w->link[a][b] = up;
    if (!up) {
        /* the stream between them closes: both ends see it */
        struct sim_node *na = &w->nodes[a], *nb = &w->nodes[b];
        if (na->up)
            raft_leader_conn_lost(na->r, nb->id);
        if (nb->up)
            raft_leader_conn_lost(nb->r, na->id);
    }
}

static void fault(struct world *w)
{
    unsigned k = pct(w);
    struct sim_node *n;
    if (k < 300) {
        propose(w, "p");
    } else if (k < 350) {
        if ((n = random_up(w)) != NULL) {
            uint64_t ctx = ++w->read_ctr;
            if (w->n_reads < 64 && raft_read_index(n->r, (struct raft_buf){&ctx, sizeof(ctx)}) == 0) {
                w->reads[w->n_reads].ctx = ctx;
                w->reads[w->n_reads].required = check_max_committed(w->chk);
                w->n_reads++;
                TRACE(w, "n%llu read %llu requested", (unsigned long long)n->id,
                      (unsigned long long)ctx);
            }
        }
    } else if (k < 356) {
        if ((n = random_up(w)) != NULL)
            node_crash(w, n);
    } else if (k < 362) {
        if ((n = leader(w)) != NULL)
            node_crash(w, n);
    } else if (k < 390) {
        int i = (int)(wrand(w) % (uint64_t)w->n_pool);
        if (w->nodes[i].exists && !w->nodes[i].up)
            node_start(w, &w->nodes[i]);
    } else if (k < 400) {
        int a = (int)(wrand(w) % (uint64_t)w->n_pool), b = (int)(wrand(w) % (uint64_t)w->n_pool);
        if (a != b) {
            bool both = pct(w) < 500;
            TRACE(w, "cut n%d -> n%d%s", a + 1, b + 1, both ? " both ways" : "");
            set_link(w, a, b, false);
            if (both)
                set_link(w, b, a, false);
        }
    } else if (k < 402) {
        /* isolate one node */
        int a = (int)(wrand(w) % (uint64_t)w->n_pool);
        TRACE(w, "isolate n%d", a + 1);
        for (int b = 0; b < w->n_pool; b++)
            if (b != a) {
                set_link(w, a, b, false);
                set_link(w, b, a, false);
            }
    } else if (k < 415) {
        TRACE(w, "heal");
        for (int a = 0; a < w->n_pool; a++)
            for (int b = 0; b < w->n_pool; b++)
                w->link[a][b] = true;
    } else if (k < 425) {
        conf_change(w);
    } else if (k < 432) {
        struct sim_node *l = leader(w);
        if (l) {
            struct raft_conf_state c;
            raft_conf_state(l->r, &c);
            raft_id_t to = c.voters[wrand(w) % c.n_voters];
            int rc = raft_transfer_leader(l->r, to);
            stats.transfers += rc == 0;
            TRACE(w, "n%llu transfer leadership to n%llu: %s", (unsigned long long)l->id,
                  (unsigned long long)to, raft_strerror(rc));
            node_drain(w, l);
        }
    } else if (k < 442) {
        /* a flaky link: one follower's connection to its leader drops */
        if ((n = random_up(w)) != NULL && raft_leader(n->r) != RAFT_NONE &&
            raft_leader(n->r) != n->id) {
            TRACE(w, "n%llu connection to leader n%llu lost", (unsigned long long)n->id,
                  (unsigned long long)raft_leader(n->r));
            raft_leader_conn_lost(n->r, raft_leader(n->r));
        }
    }
}

static void tick_all(struct world *w)
{
    for (int i = 0; i < w->n_pool; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->crash_at && n->crash_at <= w->now) {
            n->crash_at = 0;
            if (w->faults)
                node_crash(w, n);
        }
        if (n->up && (w->now + (uint64_t)n->tick_phase) % TICK_MS == 0) {
            raft_tick(n->r);
            node_drain(w, n);
        }
    }
}

/* Cheap checks after every step of simulated time. */
static void check_step(struct world *w)
{
    for (int i = 0; i < w->n_pool; i++) {
        struct sim_node *a = &w->nodes[i];
        if (!a->up)
            continue;
        if (raft_commit_index(a->r) > raft_last_index(a->r) ||
            raft_applied_index(a->r) > raft_commit_index(a->r))
            sim_fail(w, "commit or applied index beyond the log");
        if (raft_role(a->r) != RAFT_LEADER)
            continue;
        for (int j = i + 1; j < w->n_pool; j++) {
            struct sim_node *b = &w->nodes[j];
            if (b->up && raft_role(b->r) == RAFT_LEADER && raft_term(b->r) == raft_term(a->r))
                sim_fail(w, "two leaders in one term");
        }
    }
}

static void world_free(struct world *w)
{
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->r)
            raft_free(n->r);
        disk_truncate(n, 0);
        free(n->log);
    }
    for (size_t i = 0; i < w->n_net; i++)
        raft_msg_free(w->net[i].m);
    free(w->net);
}

/* Runs one seed; returns 0 if every check held. */
static int run_seed(uint64_t seed, bool trace, struct checker *chk, uint64_t *live_ms)
{
    struct world w;
    memset(&w, 0, sizeof(w));
    w.seed = seed;
    w.rng = seed * 0x9e3779b97f4a7c15ull + 1;
    w.trace = trace;
    w.chk = chk;
    check_reset(chk);
    w.n_init = seed % 2 ? 3 : 5;
    w.n_pool = w.n_init + SPARES;
    w.drop_pct = (unsigned)(wrand(&w) % 120);
    w.dup_pct = (unsigned)(wrand(&w) % 60);
    w.lat_max = 1 + (unsigned)(wrand(&w) % 12);
    w.check_quorum = wrand(&w) % 4 != 0;
    w.max_size = wrand(&w) % 4 ? 1 + wrand(&w) % 100 : 1; /* 1: one entry per append */
    w.max_inflight = 1 + wrand(&w) % 8;
    w.faults = true;
    for (int a = 0; a < w.n_pool; a++) {
        for (int b = 0; b < w.n_pool; b++)
            w.link[a][b] = true;
        w.nodes[a].id = (raft_id_t)a + 1;
        w.nodes[a].tick_phase = (int)(wrand(&w) % TICK_MS);
    }
    TRACE(&w, "seed %llu: %d nodes, drop %u/1000, dup %u/1000, latency 1..%u ms, "
          "check_quorum %d", (unsigned long long)seed, w.n_init, w.drop_pct, w.dup_pct,
          w.lat_max, w.check_quorum);
    for (int i = 0; i < w.n_init; i++)
        node_start(&w, &w.nodes[i]);

    for (w.now = 0; w.now < FAULT_MS && !w.failed; w.now++) {
        if (w.now % 5 == 0)
            fault(&w);
        net_step(&w);
        tick_all(&w);
        check_step(&w);
    }
    /* liveness: heal everything, restart everyone, demand a commit */
    uint64_t heal = w.now;
    w.faults = false;
    w.drop_pct = w.dup_pct = 0;
    for (int a = 0; a < w.n_pool; a++)
        for (int b = 0; b < w.n_pool; b++)
            w.link[a][b] = true;
    for (int i = 0; i < w.n_pool; i++)
        if (w.nodes[i].exists && !w.nodes[i].up)
            node_start(&w, &w.nodes[i]);
    TRACE(&w, "liveness phase");
    w.live_done = false;
    for (; w.now < heal + LIVE_MS && !w.failed && !w.live_done; w.now++) {
        if (w.now % 50 == 0)
            propose(&w, "live");
        net_step(&w);
        tick_all(&w);
        check_step(&w);
    }
    if (!w.failed && !w.live_done)
        sim_fail(&w, "liveness: no proposal committed after the faults healed");
    *live_ms = w.now - heal;
    bool failed = w.failed;
    world_free(&w);
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    uint64_t seeds = 100, one = 0, base = 1;
    bool random = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            one = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--random"))
            random = true;
        else {
            fprintf(stderr, "usage: sim --seeds N [--random] | --seed S\n");
            return 2;
        }
    }
    struct checker *chk = check_new();
    int passed = 0, failed = 0;
    uint64_t live_max = 0, live_seed = 0;
    if (one) {
        uint64_t lm;
        int rc = run_seed(one, true, chk, &lm);
        printf("seed %llu: %s (liveness after %llu ms)\n", (unsigned long long)one,
               rc ? "FAILED" : "ok", (unsigned long long)lm);
        rc ? failed++ : passed++;
    } else {
        if (random)
            base = (uint64_t)time(NULL) * 1000;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (uint64_t s = base; s < base + seeds; s++) {
            uint64_t lm;
            if (run_seed(s, false, chk, &lm)) {
                failed++;
                fprintf(stderr, "FAILED seed %llu; replay: make sim SEED=%llu\n",
                        (unsigned long long)s, (unsigned long long)s);
            } else {
                passed++;
            }
            if (lm > live_max) {
                live_max = lm;
                live_seed = s;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("%llu seeds from %llu in %.1f s (%.0f seeds/s), worst time to commit after "
               "healing %llu ms (seed %llu)\n", (unsigned long long)seeds, (unsigned long long)base,
               el, (double)seeds / el, (unsigned long long)live_max,
               (unsigned long long)live_seed);
        printf("exercised: %llu leaders elected, %llu leader transfers asked, %llu crashes, "
               "%llu snapshots installed, %llu conf changes applied, %llu entries applied, "
               "%llu linearizable reads checked\n", (unsigned long long)stats.leaders,
               (unsigned long long)stats.transfers, (unsigned long long)stats.crashes,
               (unsigned long long)stats.snapshots, (unsigned long long)stats.conf_applied,
               (unsigned long long)stats.commits, (unsigned long long)stats.reads);
    }
    check_free(chk);
    test_result_line(passed, failed);
    return failed ? 1 : 0;
}

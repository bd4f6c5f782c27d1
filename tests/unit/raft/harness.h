/* harness.h — a small in-memory cluster for the Raft unit tests: nodes, a message queue
 * delivered on demand, link cuts, and a driver that follows the ready/advance contract. */
#ifndef PLINTH_RAFT_HARNESS_H
#define PLINTH_RAFT_HARNESS_H

#include "raft/raft.h"
#include "tests/lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#define H_MAX 8
#define H_QMAX 4096

struct h_node {
    struct raft *r;
    raft_id_t id;
    bool down;
    /* "disk" */
    struct raft_hard_state hs;
    raft_index_t applied;
    raft_index_t log_start;
    raft_term_t log_start_term;
    struct raft_entry log[1024]; /* data not kept: the tests only look at index/term */
    size_t n_log;
    struct raft_conf_state conf;
    /* observations */
    size_t n_reads;
    struct raft_read_state reads[64];
    uint64_t read_ctx[64];
    int snapshots_installed;
    raft_index_t snapshot_index;
};

struct h_cluster {
    int n;
    struct h_node nodes[H_MAX];
    struct raft_msg *q[H_QMAX];
    size_t nq;
    bool cut[H_MAX + 1][H_MAX + 1]; /* cut[from][to] */
    size_t sent[16];                /* per message type, over the whole test */
    size_t rejects;                 /* append rejections sent */
};

struct h_opts {
    int voters;
    int learners; /* ids voters+1 .. voters+learners */
    bool pre_vote, check_quorum;
    size_t max_inflight, max_size;
    int election_tick;
    uint64_t seed;
};

static inline void h_start(struct h_cluster *c, int i, const struct h_opts *o, bool restore)
{
    struct h_node *n = &c->nodes[i];
    raft_id_t v[H_MAX], l[H_MAX];
    for (int k = 0; k < o->voters; k++)
        v[k] = (raft_id_t)k + 1;
    for (int k = 0; k < o->learners; k++)
        l[k] = (raft_id_t)(o->voters + k) + 1;
    struct raft_config cfg = {
        .id = n->id, .voters = v, .n_voters = (size_t)o->voters, .learners = l,
        .n_learners = (size_t)o->learners, .election_tick = o->election_tick ? o->election_tick : 10,
        .heartbeat_tick = 1, .pre_vote = o->pre_vote, .check_quorum = o->check_quorum,
        .max_inflight_msgs = o->max_inflight, .max_size_per_msg = o->max_size,
        .seed = o->seed + (uint64_t)i,
    };
    struct raft_restore rs;
    if (restore) {
        rs = (struct raft_restore){.hard_state = n->hs, .log_start = n->log_start,
                                   .log_start_term = n->log_start_term,
                                   .applied = n->applied, .conf = n->conf,
                                   .entries = n->log, .n_entries = n->n_log};
        cfg.restore = &rs;
    }
    assert_int_equal(raft_new(&cfg, &n->r), 0);
    n->down = false;
}

static inline void h_init(struct h_cluster *c, const struct h_opts *o)
{
    memset(c, 0, sizeof(*c));
    c->n = o->voters + o->learners;
    for (int i = 0; i < c->n; i++) {
        c->nodes[i].id = (raft_id_t)i + 1;
        h_start(c, i, o, false);
        raft_conf_state(c->nodes[i].r, &c->nodes[i].conf);
    }
}

static inline void h_free(struct h_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        raft_free(c->nodes[i].r);
    for (size_t k = 0; k < c->nq; k++)
        raft_msg_free(c->q[k]);
    c->nq = 0;
}

static inline struct h_node *h_node(struct h_cluster *c, raft_id_t id)
{
    return &c->nodes[id - 1];
}

static inline void h_queue(struct h_cluster *c, const struct raft_msg *m)
{
    if (m->type < 16)
        c->sent[m->type]++;
    if (m->type == RAFT_MSG_APPEND_RESP && m->reject)
        c->rejects++;
    assert_true(c->nq < H_QMAX);
    c->q[c->nq++] = raft_msg_clone(m);
}

/* Processes every ready batch of node id, in the contract's order. */
static inline void h_ready(struct h_cluster *c, raft_id_t id)
{
    struct h_node *n = h_node(c, id);
    while (!n->down && raft_has_ready(n->r)) {
        struct raft_ready rd;
        assert_int_equal(raft_ready_get(n->r, &rd), 0);
        for (size_t i = 0; i < rd.n_msgs; i++)
            h_queue(c, &rd.msgs[i]);
        if (rd.snapshot) {
            n->n_log = 0;
            n->log_start = rd.snapshot->index;
            n->log_start_term = rd.snapshot->term;
            n->applied = rd.snapshot->index;
            n->snapshots_installed++;
            n->snapshot_index = rd.snapshot->index;
        }
        if (rd.n_entries) {
            while (n->n_log && n->log[n->n_log - 1].index >= rd.entries[0].index)
                n->n_log--;
            for (size_t i = 0; i < rd.n_entries; i++) {
                assert_true(n->n_log < 1024);
                n->log[n->n_log] = rd.entries[i];
                n->log[n->n_log].data = NULL;
                n->log[n->n_log].len = 0;
                n->n_log++;
            }
        }
        if (rd.hard_state_changed)
            n->hs = rd.hard_state;
        for (size_t i = 0; i < rd.n_committed; i++) {
            assert_int_equal(rd.committed[i].index, n->applied + 1);
            n->applied = rd.committed[i].index;
        }
        n->conf = rd.conf_state;
        for (size_t i = 0; i < rd.n_msgs_after_persist; i++)
            h_queue(c, &rd.msgs_after_persist[i]);
        for (size_t i = 0; i < rd.n_reads && n->n_reads < 64; i++) {
            n->reads[n->n_reads] = rd.reads[i];
            n->read_ctx[n->n_reads] = 0;
            if (rd.reads[i].ctx.len == 8)
                memcpy(&n->read_ctx[n->n_reads], rd.reads[i].ctx.base, 8);
            n->reads[n->n_reads].ctx.base = NULL;
            n->n_reads++;
        }
        raft_advance(n->r, &rd);
    }
}

static inline void h_ready_all(struct h_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        h_ready(c, (raft_id_t)i + 1);
}

/* Delivers queued messages (and what they cause) until the network is quiet or
 * `limit` messages went through. Cut links and down nodes drop. Returns the count. */
static inline size_t h_deliver(struct h_cluster *c, size_t limit)
{
    size_t done = 0;
    h_ready_all(c);
    while (c->nq && done < limit) {
        struct raft_msg *m = c->q[0];
        memmove(c->q, c->q + 1, (c->nq - 1) * sizeof(*c->q));
        c->nq--;
        struct h_node *to = h_node(c, m->to);
        if (m->to <= (raft_id_t)c->n && to->r && !c->cut[m->from][m->to] && !to->down && !h_node(c, m->from)->down) {
            raft_step(to->r, m);
            if (m->type == RAFT_MSG_SNAPSHOT)
                raft_report_snapshot(h_node(c, m->from)->r, m->to, true);
            h_ready(c, m->to);
            h_ready(c, m->from);
        }
        raft_msg_free(m);
        done++;
    }
    return done;
}

static inline void h_tick(struct h_cluster *c, raft_id_t id, int k)
{
    for (int i = 0; i < k; i++) {
        raft_tick(h_node(c, id)->r);
        h_ready(c, id);
    }
}

/* Ticks everyone (not down) k times, delivering after each round. */
static inline void h_run(struct h_cluster *c, int k)
{
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < c->n; j++)
            if (!c->nodes[j].down)
                h_tick(c, (raft_id_t)j + 1, 1);
        h_deliver(c, 100000);
    }
}

/* Makes `id` leader by letting only it time out. */
static inline void h_elect(struct h_cluster *c, raft_id_t id)
{
    for (int i = 0; i < 100 && raft_role(h_node(c, id)->r) != RAFT_LEADER; i++) {
        h_tick(c, id, 1);
        h_deliver(c, 100000);
    }
    assert_int_equal(raft_role(h_node(c, id)->r), RAFT_LEADER);
    h_deliver(c, 100000);
}

static inline void h_isolate(struct h_cluster *c, raft_id_t id, bool cut)
{
    for (int j = 1; j <= c->n; j++)
        if ((raft_id_t)j != id)
            c->cut[id][j] = c->cut[j][id] = cut;
}

static inline void h_crash(struct h_cluster *c, raft_id_t id)
{
    struct h_node *n = h_node(c, id);
    raft_free(n->r);
    n->r = NULL;
    n->down = true;
}

static inline int h_propose(struct h_cluster *c, raft_id_t id, const char *s)
{
    struct raft_buf b = {s, strlen(s)};
    int rc = raft_propose(h_node(c, id)->r, &b, 1, NULL);
    h_ready(c, id);
    return rc;
}

static inline int h_leaders(struct h_cluster *c, raft_id_t *which)
{
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (!c->nodes[i].down && raft_role(c->nodes[i].r) == RAFT_LEADER) {
            n++;
            if (which)
                *which = c->nodes[i].id;
        }
    return n;
}

#endif

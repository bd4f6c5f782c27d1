/* test_replication.c — log replication: the Figure 8 commitment rule, conflict
 * resolution with the backtracking hint, flow control, snapshots and compaction, and
 * the durability of acknowledgements. */
#include "harness.h"

/* A node restarted with a given log (terms[i] is the term of index i+1). */
static void set_log(struct h_cluster *c, raft_id_t id, raft_term_t term, const raft_term_t *terms,
                    size_t n, raft_index_t commit, const struct h_opts *o)
{
    struct h_node *nd = h_node(c, id);
    raft_free(nd->r);
    nd->n_log = n;
    for (size_t i = 0; i < n; i++)
        nd->log[i] = (struct raft_entry){.term = terms[i], .index = i + 1, .data = "x", .len = 1};
    nd->hs = (struct raft_hard_state){.term = term, .commit = commit};
    nd->applied = commit;
    h_start(c, (int)id - 1, o, true);
}

/* Figure 8: a leader must not commit an entry of an earlier term by counting replicas,
 * only through an entry of its own term (§5.4.2). */
static void figure8_no_commit_by_counting(void **state)
{
    (void)state;
    struct h_opts o = {.voters = 3, .max_size = 1, .max_inflight = 1, .seed = 5};
    struct h_cluster c;
    h_init(&c, &o);
    raft_term_t s1[] = {1, 2, 2};
    raft_term_t s23[] = {1};
    set_log(&c, 1, 2, s1, 3, 1, &o);
    set_log(&c, 2, 2, s23, 1, 1, &o);
    set_log(&c, 3, 2, s23, 1, 1, &o);
    /* node 1 wins term 3 (its log is longest), then its appends carry one entry each */
    c.cut[1][3] = c.cut[3][1] = true; /* only node 2 is reachable */
    for (int i = 0; i < 40 && raft_role(h_node(&c, 1)->r) == RAFT_FOLLOWER; i++)
        h_tick(&c, 1, 1);
    for (int i = 0; i < 50 && raft_role(h_node(&c, 1)->r) != RAFT_LEADER; i++)
        h_deliver(&c, 1);
    assert_int_equal(raft_role(h_node(&c, 1)->r), RAFT_LEADER);
    struct raft *l = h_node(&c, 1)->r;
    assert_int_equal(raft_term(l), 3);
    /* Deliver one message at a time and watch: once node 2 holds index 2 (term 2), a
     * majority (1 and 2) has it, but the commit index must stay at 1 until index 4
     * (the leader's term-3 entry) is on a majority too. */
    bool saw_old_on_majority = false;
    for (int i = 0; i < 200 && c.nq; i++) {
        h_deliver(&c, 1);
        struct raft_progress p;
        assert_int_equal(raft_progress(l, 2, &p), 0);
        if (p.match == 2) {
            saw_old_on_majority = true;
            assert_int_equal(raft_commit_index(l), 1);
        }
        if (p.match < 4)
            assert_true(raft_commit_index(l) < 2);
    }
    assert_true(saw_old_on_majority);
    assert_int_equal(raft_commit_index(l), 4);
    h_free(&c);
}

/* §5.3: a follower with a long divergent tail is repaired, and the conflict hint makes
 * it take a few round trips rather than one per entry. */
static void conflict_resolution_fast_backtracking(void **state)
{
    (void)state;
    struct h_opts o = {.voters = 3, .seed = 9};
    struct h_cluster c;
    h_init(&c, &o);
    raft_term_t good[60], bad[110];
    for (int i = 0; i < 60; i++)
        good[i] = i < 10 ? 1 : 3;
    for (int i = 0; i < 110; i++)
        bad[i] = i < 10 ? 1 : 2;
    set_log(&c, 1, 3, good, 60, 10, &o);
    set_log(&c, 2, 3, good, 60, 10, &o);
    set_log(&c, 3, 3, bad, 110, 10, &o);
    h_elect(&c, 1);
    h_run(&c, 3);
    struct h_node *f = h_node(&c, 3);
    assert_int_equal(raft_last_index(f->r), 61);
    raft_term_t t;
    assert_int_equal(raft_term_at(f->r, 60, &t), 0);
    assert_int_equal(t, 3);
    assert_int_equal(raft_term_at(f->r, 61, &t), 0);
    assert_int_equal(t, raft_term(h_node(&c, 1)->r));
    /* 100 conflicting entries, fixed in at most 3 rejections */
    assert_true(c.rejects <= 3);
    assert_int_equal(f->n_log, 61);
    assert_int_equal(f->log[59].term, 3); /* the caller truncated and re-appended */
    assert_int_equal(raft_commit_index(f->r), 61);
    h_free(&c);
}

/* Flow control: at most max_inflight appends unacknowledged per follower, and no append
 * carries more than max_size bytes unless it is a single entry. */
static void flow_control_bounds(void **state)
{
    (void)state;
    struct h_opts o = {.voters = 3, .max_inflight = 3, .max_size = 100, .seed = 2};
    struct h_cluster c;
    h_init(&c, &o);
    h_elect(&c, 1);
    h_run(&c, 2);
    struct raft *l = h_node(&c, 1)->r;
    char payload[40];
    memset(payload, 'x', sizeof(payload));
    struct raft_buf b[50];
    for (int i = 0; i < 50; i++)
        b[i] = (struct raft_buf){payload, sizeof(payload)};
    assert_int_equal(raft_propose(l, b, 50, NULL), 0);
    struct raft_ready rd;
    assert_int_equal(raft_ready_get(l, &rd), 0);
    size_t to2 = 0;
    for (size_t i = 0; i < rd.n_msgs; i++) {
        const struct raft_msg *m = &rd.msgs[i];
        assert_int_equal(m->type, RAFT_MSG_APPEND);
        size_t bytes = 0;
        for (size_t k = 0; k < m->n_entries; k++)
            bytes += m->entries[k].len;
        assert_true(bytes <= 100 || m->n_entries == 1);
        assert_true(m->n_entries >= 1);
        if (m->to == 2)
            to2++;
    }
    assert_int_equal(to2, 3); /* the window, not 25 */
    for (size_t i = 0; i < rd.n_msgs; i++)
        h_queue(&c, &rd.msgs[i]);
    raft_advance(l, &rd);
    h_deliver(&c, 100000);
    assert_int_equal(raft_commit_index(l), 51);
    assert_int_equal(h_node(&c, 2)->applied, 51);
    h_free(&c);
}

/* The leader counts its own log only after the caller persisted it; followers
 * acknowledge appends only after persisting. */
static void acks_wait_for_persistence(void **state)
{
    (void)state;
    raft_id_t v[] = {1};
    struct raft_config cfg = {.id = 1, .voters = v, .n_voters = 1, .election_tick = 10,
                              .heartbeat_tick = 1, .seed = 1};
    struct raft *r;
    assert_int_equal(raft_new(&cfg, &r), 0);
    for (int i = 0; i < 20 && raft_role(r) != RAFT_LEADER; i++)
        raft_tick(r);
    assert_int_equal(raft_role(r), RAFT_LEADER);
    struct raft_ready rd;
    raft_ready_get(r, &rd);
    assert_int_equal(rd.n_entries, 1);   /* the empty entry of the new term */
    assert_int_equal(rd.n_committed, 0); /* not durable yet: not committed */
    raft_advance(r, &rd);
    assert_int_equal(raft_commit_index(r), 1);
    raft_ready_get(r, &rd);
    assert_int_equal(rd.n_committed, 1);
    raft_advance(r, &rd);
    raft_free(r);

    /* follower side */
    struct h_opts o = {.voters = 3, .seed = 4};
    struct h_cluster c;
    h_init(&c, &o);
    struct raft_entry e = {.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL, .data = "a", .len = 1};
    struct raft_msg app = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 1,
                           .entries = &e, .n_entries = 1};
    struct raft *f = h_node(&c, 1)->r;
    assert_int_equal(raft_step(f, &app), 0);
    raft_ready_get(f, &rd);
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.n_msgs, 0);
    assert_int_equal(rd.n_msgs_after_persist, 1);
    assert_int_equal(rd.msgs_after_persist[0].type, RAFT_MSG_APPEND_RESP);
    assert_int_equal(rd.msgs_after_persist[0].index, 1);
    raft_advance(f, &rd);
    h_free(&c);
}

/* §7: a follower that needs compacted entries gets a snapshot describing the leader's
 * applied state, installs it, then continues with appends. */
static void snapshot_after_compaction(void **state)
{
    (void)state;
    struct h_opts o = {.voters = 3, .seed = 6};
    struct h_cluster c;
    h_init(&c, &o);
    h_elect(&c, 1);
    h_crash(&c, 3);
    for (int i = 0; i < 30; i++)
        assert_int_equal(h_propose(&c, 1, "v"), 0);
    h_deliver(&c, 100000);
    struct raft *l = h_node(&c, 1)->r;
    assert_int_equal(raft_commit_index(l), 31);
    assert_int_equal(raft_compact(l, 25), 0);
    assert_int_equal(raft_first_index(l), 26);
    raft_term_t t;
    assert_int_equal(raft_term_at(l, 10, &t), RAFT_ECOMPACTED);
    assert_int_equal(raft_compact(l, 40), RAFT_EUNAVAILABLE);
    /* node 3 comes back empty-handed (lost its disk) */
    struct h_node *n3 = h_node(&c, 3);
    memset(&n3->hs, 0, sizeof(n3->hs));
    n3->n_log = 0;
    n3->applied = 0;
    h_start(&c, 2, &o, true);
    h_run(&c, 5);
    assert_int_equal(n3->snapshots_installed, 1);
    assert_int_equal(n3->snapshot_index, 31);
    assert_int_equal(c.sent[RAFT_MSG_SNAPSHOT], 1);
    assert_true(h_propose(&c, 1, "after") == 0);
    h_deliver(&c, 100000);
    h_run(&c, 2);
    assert_int_equal(n3->applied, 32);
    assert_int_equal(raft_first_index(n3->r), 32);
    h_free(&c);
}

/* A restarted node hands out (applied, commit] again and keeps its term and vote. */
static void restart_redelivers_committed(void **state)
{
    (void)state;
    struct h_opts o = {.voters = 3, .seed = 8};
    struct h_cluster c;
    h_init(&c, &o);
    raft_term_t terms[] = {1, 1, 1, 1};
    struct h_node *n = h_node(&c, 2);
    raft_free(n->r);
    n->n_log = 4;
    for (int i = 0; i < 4; i++)
        n->log[i] = (struct raft_entry){.term = terms[i], .index = (raft_index_t)i + 1};
    n->hs = (struct raft_hard_state){.term = 1, .vote = 1, .commit = 3};
    n->applied = 1;
    h_start(&c, 1, &o, true);
    assert_int_equal(raft_term(n->r), 1);
    struct raft_hard_state hs;
    raft_hard_state(n->r, &hs);
    assert_int_equal(hs.vote, 1);
    struct raft_ready rd;
    raft_ready_get(n->r, &rd);
    assert_int_equal(rd.n_committed, 2);
    assert_int_equal(rd.committed[0].index, 2);
    assert_int_equal(rd.n_entries, 0); /* nothing new to persist */
    raft_advance(n->r, &rd);
    h_free(&c);
}

static void bad_input_rejected(void **state)
{
    (void)state;
    raft_id_t v[] = {1, 2};
    struct raft_config cfg = {.id = 0, .voters = v, .n_voters = 2};
    struct raft *r;
    assert_int_equal(raft_new(&cfg, &r), RAFT_EINVAL);
    cfg.id = 1;
    cfg.election_tick = 2;
    cfg.heartbeat_tick = 2;
    assert_int_equal(raft_new(&cfg, &r), RAFT_EINVAL);
    cfg.election_tick = 10;
    cfg.heartbeat_tick = 1;
    assert_int_equal(raft_new(&cfg, &r), 0);
    struct raft_msg m = {.type = 99, .from = 2, .to = 1, .term = 1};
    assert_int_equal(raft_step(r, &m), RAFT_EINVAL);
    m.type = RAFT_MSG_SNAPSHOT; /* without metadata */
    assert_int_equal(raft_step(r, &m), RAFT_EINVAL);
    struct raft_buf b = {"x", 1};
    assert_int_equal(raft_propose(r, &b, 1, NULL), RAFT_ENOTLEADER);
    assert_string_equal(raft_strerror(RAFT_ENOTLEADER), "raft: not leader");
    raft_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(figure8_no_commit_by_counting),
        cmocka_unit_test(conflict_resolution_fast_backtracking),
        cmocka_unit_test(flow_control_bounds),
        cmocka_unit_test(acks_wait_for_persistence),
        cmocka_unit_test(snapshot_after_compaction),
        cmocka_unit_test(restart_redelivers_committed),
        cmocka_unit_test(bad_input_rejected),
    };
    return PLINTH_RUN_TESTS("raft/replication", tests);
}

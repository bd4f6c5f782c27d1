/* test_membership.c — single-server membership changes, learners and promotion, and
 * members that join with no membership. */
#include "harness.h"

static const struct h_opts O3 = {.voters = 3, .pre_vote = true, .check_quorum = true, .seed = 3};

static int propose_cc(struct h_cluster *c, raft_id_t leader, enum raft_conf_change_type t,
                      raft_id_t node)
{
    struct raft_conf_change cc = {.type = t, .node = node, .context = {"http://n", 8}};
    int rc = raft_propose_conf_change(h_node(c, leader)->r, &cc, NULL);
    h_ready(c, leader);
    return rc;
}

static bool has(const raft_id_t *v, size_t n, raft_id_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

/* A learner receives the log, does not count for commitment and never campaigns;
 * once caught up it is promoted and then counts. */
static void learner_then_promote(void **state)
{
    (void)state;
    struct h_opts o = O3;
    o.learners = 1; /* node 4 starts as a learner */
    struct h_cluster c;
    h_init(&c, &o);
    h_elect(&c, 1);
    struct raft *l = h_node(&c, 1)->r;
    assert_int_equal(h_propose(&c, 1, "a"), 0);
    h_deliver(&c, 100000);
    assert_int_equal(h_node(&c, 4)->applied, raft_commit_index(l));
    struct raft_progress p;
    assert_int_equal(raft_progress(l, 4, &p), 0);
    assert_true(p.learner);
    assert_int_equal(p.match, raft_last_index(l)); /* ready for promotion */

    /* with two voters down, the learner does not make a quorum */
    h_crash(&c, 2);
    h_crash(&c, 3);
    raft_index_t before = raft_commit_index(l);
    assert_int_equal(h_propose(&c, 1, "b"), 0);
    h_deliver(&c, 100000);
    assert_int_equal(raft_commit_index(l), before);
    assert_int_equal(h_node(&c, 4)->n_log, raft_last_index(l)); /* but it has the entry */
    /* and it never campaigns */
    h_tick(&c, 4, 100);
    assert_int_equal(raft_role(h_node(&c, 4)->r), RAFT_FOLLOWER);
    h_free(&c);

    h_init(&c, &o);
    h_elect(&c, 1);
    l = h_node(&c, 1)->r;
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_PROMOTE, 4), 0);
    h_deliver(&c, 100000);
    struct raft_conf_state cs;
    raft_conf_state(l, &cs);
    assert_int_equal(cs.n_voters, 4);
    assert_int_equal(cs.n_learners, 0);
    raft_conf_state(h_node(&c, 4)->r, &cs);
    assert_true(has(cs.voters, cs.n_voters, 4));
    assert_int_equal(h_node(&c, 4)->conf.n_voters, 4); /* the ready batch reported it */
    /* now 4 voters: quorum 3, so with 2 and 3 down nothing commits, with 3 down it does */
    h_crash(&c, 3);
    before = raft_commit_index(l);
    assert_int_equal(h_propose(&c, 1, "c"), 0);
    h_deliver(&c, 100000);
    assert_int_equal(raft_commit_index(l), before + 1);
    h_free(&c);
}

/* One change at a time (§4.1), none before the leader's term entry is applied, and
 * invalid changes are refused. */
static void one_change_at_a_time(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    h_elect(&c, 1);
    assert_int_equal(propose_cc(&c, 2, RAFT_CC_ADD_LEARNER, 9), RAFT_ENOTLEADER);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_VOTER, 2), RAFT_EINVAL);  /* exists */
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_PROMOTE, 2), RAFT_EINVAL);    /* not learner */
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_REMOVE, 7), RAFT_EINVAL);     /* not member */
    c.cut[1][2] = c.cut[1][3] = true; /* nothing commits for now */
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_LEARNER, 4), 0);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_LEARNER, 5), RAFT_EBUSY);
    c.cut[1][2] = c.cut[1][3] = false;
    h_run(&c, 3);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_LEARNER, 5), 0);
    h_free(&c);

    /* a brand-new leader must first apply its own term's entry */
    h_init(&c, &O3);
    for (int i = 0; i < 40 && raft_role(h_node(&c, 1)->r) == RAFT_FOLLOWER; i++)
        h_tick(&c, 1, 1);
    for (int i = 0; i < 50 && raft_role(h_node(&c, 1)->r) != RAFT_LEADER; i++)
        h_deliver(&c, 1);
    assert_int_equal(raft_role(h_node(&c, 1)->r), RAFT_LEADER);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_LEARNER, 4), RAFT_EBUSY);
    h_deliver(&c, 100000);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_LEARNER, 4), 0);
    h_free(&c);
}

/* Removing a voter shrinks the quorum; a removed leader steps down and the rest elect. */
static void remove_members(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    h_elect(&c, 1);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_REMOVE, 3), 0);
    h_deliver(&c, 100000);
    struct raft *l = h_node(&c, 1)->r;
    struct raft_conf_state cs;
    raft_conf_state(l, &cs);
    assert_int_equal(cs.n_voters, 2);
    assert_false(has(cs.voters, cs.n_voters, 3));
    assert_int_equal(raft_progress(l, 3, &(struct raft_progress){0}), RAFT_EINVAL);

    /* the leader removes itself */
    h_run(&c, 2);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_REMOVE, 1), 0);
    h_deliver(&c, 100000);
    assert_int_equal(raft_role(l), RAFT_FOLLOWER);
    h_run(&c, 40);
    assert_int_equal(raft_role(h_node(&c, 2)->r), RAFT_LEADER);
    raft_conf_state(h_node(&c, 2)->r, &cs);
    assert_int_equal(cs.n_voters, 1);
    /* the last voter cannot be removed */
    assert_int_equal(propose_cc(&c, 2, RAFT_CC_REMOVE, 2), RAFT_EINVAL);
    h_free(&c);
}

/* A member that joins with no membership refuses appends and starts from a snapshot
 * carrying the membership, then follows the log. */
static void joining_member_starts_from_snapshot(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    c.n = 4;
    struct h_node *n4 = h_node(&c, 4);
    n4->id = 4;
    raft_id_t none[1];
    struct raft_config cfg = {.id = 4, .voters = none, .n_voters = 0, .election_tick = 10,
                              .heartbeat_tick = 1, .pre_vote = true, .seed = 4};
    assert_int_equal(raft_new(&cfg, &n4->r), 0);
    h_elect(&c, 1);
    for (int i = 0; i < 5; i++)
        h_propose(&c, 1, "x");
    h_deliver(&c, 100000);
    /* a member with no membership never campaigns */
    h_tick(&c, 4, 50);
    assert_int_equal(raft_role(n4->r), RAFT_FOLLOWER);
    assert_int_equal(propose_cc(&c, 1, RAFT_CC_ADD_VOTER, 4), 0);
    h_run(&c, 5);
    assert_int_equal(n4->snapshots_installed, 1);
    assert_int_equal(n4->conf.n_voters, 4);
    assert_int_equal(n4->applied, raft_commit_index(h_node(&c, 1)->r));
    h_propose(&c, 1, "y");
    h_run(&c, 2);
    assert_int_equal(n4->applied, raft_commit_index(h_node(&c, 1)->r));
    struct raft_conf_change cc;
    /* the change's context travels in the entry */
    const struct raft_entry *e = NULL;
    (void)e;
    unsigned char buf[9 + 8] = {RAFT_CC_ADD_VOTER, 4, 0, 0, 0, 0, 0, 0, 0, 'h', 't', 't', 'p', ':', '/', '/', 'n'};
    assert_int_equal(raft_conf_change_decode(buf, sizeof(buf), &cc), 0);
    assert_int_equal(cc.node, 4);
    assert_int_equal(cc.context.len, 8);
    assert_int_equal(raft_conf_change_decode(buf, 5, &cc), RAFT_EINVAL);
    h_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(learner_then_promote),
        cmocka_unit_test(one_change_at_a_time),
        cmocka_unit_test(remove_members),
        cmocka_unit_test(joining_member_starts_from_snapshot),
    };
    return PLINTH_RUN_TESTS("raft/membership", tests);
}

/* test_election.c — leader election: timeouts, vote restrictions, term handling,
 * pre-vote, check-quorum, the leader-lost hint and the durability of votes. */
#include "harness.h"

static const struct h_opts PV = {.voters = 3, .pre_vote = true, .check_quorum = true, .seed = 7};
static const struct h_opts PLAIN = {.voters = 3, .seed = 11};

static void elects_one_leader(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_run(&c, 40);
    raft_id_t l = 0;
    assert_int_equal(h_leaders(&c, &l), 1);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(raft_leader(h_node(&c, (raft_id_t)i)->r), l);
        /* pre-vote: the winning campaign costs exactly one term */
        assert_int_equal(raft_term(h_node(&c, (raft_id_t)i)->r), 1);
    }
    /* the new leader's empty entry commits everywhere (§5.4.2) */
    for (int i = 1; i <= 3; i++)
        assert_int_equal(h_node(&c, (raft_id_t)i)->applied, 1);
    h_free(&c);
}

/* §5.2: timeouts are drawn from [T, 2T). */
static void election_timeout_is_randomized(void **state)
{
    (void)state;
    int min = 1000, max = 0;
    bool seen[20] = {false};
    for (uint64_t seed = 1; seed <= 200; seed++) {
        raft_id_t v[] = {1, 2, 3};
        struct raft_config cfg = {.id = 1, .voters = v, .n_voters = 3, .election_tick = 10,
                                  .heartbeat_tick = 1, .seed = seed};
        struct raft *r;
        assert_int_equal(raft_new(&cfg, &r), 0);
        int t = 0;
        while (raft_role(r) == RAFT_FOLLOWER && t < 100) {
            raft_tick(r);
            t++;
        }
        assert_true(t >= 10 && t < 20);
        seen[t] = true;
        if (t < min)
            min = t;
        if (t > max)
            max = t;
        raft_free(r);
    }
    int distinct = 0;
    for (int i = 0; i < 20; i++)
        distinct += seen[i];
    assert_true(distinct >= 8); /* actually spread, not a constant */
    assert_int_equal(min, 10);
    assert_int_equal(max, 19);
}

static struct raft *restored(raft_id_t id, raft_term_t term, const raft_term_t *terms, size_t n,
                             bool pre_vote)
{
    static struct raft_entry ents[64];
    for (size_t i = 0; i < n; i++)
        ents[i] = (struct raft_entry){.term = terms[i], .index = i + 1, .type = RAFT_ENTRY_NORMAL};
    struct raft_restore rs = {.hard_state = {.term = term}, .entries = ents, .n_entries = n};
    rs.conf.n_voters = 3;
    rs.conf.voters[0] = 1;
    rs.conf.voters[1] = 2;
    rs.conf.voters[2] = 3;
    struct raft_config cfg = {.id = id, .restore = &rs, .election_tick = 10, .heartbeat_tick = 1,
                              .pre_vote = pre_vote, .seed = 1};
    struct raft *r;
    assert_int_equal(raft_new(&cfg, &r), 0);
    return r;
}

/* Takes the one response r produced; asserts it went out after persistence. */
static struct raft_msg take_resp(struct raft *r, bool after, struct raft_hard_state *hs)
{
    struct raft_ready rd;
    assert_int_equal(raft_ready_get(r, &rd), 0);
    struct raft_msg m;
    if (after) {
        assert_int_equal(rd.n_msgs, 0);
        assert_int_equal(rd.n_msgs_after_persist, 1);
        m = rd.msgs_after_persist[0];
    } else {
        assert_int_equal(rd.n_msgs_after_persist, 0);
        assert_int_equal(rd.n_msgs, 1);
        m = rd.msgs[0];
    }
    if (hs)
        *hs = rd.hard_state;
    raft_advance(r, &rd);
    return m;
}

/* §5.4.1: a vote goes only to a candidate whose log is at least as up to date. */
static void vote_requires_up_to_date_log(void **state)
{
    (void)state;
    raft_term_t terms[] = {1, 1, 2};
    struct raft *r = restored(1, 2, terms, 3, false);
    struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 3, .index = 9,
                         .log_term = 1};
    assert_int_equal(raft_step(r, &v), 0);
    struct raft_hard_state hs;
    struct raft_msg resp = take_resp(r, true, &hs);
    assert_int_equal(resp.type, RAFT_MSG_VOTE_RESP);
    assert_true(resp.reject);        /* longer log but older last term */
    assert_int_equal(hs.term, 3);    /* the term still moves (Figure 2) */
    assert_int_equal(hs.vote, RAFT_NONE);

    v.from = 3;
    v.index = 2;
    v.log_term = 2; /* same last term, shorter */
    raft_step(r, &v);
    resp = take_resp(r, true, NULL);
    assert_true(resp.reject);

    v.index = 3; /* equal: granted, and durable before it leaves */
    raft_step(r, &v);
    resp = take_resp(r, true, &hs);
    assert_false(resp.reject);
    assert_int_equal(hs.vote, 3);
    raft_free(r);
}

/* Figure 2: one vote per term; a repeated request from the same candidate is granted
 * again (the answer may have been lost). */
static void one_vote_per_term(void **state)
{
    (void)state;
    struct raft *r = restored(1, 1, NULL, 0, false);
    struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 2};
    raft_step(r, &v);
    assert_false(take_resp(r, true, NULL).reject);
    v.from = 3;
    raft_step(r, &v);
    assert_true(take_resp(r, true, NULL).reject);
    v.from = 2;
    raft_step(r, &v);
    assert_false(take_resp(r, true, NULL).reject);
    raft_free(r);
}

/* Figure 2 "all servers": a higher term turns a leader into a follower; a lower term is
 * refused with the current term. */
static void term_handling(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PLAIN);
    h_elect(&c, 1);
    struct raft *l = h_node(&c, 1)->r;
    raft_term_t t = raft_term(l);
    struct raft_msg hb = {.type = RAFT_MSG_HEARTBEAT, .from = 2, .to = 1, .term = t + 5};
    assert_int_equal(raft_step(l, &hb), 0);
    assert_int_equal(raft_role(l), RAFT_FOLLOWER);
    assert_int_equal(raft_term(l), t + 5);
    assert_int_equal(raft_leader(l), 2);

    /* stale append: ignored, no state change */
    struct raft_msg app = {.type = RAFT_MSG_APPEND, .from = 3, .to = 1, .term = t};
    assert_int_equal(raft_step(l, &app), 0);
    assert_int_equal(raft_term(l), t + 5);
    assert_int_equal(raft_leader(l), 2);
    h_free(&c);
}

/* Durability: a candidate's vote requests and a voter's grant wait for persistence. */
static void votes_wait_for_persistence(void **state)
{
    (void)state;
    raft_id_t v[] = {1, 2, 3};
    struct raft_config cfg = {.id = 1, .voters = v, .n_voters = 3, .election_tick = 10,
                              .heartbeat_tick = 1, .seed = 3};
    struct raft *r;
    assert_int_equal(raft_new(&cfg, &r), 0);
    for (int i = 0; i < 20 && raft_role(r) != RAFT_CANDIDATE; i++)
        raft_tick(r);
    assert_int_equal(raft_role(r), RAFT_CANDIDATE);
    struct raft_ready rd;
    raft_ready_get(r, &rd);
    assert_int_equal(rd.n_msgs, 0);
    assert_int_equal(rd.n_msgs_after_persist, 2);
    assert_true(rd.hard_state_changed);
    assert_int_equal(rd.hard_state.vote, 1);
    assert_int_equal(rd.msgs_after_persist[0].type, RAFT_MSG_VOTE);
    /* no input is accepted while the batch is outstanding */
    assert_int_equal(raft_tick(r), RAFT_EBUSY);
    raft_advance(r, &rd);
    raft_free(r);
}

/* §9.6: a partitioned node keeps its term while pre-voting, so it does not disrupt the
 * cluster when it comes back. */
static void prevote_does_not_disrupt(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    h_isolate(&c, 3, true);
    h_run(&c, 100);
    assert_int_equal(raft_term(h_node(&c, 3)->r), t);
    assert_int_not_equal(raft_role(h_node(&c, 3)->r), RAFT_CANDIDATE);
    h_isolate(&c, 3, false);
    h_run(&c, 5);
    assert_int_equal(raft_role(h_node(&c, 1)->r), RAFT_LEADER);
    assert_int_equal(raft_term(h_node(&c, 1)->r), t);
    assert_int_equal(raft_leader(h_node(&c, 3)->r), 1);
    h_free(&c);
}

/* Without pre-vote the same partition bumps terms and unseats the leader: the test
 * above is not vacuous. */
static void without_prevote_rejoin_disrupts(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PLAIN);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    h_isolate(&c, 3, true);
    h_run(&c, 100);
    assert_true(raft_term(h_node(&c, 3)->r) > t);
    h_isolate(&c, 3, false);
    h_run(&c, 25);
    assert_true(raft_term(h_node(&c, 1)->r) > t);
    h_free(&c);
}

/* §6.2: a leader that cannot hear a quorum steps down within an election timeout. */
static void check_quorum_steps_down(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_elect(&c, 1);
    h_isolate(&c, 1, true);
    h_tick(&c, 1, 21);
    assert_int_equal(raft_role(h_node(&c, 1)->r), RAFT_FOLLOWER);
    h_free(&c);
}

/* The leader-lost hint: when the leader is gone and every follower's connection to it
 * closed, a new leader is elected without waiting for any election timeout. */
static void conn_lost_elects_at_once(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    h_crash(&c, 1);
    raft_leader_conn_lost(h_node(&c, 2)->r, 1);
    raft_leader_conn_lost(h_node(&c, 3)->r, 1);
    h_deliver(&c, 100000); /* no ticks at all */
    raft_id_t l = 0;
    assert_int_equal(h_leaders(&c, &l), 1);
    assert_true(l == 2 || l == 3);
    assert_int_equal(raft_term(h_node(&c, l)->r), t + 1);
    h_free(&c);
}

/* Five members, leader gone, all four followers report it at the same moment: one
 * of them wins without any tick (no split vote), and it is the one with the best log. */
static void conn_lost_five_nodes_no_split(void **state)
{
    (void)state;
    struct h_opts o = PV;
    o.voters = 5;
    struct h_cluster c;
    h_init(&c, &o);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    /* node 4 misses the last entry */
    c.cut[1][4] = true;
    h_propose(&c, 1, "x");
    h_deliver(&c, 100000);
    h_crash(&c, 1);
    for (raft_id_t i = 2; i <= 5; i++)
        raft_leader_conn_lost(h_node(&c, i)->r, 1);
    h_deliver(&c, 100000);
    raft_id_t l = 0;
    assert_int_equal(h_leaders(&c, &l), 1);
    assert_int_equal(l, 2); /* best log, lowest id */
    assert_int_equal(raft_term(h_node(&c, 2)->r), t + 1);
    h_free(&c);
}

/* One follower's flaky link cannot unseat a healthy leader: peers that still hear the
 * leader refuse the flagged pre-vote. */
static void conn_lost_flaky_follower_refused(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    h_run(&c, 2); /* heartbeats flowing */
    raft_leader_conn_lost(h_node(&c, 3)->r, 1);
    assert_int_equal(raft_role(h_node(&c, 3)->r), RAFT_PRE_CANDIDATE);
    h_deliver(&c, 100000);
    assert_int_equal(raft_role(h_node(&c, 1)->r), RAFT_LEADER);
    assert_int_equal(raft_term(h_node(&c, 1)->r), t);
    assert_int_equal(raft_term(h_node(&c, 3)->r), t);
    h_run(&c, 3);
    assert_int_equal(raft_leader(h_node(&c, 3)->r), 1);
    assert_int_equal(raft_term(h_node(&c, 1)->r), t);
    h_free(&c);
}

/* A peer that has not heard the leader for half an election timeout grants the flagged
 * pre-vote even without its own report. */
static void conn_lost_peer_past_half_timeout_grants(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    h_crash(&c, 1);
    h_tick(&c, 2, 5); /* half of T = 10: node 2 now counts the leader as lost */
    raft_leader_conn_lost(h_node(&c, 3)->r, 1);
    h_deliver(&c, 100000);
    assert_int_equal(raft_role(h_node(&c, 3)->r), RAFT_LEADER);
    assert_int_equal(raft_term(h_node(&c, 3)->r), t + 1);
    h_free(&c);
}

/* A report about a peer that is not the leader changes nothing. */
static void conn_lost_non_leader_ignored(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &PV);
    h_elect(&c, 1);
    raft_leader_conn_lost(h_node(&c, 3)->r, 2);
    assert_int_equal(raft_role(h_node(&c, 3)->r), RAFT_FOLLOWER);
    assert_false(raft_has_ready(h_node(&c, 3)->r));
    h_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(elects_one_leader),
        cmocka_unit_test(election_timeout_is_randomized),
        cmocka_unit_test(vote_requires_up_to_date_log),
        cmocka_unit_test(one_vote_per_term),
        cmocka_unit_test(term_handling),
        cmocka_unit_test(votes_wait_for_persistence),
        cmocka_unit_test(prevote_does_not_disrupt),
        cmocka_unit_test(without_prevote_rejoin_disrupts),
        cmocka_unit_test(check_quorum_steps_down),
        cmocka_unit_test(conn_lost_elects_at_once),
        cmocka_unit_test(conn_lost_five_nodes_no_split),
        cmocka_unit_test(conn_lost_flaky_follower_refused),
        cmocka_unit_test(conn_lost_peer_past_half_timeout_grants),
        cmocka_unit_test(conn_lost_non_leader_ignored),
    };
    return PLINTH_RUN_TESTS("raft/election", tests);
}

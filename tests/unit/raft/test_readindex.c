/* test_readindex.c — ReadIndex reads (dissertation §6.4) and leader transfer (§3.10). */
#include "harness.h"

static const struct h_opts O3 = {.voters = 3, .pre_vote = true, .check_quorum = true, .seed = 21};

static int read(struct h_cluster *c, raft_id_t id, uint64_t ctx)
{
    int rc = raft_read_index(h_node(c, id)->r, (struct raft_buf){&ctx, sizeof(ctx)});
    h_ready(c, id);
    return rc;
}

/* The leader serves a read only after a majority confirmed it is still leader, at the
 * commit index it had when the read arrived. */
static void leader_read_needs_quorum(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    h_elect(&c, 1);
    h_propose(&c, 1, "a");
    h_deliver(&c, 100000);
    struct h_node *l = h_node(&c, 1);
    raft_index_t commit = raft_commit_index(l->r);
    assert_int_equal(read(&c, 1, 77), 0);
    assert_int_equal(l->n_reads, 0); /* not before the heartbeat round */
    assert_true(c.sent[RAFT_MSG_HEARTBEAT] >= 2);
    h_deliver(&c, 100000);
    assert_int_equal(l->n_reads, 1);
    assert_int_equal(l->read_ctx[0], 77);
    assert_int_equal(l->reads[0].index, commit);
    assert_true(l->applied >= commit);

    /* a leader cut off from everyone never serves it */
    h_isolate(&c, 1, true);
    assert_int_equal(read(&c, 1, 78), 0);
    h_deliver(&c, 100000);
    h_tick(&c, 1, 5);
    h_deliver(&c, 100000);
    assert_int_equal(l->n_reads, 1);
    /* one peer back is a majority */
    c.cut[1][2] = c.cut[2][1] = false;
    h_tick(&c, 1, 1);
    h_deliver(&c, 100000);
    assert_int_equal(l->n_reads, 2);
    assert_int_equal(l->read_ctx[1], 78);
    h_free(&c);
}

/* A follower forwards the read; the answer carries the leader's commit index and is
 * released once the follower applied that far. */
static void follower_read_forwarded(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    h_elect(&c, 1);
    for (int i = 0; i < 3; i++)
        h_propose(&c, 1, "a");
    h_deliver(&c, 100000);
    struct h_node *f = h_node(&c, 3);
    assert_int_equal(read(&c, 3, 5), 0);
    assert_int_equal(c.sent[RAFT_MSG_READ_INDEX], 1);
    h_deliver(&c, 100000);
    assert_int_equal(f->n_reads, 1);
    assert_int_equal(f->read_ctx[0], 5);
    assert_int_equal(f->reads[0].index, raft_commit_index(h_node(&c, 1)->r));
    assert_true(f->applied >= f->reads[0].index);
    /* nobody to ask */
    struct h_cluster c2;
    h_init(&c2, &O3);
    assert_int_equal(read(&c2, 2, 1), RAFT_ENOLEADER);
    h_free(&c2);
    h_free(&c);
}

/* A new leader does not know the commit index until its own entry commits: reads wait
 * (§6.4 step 1). */
static void new_leader_reads_wait_for_term_commit(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    for (int i = 0; i < 40 && raft_role(h_node(&c, 1)->r) == RAFT_FOLLOWER; i++)
        h_tick(&c, 1, 1);
    for (int i = 0; i < 50 && raft_role(h_node(&c, 1)->r) != RAFT_LEADER; i++)
        h_deliver(&c, 1);
    struct h_node *l = h_node(&c, 1);
    assert_int_equal(raft_role(l->r), RAFT_LEADER);
    assert_int_equal(raft_commit_index(l->r), 0);
    assert_int_equal(read(&c, 1, 9), 0);
    assert_int_equal(l->n_reads, 0);
    h_deliver(&c, 100000);
    h_tick(&c, 1, 1);
    h_deliver(&c, 100000);
    assert_int_equal(l->n_reads, 1);
    assert_int_equal(l->reads[0].index, 1); /* the term's entry, not 0 */
    h_free(&c);
}

/* §3.10: the leader brings the target up to date, sends TimeoutNow, and the target wins
 * at once (its vote request overrides the peers' leader lease). */
static void transfer_to_lagging_follower(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    h_elect(&c, 1);
    raft_term_t t = raft_term(h_node(&c, 1)->r);
    c.cut[1][3] = true;
    for (int i = 0; i < 5; i++)
        h_propose(&c, 1, "x");
    h_deliver(&c, 100000);
    c.cut[1][3] = false;
    assert_int_equal(raft_transfer_leader(h_node(&c, 1)->r, 3), 0);
    h_ready(&c, 1);
    assert_int_equal(h_propose(&c, 1, "refused"), RAFT_EBUSY); /* during the transfer */
    h_deliver(&c, 100000);
    h_tick(&c, 1, 1);
    h_deliver(&c, 100000);
    assert_int_equal(c.sent[RAFT_MSG_TIMEOUT_NOW], 1);
    assert_int_equal(raft_role(h_node(&c, 3)->r), RAFT_LEADER);
    assert_int_equal(raft_term(h_node(&c, 3)->r), t + 1);
    assert_int_equal(raft_role(h_node(&c, 1)->r), RAFT_FOLLOWER);
    assert_int_equal(raft_leader(h_node(&c, 2)->r), 3);
    h_free(&c);
}

static void transfer_forwarded_and_aborted(void **state)
{
    (void)state;
    struct h_cluster c;
    h_init(&c, &O3);
    h_elect(&c, 1);
    /* asked on a follower: forwarded to the leader */
    assert_int_equal(raft_transfer_leader(h_node(&c, 2)->r, 2), 0);
    h_ready(&c, 2);
    h_deliver(&c, 100000);
    assert_int_equal(raft_role(h_node(&c, 2)->r), RAFT_LEADER);
    assert_int_equal(raft_transfer_leader(h_node(&c, 2)->r, 2), RAFT_EINVAL); /* self */
    assert_int_equal(raft_transfer_leader(h_node(&c, 2)->r, 9), RAFT_EINVAL); /* no voter */
    /* an unreachable target: the transfer is abandoned after an election timeout and
     * proposals are accepted again */
    h_isolate(&c, 3, true);
    assert_int_equal(raft_transfer_leader(h_node(&c, 2)->r, 3), 0);
    h_ready(&c, 2);
    assert_int_equal(h_propose(&c, 2, "x"), RAFT_EBUSY);
    h_run(&c, 11);
    assert_int_equal(raft_role(h_node(&c, 2)->r), RAFT_LEADER);
    assert_int_equal(h_propose(&c, 2, "x"), 0);
    h_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(leader_read_needs_quorum),
        cmocka_unit_test(follower_read_forwarded),
        cmocka_unit_test(new_leader_reads_wait_for_term_commit),
        cmocka_unit_test(transfer_to_lagging_follower),
        cmocka_unit_test(transfer_forwarded_and_aborted),
    };
    return PLINTH_RUN_TESTS("raft/readindex", tests);
}

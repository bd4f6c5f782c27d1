/* test_algo — placement filters and scores, checked against a naive version on random
 * clusters, and rolling-update planning simulated to completion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/algo.h"
#include "sched/objects.h"
#include "tests/lib/testlib.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

static struct sched_node_info node(const char *name, int64_t cpu, int64_t mem, int64_t pods)
{
    struct sched_node_info n = {.name = name, .ready = true, .cpu_cap = cpu, .mem_cap = mem,
                                .pods_cap = pods};
    return n;
}

static void test_filters(void **state)
{
    (void)state;
    struct sched_node_info n = node("n", 1000, 1000, 2);
    struct sched_pod_req p = {.cpu = 600, .mem = 100};
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_OK);
    n.cpu_used = 500;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_CPU);
    n.cpu_used = 0;
    n.mem_used = 950;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_MEMORY);
    n.mem_used = 0;
    n.pods_used = 2;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_PODS);
    n.pods_used = 0;
    n.ready = false;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_NOT_READY);
    n.ready = true;
    n.unschedulable = true;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_UNSCHEDULABLE);
    n.unschedulable = false;

    json_t *labels = json_pack("{ssss}", "disk", "ssd", "zone", "a");
    json_t *sel_ok = json_pack("{ss}", "disk", "ssd");
    json_t *sel_bad = json_pack("{ss}", "disk", "hdd");
    n.labels = labels;
    p.node_selector = sel_ok;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_OK);
    p.node_selector = sel_bad;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_SELECTOR);
    p.node_selector = NULL;

    json_t *taints = json_pack("[{ssssss}]", "key", "gpu", "value", "yes", "effect", "NoSchedule");
    json_t *soft = json_pack("[{ssss}]", "key", "spot", "effect", "PreferNoSchedule");
    json_t *tol_eq = json_pack("[{ssssss}]", "key", "gpu", "value", "yes", "effect", "NoSchedule");
    json_t *tol_wrongval = json_pack("[{ssss}]", "key", "gpu", "value", "no");
    json_t *tol_exists = json_pack("[{ssss}]", "key", "gpu", "operator", "Exists");
    json_t *tol_all = json_pack("[{ss}]", "operator", "Exists");
    json_t *tol_other_effect = json_pack("[{ssssss}]", "key", "gpu", "operator", "Exists", "effect", "NoExecute");
    n.taints = taints;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_TAINT);
    p.tolerations = tol_eq;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_OK);
    p.tolerations = tol_wrongval;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_TAINT);
    p.tolerations = tol_exists;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_OK);
    p.tolerations = tol_all;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_OK);
    p.tolerations = tol_other_effect;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_TAINT);
    p.tolerations = NULL;
    n.taints = soft;
    assert_int_equal(sched_filter(&n, &p), SCHED_FIT_OK);
    json_decref(labels); json_decref(sel_ok); json_decref(sel_bad); json_decref(taints);
    json_decref(soft); json_decref(tol_eq); json_decref(tol_wrongval); json_decref(tol_exists);
    json_decref(tol_all); json_decref(tol_other_effect);
}

static void test_pick_reason_and_spread(void **state)
{
    (void)state;
    struct sched_node_info ns[3] = {node("a", 1000, 1 << 30, 10), node("b", 1000, 1 << 30, 10),
                                    node("c", 1000, 1 << 30, 10)};
    ns[2].ready = false;
    struct sched_pod_req big = {.cpu = 2000};
    char reason[256];
    assert_int_equal(sched_pick(ns, 3, &big, 0, reason, sizeof(reason)), -1);
    assert_string_equal(reason, "0/3 nodes are available: 1 node(s) were not ready, 2 Insufficient cpu.");
    /* equal pods spread over equal nodes */
    ns[2].ready = true;
    struct sched_pod_req small = {.cpu = 100, .mem = 1 << 20};
    int count[3] = {0};
    for (int i = 0; i < 9; i++) {
        int k = sched_pick(ns, 3, &small, (uint64_t)i, NULL, 0);
        assert_true(k >= 0);
        count[k]++;
        sched_node_account(&ns[k], &small, +1);
    }
    assert_int_equal(count[0], 3);
    assert_int_equal(count[1], 3);
    assert_int_equal(count[2], 3);
    /* pods without requests spread too */
    struct sched_node_info m[2] = {node("x", 4000, 1LL << 33, 110), node("y", 4000, 1LL << 33, 110)};
    struct sched_pod_req none = {0};
    int cx = 0;
    for (int i = 0; i < 10; i++) {
        int k = sched_pick(m, 2, &none, 0, NULL, 0);
        cx += k == 0;
        sched_node_account(&m[k], &none, +1);
        /* zero-request pods: account them as the scorer sees them so spreading is visible */
        m[k].cpu_used += 100;
    }
    assert_int_equal(cx, 5);
}

/* The naive twin: floating point, written from the definition. */
static double naive_score(const struct sched_node_info *n, const struct sched_pod_req *p)
{
    double cpu = p->cpu ? (double)p->cpu : 100.0, mem = p->mem ? (double)p->mem : 200.0 * 1048576.0;
    double cf = n->cpu_cap > 0 ? (n->cpu_used + cpu) / (double)n->cpu_cap : 1.0;
    double mf = n->mem_cap > 0 ? (n->mem_used + mem) / (double)n->mem_cap : 1.0;
    if (cf > 1) cf = 1;
    if (mf > 1) mf = 1;
    double least = ((1 - cf) + (1 - mf)) / 2 * 100;
    double gap = cf > mf ? cf - mf : mf - cf;
    return least + (1 - gap) * 100;
}

static bool naive_fits(const struct sched_node_info *n, const struct sched_pod_req *p)
{
    return n->ready && !n->unschedulable && n->pods_used < n->pods_cap &&
           n->cpu_used + p->cpu <= n->cpu_cap && n->mem_used + p->mem <= n->mem_cap;
}

static void test_against_naive_random(void **state)
{
    (void)state;
    for (int round = 0; round < 3000; round++) {
        size_t nn = (size_t)rnd_in(1, 12);
        struct sched_node_info ns[12];
        for (size_t i = 0; i < nn; i++) {
            ns[i] = node("n", rnd_in(0, 8) * 500, rnd_in(0, 8) * 256 * 1048576LL, rnd_in(0, 6));
            ns[i].ready = rnd() % 8 != 0;
            ns[i].unschedulable = rnd() % 10 == 0;
            ns[i].cpu_used = ns[i].cpu_cap ? rnd_in(0, ns[i].cpu_cap) : 0;
            ns[i].mem_used = ns[i].mem_cap ? rnd_in(0, ns[i].mem_cap) : 0;
            ns[i].pods_used = ns[i].pods_cap ? rnd_in(0, ns[i].pods_cap) : 0;
        }
        struct sched_pod_req p = {.cpu = rnd_in(0, 4) * 250, .mem = rnd_in(0, 4) * 128 * 1048576LL};
        int k = sched_pick(ns, nn, &p, rnd(), NULL, 0);
        bool any = false;
        double best = -1;
        for (size_t i = 0; i < nn; i++) {
            assert_int_equal(sched_filter(&ns[i], &p) == SCHED_FIT_OK, naive_fits(&ns[i], &p));
            if (naive_fits(&ns[i], &p)) {
                any = true;
                if (naive_score(&ns[i], &p) > best) best = naive_score(&ns[i], &p);
            }
        }
        if (!any) {
            assert_int_equal(k, -1);
            continue;
        }
        assert_true(k >= 0);
        assert_true(naive_fits(&ns[k], &p));
        /* the pick is a best node up to integer rounding of the scores (2 points) */
        assert_true(naive_score(&ns[k], &p) >= best - 2.0);
    }
}

/* Placing random pods one after another never overcommits any node. */
static void test_never_overcommits(void **state)
{
    (void)state;
    for (int round = 0; round < 200; round++) {
        size_t nn = (size_t)rnd_in(1, 20);
        struct sched_node_info ns[20];
        for (size_t i = 0; i < nn; i++) ns[i] = node("n", rnd_in(1, 16) * 250, rnd_in(1, 16) * 128 * 1048576LL, rnd_in(1, 30));
        int placed = 0, refused = 0;
        for (int i = 0; i < 400; i++) {
            struct sched_pod_req p = {.cpu = rnd_in(0, 6) * 100, .mem = rnd_in(0, 6) * 64 * 1048576LL};
            char reason[256];
            int k = sched_pick(ns, nn, &p, (uint64_t)i, reason, sizeof(reason));
            if (k < 0) {
                refused++;
                assert_non_null(strstr(reason, "nodes are available"));
                continue;
            }
            sched_node_account(&ns[k], &p, +1);
            placed++;
            for (size_t j = 0; j < nn; j++) {
                assert_true(ns[j].cpu_used <= ns[j].cpu_cap);
                assert_true(ns[j].mem_used <= ns[j].mem_cap);
                assert_true(ns[j].pods_used <= ns[j].pods_cap);
            }
        }
        assert_true(placed > 0);
        (void)refused;
    }
}

static void test_int_or_percent(void **state)
{
    (void)state;
    json_t *p25 = json_string("25%"), *i2 = json_integer(2);
    assert_int_equal(sched_int_or_percent(p25, 10, true), 3);
    assert_int_equal(sched_int_or_percent(p25, 10, false), 2);
    assert_int_equal(sched_int_or_percent(p25, 3, false), 0);
    assert_int_equal(sched_int_or_percent(i2, 10, false), 2);
    json_decref(p25);
    json_decref(i2);
}

/* Simulates a rollout: each round the planner runs, then a random subset of pods becomes
 * ready (new pods start unready; deleted pods go away at once). Checks the budgets at
 * every step and that the rollout finishes. */
static void test_rollout_simulated(void **state)
{
    (void)state;
    for (int round = 0; round < 2000; round++) {
        int64_t replicas = rnd_in(1, 12);
        int64_t surge = rnd_in(0, 3), unavail = rnd_in(0, 3);
        if (surge == 0 && unavail == 0) surge = 1;
        size_t nold = (size_t)rnd_in(1, 3);
        struct sched_rs_state newrs = {0, 0, 0}, old[3];
        int64_t left = replicas;
        for (size_t i = 0; i < nold; i++) {
            old[i].replicas = i + 1 == nold ? left : rnd_in(0, left);
            left -= old[i].replicas;
            old[i].ready = old[i].replicas;
            old[i].pods = old[i].replicas;
        }
        int steps = 0;
        for (;;) {
            int64_t ready_before = newrs.ready;
            for (size_t i = 0; i < nold; i++) ready_before += old[i].ready;
            int64_t nout, oout[3];
            bool ch = sched_rollout_step(replicas, surge, unavail, newrs, old, nold, &nout, oout);
            int64_t total = nout, ready_after = newrs.ready < nout ? newrs.ready : nout;
            for (size_t i = 0; i < nold; i++) {
                assert_true(oout[i] >= 0 && oout[i] <= old[i].replicas);
                total += oout[i];
                ready_after += old[i].ready < oout[i] ? old[i].ready : oout[i];
            }
            int64_t floor = replicas - unavail;
            /* never drops availability below the floor (nor lower than it already was) */
            assert_true(ready_after >= (ready_before < floor ? ready_before : floor));
            /* never grows the desired total above replicas + maxSurge */
            if (nout > newrs.replicas) assert_true(total <= replicas + surge);
            newrs.replicas = nout;
            newrs.pods = nout;
            if (newrs.ready > nout) newrs.ready = nout;
            for (size_t i = 0; i < nold; i++) {
                old[i].replicas = oout[i];
                old[i].pods = oout[i];
                if (old[i].ready > oout[i]) old[i].ready = oout[i];
            }
            /* some starting pods become ready */
            if (newrs.ready < newrs.replicas) newrs.ready += rnd_in(0, newrs.replicas - newrs.ready);
            int64_t olds = 0;
            for (size_t i = 0; i < nold; i++) olds += old[i].replicas;
            if (!ch && newrs.replicas == replicas && newrs.ready == replicas && olds == 0) break;
            assert_true(++steps < 500);
        }
    }
}

/* The planner and lagging ReplicaSet controllers together: the planner may run several
 * times before the pods follow the desired counts, and the ReplicaSets catch up in any
 * order (surplus pods go unready first; new pods start unready). The pods that exist never exceed
 * replicas + maxSurge, ready pods never drop below replicas - maxUnavailable, and the
 * rollout ends. */
static void test_rollout_with_lagging_controllers(void **state)
{
    (void)state;
    for (int round = 0; round < 2000; round++) {
        int64_t replicas = rnd_in(1, 10);
        int64_t surge = rnd_in(0, 3), unavail = rnd_in(0, 3);
        if (surge == 0 && unavail == 0) unavail = 1;
        size_t nold = (size_t)rnd_in(1, 2);
        struct sched_rs_state newrs = {0, 0, 0}, old[2];
        int64_t left = replicas;
        for (size_t i = 0; i < nold; i++) {
            int64_t r = i + 1 == nold ? left : rnd_in(0, left);
            left -= r;
            old[i] = (struct sched_rs_state){r, r, r};
        }
        int64_t floor = replicas - unavail;
        for (int steps = 0;; steps++) {
            assert_true(steps < 2000);
            int64_t nout, oout[2];
            bool ch = sched_rollout_step(replicas, surge, unavail, newrs, old, nold, &nout, oout);
            newrs.replicas = nout;
            for (size_t i = 0; i < nold; i++) old[i].replicas = oout[i];
            if (rnd() % 3 == 0) {
                /* some ReplicaSet controllers catch up, in any order, each moving its pods
                 * to its desired count (deleting unready pods first, new pods unready) */
                struct sched_rs_state *all[3] = {&newrs, &old[0], nold > 1 ? &old[1] : NULL};
                int first = (int)(rnd() % 3);
                for (int j = 0; j < 3; j++) {
                    struct sched_rs_state *r = all[(first + j) % 3];
                    if (!r || rnd() % 3 == 0) continue;
                    if (r->pods > r->replicas) {
                        int64_t unready = r->pods - r->ready, surplus = r->pods - r->replicas;
                        if (surplus > unready) r->ready -= surplus - unready;
                    }
                    r->pods = r->replicas;
                    int64_t ready = 0, pods = 0;
                    for (int k = 0; k < 3; k++)
                        if (all[k]) {
                            ready += all[k]->ready;
                            pods += all[k]->pods;
                        }
                    assert_true(pods <= replicas + surge);
                    assert_true(ready >= floor);
                }
            }
            /* some new pods become ready */
            if (newrs.ready < newrs.pods) newrs.ready += rnd_in(0, newrs.pods - newrs.ready);
            int64_t olds = 0;
            for (size_t i = 0; i < nold; i++) olds += old[i].pods + old[i].replicas;
            if (!ch && newrs.pods == replicas && newrs.ready == replicas && olds == 0) break;
        }
    }
}

/* Fixed scenarios of the rolling-update step. */
static void test_rollout_cases(void **state)
{
    (void)state;
    int64_t nout, oout[2];
    /* a fresh deployment: the new ReplicaSet goes straight to replicas */
    struct sched_rs_state fresh = {0, 0, 0};
    assert_true(sched_rollout_step(5, 1, 1, fresh, NULL, 0, &nout, oout));
    assert_int_equal(nout, 5);
    /* scaling down without a rollout */
    struct sched_rs_state big = {5, 5, 5};
    assert_true(sched_rollout_step(3, 1, 1, big, NULL, 0, &nout, oout));
    assert_int_equal(nout, 3);
    /* steady state: nothing to do */
    struct sched_rs_state done = {3, 3, 3};
    assert_false(sched_rollout_step(3, 1, 1, done, NULL, 0, &nout, oout));
    /* surge only (maxUnavailable 0): one new pod first, no old pod goes before it is ready */
    struct sched_rs_state n0 = {0, 0, 0}, old[1] = {{4, 4, 4}};
    assert_true(sched_rollout_step(4, 1, 0, n0, old, 1, &nout, oout));
    assert_int_equal(nout, 1);
    assert_int_equal(oout[0], 4);
    struct sched_rs_state n1 = {1, 1, 1};
    assert_true(sched_rollout_step(4, 1, 0, n1, old, 1, &nout, oout));
    assert_int_equal(oout[0], 3);
    /* unavailable only (maxSurge 0): old pods go first, within the budget */
    assert_true(sched_rollout_step(4, 0, 2, n0, old, 1, &nout, oout));
    assert_int_equal(nout, 0);
    assert_int_equal(oout[0], 2);
    /* an old ReplicaSet scaled to 0 whose pods still exist holds the surge budget */
    struct sched_rs_state n5 = {5, 5, 5}, lagging[1] = {{0, 2, 2}};
    assert_false(sched_rollout_step(6, 1, 1, n5, lagging, 1, &nout, oout));
    assert_int_equal(nout, 5);
    struct sched_rs_state gone[1] = {{0, 0, 0}};
    assert_true(sched_rollout_step(6, 1, 1, n5, gone, 1, &nout, oout));
    assert_int_equal(nout, 6);
    /* old pods that are not ready are removed at once: they cost no availability */
    struct sched_rs_state sick[2] = {{3, 1, 3}, {1, 1, 1}};
    struct sched_rs_state n2 = {2, 2, 2};
    assert_true(sched_rollout_step(6, 0, 0, n2, sick, 2, &nout, oout));
    assert_int_equal(oout[0], 1);
    assert_int_equal(oout[1], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_pick_reason_and_spread),
        cmocka_unit_test(test_against_naive_random),
        cmocka_unit_test(test_never_overcommits),
        cmocka_unit_test(test_int_or_percent),
        cmocka_unit_test(test_rollout_simulated),
        cmocka_unit_test(test_rollout_cases),
        cmocka_unit_test(test_rollout_with_lagging_controllers),
    };
    return PLINTH_RUN_TESTS("sched/algo", tests);
}

/* bench_raft.c — the consensus core's ceiling: proposals committed per second by three
 * in-memory cores in one process (no disk, no network), and simulation seeds per
 * second. Usage: bench_raft [seconds per run, default 2] */
#include "raft/raft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 3

static struct raft *nodes[N];
static unsigned long long applied_on_leader;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One ready batch per node with work: "persist" (nothing to do in memory), deliver its
 * messages straight into the receivers (raft_step copies what it keeps), advance. */
static int pump(void)
{
    int work = 0;
    for (int i = 0; i < N; i++) {
        struct raft *r = nodes[i];
        if (!raft_has_ready(r))
            continue;
        work = 1;
        struct raft_ready rd;
        if (raft_ready_get(r, &rd))
            abort();
        for (size_t k = 0; k < rd.n_msgs; k++)
            raft_step(nodes[rd.msgs[k].to - 1], &rd.msgs[k]);
        for (size_t k = 0; k < rd.n_msgs_after_persist; k++)
            raft_step(nodes[rd.msgs_after_persist[k].to - 1], &rd.msgs_after_persist[k]);
        if (raft_role(r) == RAFT_LEADER)
            for (size_t k = 0; k < rd.n_committed; k++)
                applied_on_leader += rd.committed[k].type == RAFT_ENTRY_NORMAL;
        raft_advance(r, &rd);
        raft_index_t a = raft_applied_index(r);
        if (a > raft_first_index(r) + 20000)
            raft_compact(r, a - 10000);
    }
    return work;
}

static void setup(void)
{
    raft_id_t v[N] = {1, 2, 3};
    for (int i = 0; i < N; i++) {
        struct raft_config cfg = {.id = (raft_id_t)i + 1, .voters = v, .n_voters = N,
                                  .election_tick = 10, .heartbeat_tick = 1, .pre_vote = true,
                                  .check_quorum = true, .seed = 42};
        if (raft_new(&cfg, &nodes[i]))
            abort();
    }
    while (raft_role(nodes[0]) != RAFT_LEADER) {
        raft_tick(nodes[0]);
        while (pump())
            ;
    }
    while (pump())
        ;
}

static void run(size_t batch, double seconds)
{
    setup();
    char payload[128];
    memset(payload, 'v', sizeof(payload));
    struct raft_buf *b = malloc(batch * sizeof(*b));
    for (size_t i = 0; i < batch; i++)
        b[i] = (struct raft_buf){payload, sizeof(payload)};
    applied_on_leader = 0;
    unsigned long long proposed = 0;
    double t0 = now_s(), t;
    unsigned long long rounds = 0;
    do {
        /* keep a bounded number of proposals outstanding, like a client pool */
        for (int k = 0; k < 8 && proposed - applied_on_leader < 64 * batch; k++)
            if (raft_propose(nodes[0], b, batch, NULL) == 0)
                proposed += batch;
        pump();
        if (++rounds % 64 == 0) {
            for (int i = 0; i < N; i++)
                raft_tick(nodes[i]);
        }
        t = now_s();
    } while (t - t0 < seconds);
    while (pump())
        ;
    t = now_s();
    printf("raft core, 3 nodes in memory, batch %3zu x 128 B: %10.0f proposals committed/s "
           "(%llu in %.2f s)\n", batch, (double)applied_on_leader / (t - t0),
           applied_on_leader, t - t0);
    free(b);
    for (int i = 0; i < N; i++)
        raft_free(nodes[i]);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (secs <= 0)
        secs = 2.0;
    run(1, secs);
    run(64, secs);
    /* simulation throughput, measured by the simulator itself */
    FILE *p = popen("${BUILD:-build}/tests/sim/sim --seeds 300 2>/dev/null | grep 'seeds/s'", "r");
    char line[512];
    if (p && fgets(line, sizeof(line), p))
        printf("simulation: %s", line);
    else
        printf("simulation: build/tests/sim/sim not found (run `make tools`)\n");
    if (p)
        pclose(p);
    return 0;
}

/* bench_commit — the cost of one turn's commit on this disk, fsync on: kv_wtxn_commit
 * (fdatasync of the data pages, then the meta page with O_DSYNC) against
 * kv_wtxn_commit_nosync (the data sync only), with one to many 256-byte puts per turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv/kv.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs `turns` turns of `per_turn` random puts; returns 0 and prints p50/p99 in us. */
static int run(kv_store *s, kv_index_t *index, int turns, int per_turn, int sync)
{
    double *lat = calloc((size_t)turns, sizeof(double));
    char key[16], val[256];
    memset(val, 'v', sizeof val);
    if (!lat)
        return 1;
    for (int t = 0; t < turns; t++) {
        kv_wtxn *w;
        if (kv_wtxn_begin(s, &w))
            return 1;
        for (int i = 0; i < per_turn; i++) {
            Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
            snprintf(key, sizeof key, "k%07d", rand() % 100000);
            p.key.data = (uint8_t *)key;
            p.key.len = strlen(key);
            p.value.data = (uint8_t *)val;
            p.value.len = sizeof val;
            Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
            r.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
            r.put = &p;
            kv_result res;
            if (kv_apply(w, ++*index, 1, &r, &res)) {
                kv_wtxn_abort(w);
                return 1;
            }
            kv_result_free(&res);
        }
        double t0 = now_us();
        if ((sync ? kv_wtxn_commit(w) : kv_wtxn_commit_nosync(w)) != 0)
            return 1;
        lat[t] = now_us() - t0;
    }
    qsort(lat, (size_t)turns, sizeof(double), cmp_d);
    printf("%-22s puts/turn %4d  commit p50 %8.1f us  p99 %8.1f us\n",
           sync ? "kv_wtxn_commit" : "kv_wtxn_commit_nosync", per_turn, lat[turns / 2],
           lat[turns * 99 / 100]);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    int turns = argc > 1 ? atoi(argv[1]) : 300;
    char dir[] = "/tmp/plinth-bench-commit.XXXXXX", eb[256], cmd[300];
    kv_options o;
    kv_store *s;
    kv_index_t index = 0;
    int rc = 0;
    if (turns < 10 || !mkdtemp(dir))
        return 2;
    kv_options_init(&o);
    o.no_sync = false;
    if (kv_open(dir, &o, &s, eb, sizeof eb)) {
        fprintf(stderr, "bench_commit: %s\n", eb);
        return 1;
    }
    srand(1);
    rc |= run(s, &index, turns, 64, 1); /* warm up: fill some keys */
    for (int per = 1; per <= 64 && !rc; per *= 8) {
        rc |= run(s, &index, turns, per, 1);
        rc |= run(s, &index, turns, per, 0);
    }
    kv_close(s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_commit: could not remove %s\n", dir);
    return rc;
}

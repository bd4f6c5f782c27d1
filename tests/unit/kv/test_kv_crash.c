/* test_kv_crash — kill -9 a writer (tests/tools/kv_crash_writer) at random moments, many
 * times, on one store: after each kill the reopened store must hold every batch whose
 * commit returned (the writer reported it) and no part of any later batch, except that
 * the batch whose commit returned just before the kill may be there whole. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/kv/crashspec.h"
#include "tests/unit/kv/kvtest.h"

static char writer[4096];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the writer for about ms milliseconds, SIGKILLs it, returns the last batch it
 * reported as committed (0 if none). */
static unsigned long run_and_kill(const char *dir, int ms)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(writer, writer, dir, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    usleep((useconds_t)ms * 1000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    /* read everything it wrote; the last complete line counts */
    static char buf[1 << 20];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    buf[n] = 0;
    if (WIFEXITED(st))
        fail_msg("writer exited with %d (not killed)", WEXITSTATUS(st));
    unsigned long last = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        unsigned long b;
        if (sscanf(line, "C %lu", &b) == 1) {
            assert_true(b > last); /* reported in order */
            last = b;
        }
        line = nl + 1;
    }
    return last;
}

typedef struct expk {
    char val[128];
    int64_t create, mod, version;
} expk;

/* Checks the store against batches 1..L of the workload. */
static void check_store(const char *dir, unsigned long L)
{
    kv_store *s;
    char eb[256];
    kv_options o;
    kv_options_init(&o);
    assert_int_equal(kv_open(dir, &o, &s, eb, sizeof eb), 0);
    expk keys[CS_KEYS];
    memset(keys, 0, sizeof keys);
    int64_t rev = 1, compact = 0;
    kv_index_t last = 0, applied = 0;
    for (unsigned long b = 1; b <= L; b++) {
        last += (kv_index_t)cs_entries(b);
        int64_t rev_before = rev;
        for (int j = 0; j < cs_puts(b); j++) {
            expk *k = &keys[cs_key(b, j)];
            rev++;
            cs_value(k->val, sizeof k->val, b, j);
            if (!k->version)
                k->create = rev;
            k->mod = rev;
            k->version++;
            applied++;
        }
        if (cs_compacts(b)) {
            applied++;
            if (rev_before - 30 > compact)
                compact = rev_before - 30;
        }
    }
    kv_hard_state hs;
    assert_int_equal(kv_hard_state_get(s, &hs), 0);
    assert_int_equal(hs.commit, L);
    assert_int_equal(kv_log_last_index(s), last);
    assert_int_equal(kv_applied_index(s), applied);
    assert_int_equal(kv_current_revision(s), rev);
    assert_int_equal(kv_compact_revision(s), compact);
    /* the last batch's log entries, whole */
    if (L) {
        int ne = cs_entries(L);
        kv_entry *e;
        size_t n;
        assert_int_equal(kv_log_entries(s, last - (kv_index_t)ne + 1, last + 1, 0, &e, &n), 0);
        assert_int_equal(n, (size_t)ne);
        for (int j = 0; j < ne; j++) {
            char want[64];
            cs_entry(want, sizeof want, L, j);
            assert_int_equal(e[j].term, L);
            assert_int_equal(e[j].len, strlen(want));
            assert_memory_equal(e[j].data, want, e[j].len);
        }
        free(e);
    }
    /* every key as the workload left it */
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = kvt_b("k");
    q.range_end = kvt_b("l");
    kv_result r;
    assert_int_equal(kv_range(s, &q, &r), 0);
    Etcdserverpb__RangeResponse *rr = (Etcdserverpb__RangeResponse *)r.msg;
    size_t i = 0;
    for (int k = 0; k < CS_KEYS; k++) {
        if (!keys[k].version)
            continue;
        assert_true(i < rr->n_kvs);
        Mvccpb__KeyValue *kv = rr->kvs[i++];
        char name[16];
        snprintf(name, sizeof name, "k%03d", k);
        assert_int_equal(kv->key.len, 4);
        assert_memory_equal(kv->key.data, name, 4);
        assert_int_equal(kv->value.len, strlen(keys[k].val));
        assert_memory_equal(kv->value.data, keys[k].val, kv->value.len);
        assert_int_equal(kv->create_revision, keys[k].create);
        assert_int_equal(kv->mod_revision, keys[k].mod);
        assert_int_equal(kv->version, keys[k].version);
    }
    assert_int_equal(i, rr->n_kvs);
    kv_result_free(&r);
    kv_close(s);
}

static void test_kill9(void **state)
{
    (void)state;
    char *dir = test_tmpdir("kv-crash");
    assert_non_null(dir);
    const char *budget_env = getenv("KV_CRASH_SECONDS");
    double budget = budget_env ? atof(budget_env) : 15.0;
    double start = now_s();
    unsigned int seed = (unsigned int)getpid();
    if (getenv("SEED"))
        seed = (unsigned int)atoi(getenv("SEED"));
    fprintf(stderr, "# seed %u\n", seed);
    srand(seed);
    unsigned long prev = 0;
    int rounds = 0, ahead = 0;
    while (now_s() - start < budget && rounds < 300) {
        unsigned long reported = run_and_kill(dir, 5 + rand() % 120);
        /* the store's batch: every reported one, maybe the next whose report was lost */
        kv_store *s;
        char eb[256];
        assert_int_equal(kv_open(dir, NULL, &s, eb, sizeof eb), 0);
        kv_hard_state hs;
        assert_int_equal(kv_hard_state_get(s, &hs), 0);
        kv_close(s);
        unsigned long L = hs.commit;
        if (reported == 0)
            reported = prev; /* killed before its first commit this round */
        assert_true(L == reported || L == reported + 1);
        ahead += L == reported + 1;
        check_store(dir, L);
        prev = L;
        rounds++;
    }
    fprintf(stderr, "# %d kills, %lu batches, %d commits landed unreported\n", rounds, prev, ahead);
    assert_true(rounds >= 10);
    assert_true(prev > 100);
    test_rmdir(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        snprintf(exe, sizeof exe, "%s", argv[0]);
    else
        exe[n] = 0;
    /* <build>/tests/unit/kv/test_kv_crash -> <build>/tests/tools/kv_crash_writer */
    char *d = dirname(dirname(dirname(exe)));
    snprintf(writer, sizeof writer, "%s/tools/kv_crash_writer", d);
    if (access(writer, X_OK) != 0) {
        fprintf(stderr, "missing %s (make tools)\n", writer);
        test_result_line(0, 1);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),
    };
    return PLINTH_RUN_TESTS("kv_crash", tests);
}

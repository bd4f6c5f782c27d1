/* test_kv_nosync — kv_wtxn_commit_nosync and kv_sync with fsync on: a turn committed
 * without the meta sync is visible at once, later commits and kv_sync keep it, and it
 * survives the death of the writing process (SIGKILL right after the commit). */
#include "tests/unit/kv/kvtest.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Applies a put of k=v as the next entry, committed with or without fsync. */
static void put_commit(kvt *t, const char *k, const char *v, bool sync)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = kvt_b(k);
    p.value = kvt_b(v);
    Plinthpb__Request r = PLINTHPB__REQUEST__INIT;
    r.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    r.put = &p;
    kv_result out;
    kv_wtxn *w;
    assert_int_equal(kv_wtxn_begin(t->s, &w), 0);
    assert_int_equal(kv_apply(w, ++t->index, 1, &r, &out), 0);
    assert_int_equal(out.err, 0);
    kv_result_free(&out);
    assert_int_equal(sync ? kv_wtxn_commit(w) : kv_wtxn_commit_nosync(w), 0);
}

static kv_options synced_opts(void)
{
    kv_options o;
    kv_options_init(&o);
    o.no_sync = false;
    return o;
}

static void test_nosync_visible_and_kept(void **state)
{
    (void)state;
    kvt t;
    char buf[32], k[16];
    kv_options o = synced_opts();
    kvt_init(&t, "kv-nosync", &o);
    assert_int_equal(kv_sync(t.s), 0); /* nothing unsynced: a no-op */
    put_commit(&t, "a", "1", false);
    assert_string_equal(kvt_get(&t, "a", 0, buf, sizeof buf), "1");
    assert_int_equal(kv_applied_index(t.s), t.index);
    put_commit(&t, "a", "2", true); /* flushes the unsynced turn with it */
    put_commit(&t, "b", "1", false);
    assert_int_equal(kv_sync(t.s), 0);
    assert_int_equal(kv_sync(t.s), 0);
    for (int i = 0; i < 40; i++) { /* alternate, so LMDB reuses freed pages across both kinds */
        snprintf(k, sizeof k, "k%d", i % 7);
        put_commit(&t, k, i % 3 ? "x" : "yy", i % 2);
    }
    kv_index_t applied = t.index;
    kv_rev_t rev = kv_current_revision(t.s);
    kvt_reopen(&t);
    assert_int_equal(kv_applied_index(t.s), applied);
    assert_int_equal(kv_current_revision(t.s), rev);
    assert_string_equal(kvt_get(&t, "a", 0, buf, sizeof buf), "2");
    assert_string_equal(kvt_get(&t, "a", 2, buf, sizeof buf), "1");
    assert_string_equal(kvt_get(&t, "b", 0, buf, sizeof buf), "1");
    assert_string_equal(kvt_get(&t, "k4", 0, buf, sizeof buf), "yy"); /* last written at i = 39 */
    kvt_done(&t);
}

static void test_nosync_survives_sigkill(void **state)
{
    (void)state;
    kvt t;
    char buf[32];
    kv_options o = synced_opts();
    kvt_init(&t, "kv-nosync-kill", &o);
    kv_close(t.s);
    t.s = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kvt c = t;
        char eb[128];
        if (kv_open(c.dir, &c.opt, &c.s, eb, sizeof eb))
            _exit(3);
        c.index = kv_applied_index(c.s);
        put_commit(&c, "s", "synced", true);
        for (int i = 0; i < 50; i++)
            put_commit(&c, "u", i == 49 ? "last" : "mid", false);
        raise(SIGKILL); /* no kv_close, no sync */
        _exit(4);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    kvt_open(&t);
    assert_int_equal(kv_applied_index(t.s), 51);
    assert_string_equal(kvt_get(&t, "s", 0, buf, sizeof buf), "synced");
    assert_string_equal(kvt_get(&t, "u", 0, buf, sizeof buf), "last");
    assert_int_equal(kv_current_revision(t.s), 52);
    kvt_done(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nosync_visible_and_kept),
        cmocka_unit_test(test_nosync_survives_sigkill),
    };
    return PLINTH_RUN_TESTS("kv_nosync", tests);
}

/* test_kv_lease — leases (grant, attach, revoke in one revision, expiry on the primary
 * with the caller's clock, checkpoints, restart), the quota and a full LMDB map, and
 * snapshots: copying a store and installing the copy on another member. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/kv/kvtest.h"

typedef struct seen {
    int64_t revs[512];
    int n;
    int64_t compacted;
} seen;

static int on_event(const kv_watch_event_batch *b)
{
    seen *s = b->owner;
    if (b->compact_revision)
        s->compacted = b->compact_revision;
    for (size_t i = 0; i < b->n_events && s->n < 512; i++)
        s->revs[s->n++] = b->events[i]->kv->mod_revision;
    return KV_WATCH_TAKEN;
}

static void test_grant_attach_revoke(void **state)
{
    (void)state;
    kvt t;
    kv_result r;
    int64_t id = 0;
    kvt_init(&t, "kv-lease1", NULL);
    assert_int_equal(kvt_grant(&t, 7, 1, &id), 0);
    assert_int_equal(id, 7);
    assert_int_equal(kvt_grant(&t, 7, 10, NULL), KV_ELEASEEXISTS);
    assert_int_equal(kvt_grant(&t, 8, 9000000001LL, NULL), KV_ELEASETTLTOOLARGE);
    int64_t gen = 0;
    assert_int_equal(kvt_grant(&t, 0, 30, &gen), 0);
    assert_true(gen > 0);
    assert_int_equal(kv_current_revision(t.s), 1); /* grants do not write keys */

    assert_int_equal(kvt_put(&t, "a", "1", 7, &r), 0);
    kv_result_free(&r);
    assert_int_equal(kvt_put(&t, "b", "1", 7, &r), 0);
    kv_result_free(&r);
    assert_int_equal(kvt_put(&t, "c", "1", gen, &r), 0);
    kv_result_free(&r);
    assert_int_equal(kvt_put(&t, "b", "2", gen, &r), 0); /* moves b to the other lease */
    kv_result_free(&r);

    Etcdserverpb__LeaseTimeToLiveRequest q = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    q.id = 7;
    q.keys = true;
    assert_int_equal(kv_lease_time_to_live(t.s, &q, 0, &r), 0);
    Etcdserverpb__LeaseTimeToLiveResponse *tr = (Etcdserverpb__LeaseTimeToLiveResponse *)r.msg;
    assert_int_equal(tr->grantedttl, 2); /* raised to the minimum TTL */
    assert_int_equal(tr->n_keys, 1);
    assert_memory_equal(tr->keys[0].data, "a", 1);
    kv_result_free(&r);

    kvt_reopen(&t); /* leases survive restart */
    assert_int_equal(kv_lease_leases(t.s, &r), 0);
    assert_int_equal(((Etcdserverpb__LeaseLeasesResponse *)r.msg)->n_leases, 2);
    kv_result_free(&r);

    int64_t before = kv_current_revision(t.s);
    assert_int_equal(kvt_revoke(&t, gen), 0);
    assert_int_equal(kv_current_revision(t.s), before + 1); /* b and c in one revision */
    char buf[8];
    assert_null(kvt_get(&t, "b", 0, buf, sizeof buf));
    assert_null(kvt_get(&t, "c", 0, buf, sizeof buf));
    assert_string_equal(kvt_get(&t, "a", 0, buf, sizeof buf), "1");
    assert_int_equal(kvt_revoke(&t, gen), KV_ELEASENOTFOUND);
    q.id = gen;
    assert_int_equal(kv_lease_time_to_live(t.s, &q, 0, &r), 0);
    assert_int_equal(((Etcdserverpb__LeaseTimeToLiveResponse *)r.msg)->ttl, -1);
    kv_result_free(&r);
    kvt_done(&t);
}

static void test_expiry(void **state)
{
    (void)state;
    kvt t;
    kv_lease_id_t ids[8];
    int64_t ttl;
    kvt_init(&t, "kv-lease2", NULL);
    assert_int_equal(kvt_grant(&t, 1, 5, NULL), 0);
    assert_int_equal(kvt_grant(&t, 2, 10, NULL), 0);
    /* a follower never expires leases */
    assert_int_equal(kv_lease_expired(t.s, 1000000, ids, 8), 0);
    kv_lease_promote(t.s, 1000);
    assert_int_equal(kv_lease_expired(t.s, 5999, ids, 8), 0);
    assert_int_equal(kv_lease_expired(t.s, 6000, ids, 8), 1);
    assert_int_equal(ids[0], 1);
    assert_int_equal(kv_lease_expired(t.s, 7000, ids, 8), 0); /* revoke pending */
    assert_int_equal(kv_lease_expired(t.s, 9000, ids, 8), 1); /* asked again */
    assert_int_equal(kv_lease_renew(t.s, 1, 9000, &ttl), KV_ELEASENOTFOUND); /* expired */
    assert_int_equal(kv_lease_renew(t.s, 2, 9000, &ttl), 0);
    assert_int_equal(ttl, 10);
    assert_int_equal(kv_lease_expired(t.s, 18999, ids, 8), 1); /* only 1, again */
    assert_int_equal(ids[0], 1);
    assert_int_equal(kv_lease_expired(t.s, 19000, ids, 8), 1);
    assert_int_equal(ids[0], 2);

    /* a grant on the primary counts from the commit */
    assert_int_equal(kvt_revoke(&t, 1), 0);
    assert_int_equal(kvt_grant(&t, 3, 4, NULL), 0);
    Etcdserverpb__LeaseTimeToLiveRequest q = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    q.id = 3;
    kv_result r;
    assert_int_equal(kv_lease_time_to_live(t.s, &q, 20000, &r), 0);
    assert_int_equal(((Etcdserverpb__LeaseTimeToLiveResponse *)r.msg)->ttl, 3);
    kv_result_free(&r);

    /* an aborted turn's grant never reaches memory */
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = 4;
    g.ttl = 5;
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_LEASE_GRANT;
    req.lease_grant = &g;
    kv_wtxn *w;
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_apply(w, ++t.index, 1, &req, &r), 0);
    kv_result_free(&r);
    kv_wtxn_abort(w);
    t.index--;
    assert_int_equal(kv_lease_renew(t.s, 4, 20000, &ttl), KV_ELEASENOTFOUND);

    /* checkpoint: a new leader gives the remaining TTL, not the full one */
    Etcdserverpb__LeaseCheckpoint cps[4];
    assert_int_equal(kv_lease_checkpoints(t.s, 21000, cps, 4), 2);
    Etcdserverpb__LeaseCheckpoint cp = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
    cp.id = 2;
    cp.remaining_ttl = 3;
    Etcdserverpb__LeaseCheckpoint *cpp[] = {&cp};
    Etcdserverpb__LeaseCheckpointRequest cr = ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    cr.n_checkpoints = 1;
    cr.checkpoints = cpp;
    req.request_case = PLINTHPB__REQUEST__REQUEST_LEASE_CHECKPOINT;
    req.lease_checkpoint = &cr;
    assert_int_equal(kvt_apply(&t, &req, &r), 0);
    kv_result_free(&r);
    kvt_reopen(&t); /* restarted member: demoted, checkpoint stored */
    assert_int_equal(kv_lease_expired(t.s, 1000000, ids, 8), 0);
    kv_lease_promote(t.s, 100000);
    assert_int_equal(kv_lease_expired(t.s, 102999, ids, 8), 0);
    assert_int_equal(kv_lease_expired(t.s, 103000, ids, 8), 1);
    assert_int_equal(ids[0], 2);
    kv_lease_demote(t.s);
    assert_int_equal(kv_lease_expired(t.s, 999999, ids, 8), 0);
    kvt_done(&t);
}

static int64_t retry_apply(kvt *t, Plinthpb__Request *req, int *mapfull)
{
    for (int tries = 0; tries < 20; tries++) {
        kv_wtxn *w;
        kv_result r;
        assert_int_equal(kv_wtxn_begin(t->s, &w), 0);
        int rc = kv_apply(w, t->index + 1, 1, req, &r);
        if (rc == 0) {
            int e = r.err;
            kv_result_free(&r);
            rc = kv_wtxn_commit(w);
            if (rc == 0) {
                t->index++;
                return e;
            }
            assert_int_equal(rc, KV_EMAPFULL); /* the commit itself may need pages */
            (*mapfull)++;
            continue;
        }
        assert_true(kv_error_is_fatal_txn(rc));
        assert_int_equal(rc, KV_EMAPFULL);
        (*mapfull)++;
        kv_wtxn_abort(w); /* retry the whole turn; the map grows */
    }
    fail_msg("map never grew");
    return -1;
}

static void test_map_full_and_quota(void **state)
{
    (void)state;
    kvt t;
    kv_options o;
    kv_options_init(&o);
    o.no_sync = true;
    o.map_size = 1 << 20; /* 1 MiB: fills quickly */
    o.quota_bytes = 4 << 20;
    kvt_init(&t, "kv-quota", &o);
    static char val[60000];
    memset(val, 'x', sizeof val - 1);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.value = (ProtobufCBinaryData){sizeof val - 1, (uint8_t *)val};
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = &p;
    int mapfull = 0;
    char key[16];
    int i;
    for (i = 0; i < 200 && kv_quota_check(t.s, 60000 + 300) == 0; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        p.key = kvt_b(key);
        assert_int_equal(retry_apply(&t, &req, &mapfull), 0);
    }
    assert_true(mapfull > 0);            /* the map filled at least once, no crash */
    assert_true(i > 20 && i < 200);      /* the quota stopped the writer */
    char buf[8];
    assert_non_null(kvt_get(&t, "k000", 0, buf, sizeof buf));
    /* deleting and compacting gives the space back (in-use, not file size) */
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = kvt_b("k");
    d.range_end = kvt_b("l");
    req.request_case = PLINTHPB__REQUEST__REQUEST_DELETE_RANGE;
    req.delete_range = &d;
    assert_int_equal(retry_apply(&t, &req, &mapfull), 0);
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    c.revision = kv_current_revision(t.s);
    req.request_case = PLINTHPB__REQUEST__REQUEST_COMPACTION;
    req.compaction = &c;
    assert_int_equal(retry_apply(&t, &req, &mapfull), 0);
    /* LMDB reuses freed pages once no reader can see them: one more commit */
    assert_int_equal(kvt_put1(&t, "z", "1"), 0);
    assert_int_equal(kvt_put1(&t, "z", "2"), 0);
    assert_int_equal(kv_quota_check(t.s, 60000 + 300), 0);
    kvt_done(&t);
}

static void test_snapshot_restore(void **state)
{
    (void)state;
    kvt a, b;
    kv_result r;
    char buf[32];
    kvt_init(&a, "kv-snapa", NULL);
    kvt_init(&b, "kv-snapb", NULL);
    kv_wtxn *w;
    assert_int_equal(kv_wtxn_begin(a.s, &w), 0);
    assert_int_equal(kv_ids_set(w, 100, 1), 0);
    assert_int_equal(kv_meta_put(w, "members", "abc", 3), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    assert_int_equal(kv_wtxn_begin(b.s, &w), 0);
    assert_int_equal(kv_ids_set(w, 100, 2), 0);
    kv_hard_state hs = {9, 3, 4};
    assert_int_equal(kv_hard_state_set(w, &hs), 0);
    kv_entry e = {1, 9, 0, "x", 1};
    assert_int_equal(kv_log_append(w, &e, 1), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    for (int i = 0; i < 100; i++) {
        char k[16], v[16];
        snprintf(k, 16, "k%d", i);
        snprintf(v, 16, "v%d", i);
        assert_int_equal(kvt_put1(&a, k, v), 0);
    }
    assert_int_equal(kvt_grant(&a, 5, 60, NULL), 0);
    assert_int_equal(kvt_put(&a, "leased", "1", 5, &r), 0);
    kv_result_free(&r);
    assert_int_equal(kvt_put1(&b, "only-on-b", "1"), 0);

    char path[512];
    snprintf(path, sizeof path, "%s/snap.db", b.dir);
    assert_int_equal(kv_snapshot_write_path(a.s, path, true), 0);
    kv_snapshot_info info;
    assert_int_equal(kv_snapshot_file_info(path, &info), 0);
    assert_int_equal(info.applied_index, kv_applied_index(a.s));
    assert_int_equal(info.revision, kv_current_revision(a.s));
    assert_int_equal(info.cluster_id, 100);

    /* a watcher on b from its current revision: after the restore it catches up from
     * the new contents (b's revision 2 is a's revision 2 too) */
    seen sw = {0};
    kv_watch_opts wo = {.key = (const uint8_t *)"k", .key_len = 1,
                        .range_end = (const uint8_t *)"l", .range_end_len = 1,
                        .owner = &sw, .fn = on_event};
    kv_watcher *wb;
    assert_int_equal(kv_watch_create(b.s, &wo, &wb), 0); /* from b's revision 3 */
    kv_snap_meta ls = {info.applied_index, 7};
    assert_int_equal(kv_restore(b.s, path, &ls), 0);
    while (kv_watch_notify(b.s) > 0)
        ;
    assert_int_equal(sw.compacted, 0);
    assert_int_equal(sw.n, 99); /* a's puts of k1..k99 at revisions 3..101 */
    for (int i = 0; i < sw.n; i++)
        assert_int_equal(sw.revs[i], 3 + i);
    kv_watch_cancel(wb);
    assert_int_equal(access(path, F_OK), -1); /* moved into place */
    assert_string_equal(kvt_get(&b, "k42", 0, buf, sizeof buf), "v42");
    assert_null(kvt_get(&b, "only-on-b", 0, buf, sizeof buf));
    assert_int_equal(kv_current_revision(b.s), kv_current_revision(a.s));
    assert_int_equal(kv_applied_index(b.s), kv_applied_index(a.s));
    uint64_t cid, mid;
    kv_ids_get(b.s, &cid, &mid);
    assert_int_equal(cid, 100);
    assert_int_equal(mid, 2); /* the local member id stays */
    kv_hard_state h2;
    assert_int_equal(kv_hard_state_get(b.s, &h2), 0);
    assert_int_equal(h2.term, 9);
    assert_int_equal(h2.vote, 3);
    assert_int_equal(h2.commit, info.applied_index);
    assert_int_equal(kv_log_first_index(b.s), info.applied_index + 1);
    assert_int_equal(kv_log_last_index(b.s), info.applied_index);
    kv_term_t term;
    assert_int_equal(kv_log_term(b.s, info.applied_index, &term), 0);
    assert_int_equal(term, 7);
    void *blob;
    size_t len;
    assert_int_equal(kv_meta_get(b.s, "members", &blob, &len), 0);
    assert_int_equal(len, 3);
    free(blob);
    assert_int_equal(kv_lease_leases(b.s, &r), 0);
    assert_int_equal(((Etcdserverpb__LeaseLeasesResponse *)r.msg)->n_leases, 1);
    kv_result_free(&r);
    /* both stores hash alike, and b keeps working and survives a reopen */
    assert_int_equal(kv_hash_kv(a.s, 0, &r), 0);
    uint32_t ha = ((Etcdserverpb__HashKVResponse *)r.msg)->hash;
    kv_result_free(&r);
    assert_int_equal(kv_hash_kv(b.s, 0, &r), 0);
    assert_int_equal(((Etcdserverpb__HashKVResponse *)r.msg)->hash, ha);
    kv_result_free(&r);
    b.index = kv_applied_index(b.s);
    assert_int_equal(kvt_put1(&b, "after", "1"), 0);
    kvt_reopen(&b);
    assert_string_equal(kvt_get(&b, "after", 0, buf, sizeof buf), "1");
    assert_int_equal(kvt_revoke(&b, 5), 0);
    assert_null(kvt_get(&b, "leased", 0, buf, sizeof buf));
    /* a file that is not a store is refused and the store is untouched */
    FILE *f = fopen(path, "w");
    fputs("not a database", f);
    fclose(f);
    assert_int_not_equal(kv_restore(b.s, path, &ls), 0);
    assert_string_equal(kvt_get(&b, "after", 0, buf, sizeof buf), "1");
    kvt_done(&a);
    kvt_done(&b);
}

typedef struct copier {
    kv_store *s;
    char path[512];
    atomic_int stop; /* set by the test thread, read by the copier */
    int copies, failures;
} copier;

static void *copy_loop(void *arg)
{
    copier *c = arg;
    while (!atomic_load(&c->stop)) {
        if (kv_snapshot_write_path(c->s, c->path, c->copies % 2) == 0) {
            kv_snapshot_info info;
            if (kv_snapshot_file_info(c->path, &info) != 0)
                c->failures++;
            c->copies++;
        } else {
            c->failures++;
        }
    }
    return NULL;
}

/* copies on another thread while the loop writes and the map has to grow */
static void test_snapshot_while_writing(void **state)
{
    (void)state;
    kvt t;
    kv_options o;
    kv_options_init(&o);
    o.no_sync = true;
    o.map_size = 1 << 20;
    kvt_init(&t, "kv-snapthr", &o);
    copier c = {.s = t.s};
    snprintf(c.path, sizeof c.path, "%s/copy.db", t.dir);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, copy_loop, &c), 0);
    static char val[4000];
    memset(val, 'y', sizeof val - 1);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.value = (ProtobufCBinaryData){sizeof val - 1, (uint8_t *)val};
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = &p;
    int mapfull = 0;
    for (int i = 0; i < 1500; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%04d", i);
        p.key = kvt_b(key);
        assert_int_equal(retry_apply(&t, &req, &mapfull), 0);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(c.failures, 0);
    assert_true(c.copies > 0);
    assert_true(mapfull > 0);
    kv_snapshot_info info;
    assert_int_equal(kv_snapshot_write_path(t.s, c.path, false), 0);
    assert_int_equal(kv_snapshot_file_info(c.path, &info), 0);
    assert_int_equal(info.revision, kv_current_revision(t.s));
    kvt_done(&t);
}

/* A copier that pauses between copies, so a restore finds a moment with no copy running. */
static void *copy_loop_paced(void *arg)
{
    copier *c = arg;
    while (!atomic_load(&c->stop)) {
        int rc = kv_snapshot_write_path(c->s, c->path, false);
        kv_snapshot_info info;
        if (rc != 0 || kv_snapshot_file_info(c->path, &info) != 0 || info.cluster_id != 100)
            c->failures++;
        else
            c->copies++;
        usleep(500);
    }
    return NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* Restores of a store that another thread keeps copying: each restore either waits for
 * no copy (KV_EBUSY while one runs) or swaps the environment with no copy able to start
 * in between; every copy is a whole, readable store. */
static void test_restore_while_copying(void **state)
{
    (void)state;
    kvt a, b;
    kv_options o;
    kv_options_init(&o);
    o.no_sync = true;
    kvt_init(&a, "kv-rcopy-a", &o);
    kvt_init(&b, "kv-rcopy-b", &o);
    kv_wtxn *w;
    assert_int_equal(kv_wtxn_begin(a.s, &w), 0);
    assert_int_equal(kv_ids_set(w, 100, 1), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    assert_int_equal(kv_wtxn_begin(b.s, &w), 0);
    assert_int_equal(kv_ids_set(w, 100, 2), 0);
    assert_int_equal(kv_wtxn_commit(w), 0);
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(kvt_put1(&a, k, "some value of moderate length"), 0);
    }
    char master[512], path[512];
    snprintf(master, sizeof master, "%s/master.db", a.dir);
    snprintf(path, sizeof path, "%s/in.db", b.dir);
    assert_int_equal(kv_snapshot_write_path(a.s, master, false), 0);
    kv_snapshot_info info;
    assert_int_equal(kv_snapshot_file_info(master, &info), 0);
    kv_snap_meta ls = {info.applied_index, 1};

    copier c = {.s = b.s};
    snprintf(c.path, sizeof c.path, "%s/copy.db", a.dir);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, copy_loop_paced, &c), 0);
    int restored = 0, busy = 0;
    int64_t deadline = mono_ms() + 20000;
    while (restored < 30 && mono_ms() < deadline) {
        copy_file(master, path);
        int rc = kv_restore(b.s, path, &ls);
        if (rc == KV_EBUSY) {
            busy++;
            unlink(path);
            continue;
        }
        assert_int_equal(rc, 0);
        restored++;
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    print_message("# %d restores (%d refused while a copy ran), %d copies\n", restored, busy,
                  c.copies);
    assert_int_equal(restored, 30);
    assert_int_equal(c.failures, 0);
    assert_true(c.copies > 0);
    char buf[64];
    assert_string_equal(kvt_get(&b, "k7", 0, buf, sizeof buf), "some value of moderate length");
    kvt_done(&a);
    kvt_done(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_attach_revoke),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_map_full_and_quota),
        cmocka_unit_test(test_snapshot_restore),
        cmocka_unit_test(test_snapshot_while_writing),
        cmocka_unit_test(test_restore_while_copying),
    };
    return PLINTH_RUN_TESTS("kv_lease", tests);
}

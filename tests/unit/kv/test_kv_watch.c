/* test_kv_watch — the watch hub: history replay then live events without a gap or a
 * duplicate, filters and prev_kv, compaction answers, stalled watchers that catch up
 * from the store and rejoin, progress notifications, and a random mix of all of it
 * checked against the list of every change the test made. */
#include "tests/unit/kv/kvtest.h"

typedef struct got {
    int64_t rev;
    bool del;
    char key[16];
    char val[24];
    bool has_prev;
    char pval[24];
    int64_t version;
} got;

typedef struct owner {
    got *ev;
    size_t n, cap;
    int busy;          /* >0: answer busy this many more times; <0: always busy */
    int busy_pct;      /* random busy answers, percent */
    int64_t last_header;
    int64_t compacted;
    int progress;
    int calls;
    kv_watcher *w;
    bool cancel_in_cb;
} owner;

static uint64_t rng = 88172645463325252ull;
static int rn(int n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (int)(rng % (uint64_t)n);
}

static int on_watch(const kv_watch_event_batch *b)
{
    owner *o = b->owner;
    o->calls++;
    if (o->busy < 0 || (o->busy > 0 && o->busy--) || (o->busy_pct && rn(100) < o->busy_pct))
        return KV_WATCH_BUSY;
    assert_true(b->revision >= o->last_header);
    o->last_header = b->revision;
    if (b->compact_revision) {
        o->compacted = b->compact_revision;
        return KV_WATCH_TAKEN;
    }
    if (b->progress) {
        o->progress++;
        return KV_WATCH_TAKEN;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const Mvccpb__Event *e = b->events[i];
        if (o->n == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 64;
            o->ev = realloc(o->ev, o->cap * sizeof(got));
        }
        got *g = &o->ev[o->n++];
        memset(g, 0, sizeof *g);
        g->rev = e->kv->mod_revision;
        g->del = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
        g->version = e->kv->version;
        snprintf(g->key, sizeof g->key, "%.*s", (int)e->kv->key.len, e->kv->key.data);
        snprintf(g->val, sizeof g->val, "%.*s", (int)e->kv->value.len, e->kv->value.data);
        if (e->prev_kv) {
            g->has_prev = true;
            snprintf(g->pval, sizeof g->pval, "%.*s", (int)e->prev_kv->value.len,
                     e->prev_kv->value.data);
        }
        assert_true(g->rev <= b->revision);
    }
    if (o->cancel_in_cb) {
        kv_watch_cancel(o->w);
        o->w = NULL;
    }
    return KV_WATCH_TAKEN;
}

static kv_watcher *watch(kvt *t, owner *o, const char *key, const char *end, int64_t start,
                         bool noput, bool nodel, bool prev)
{
    kv_watch_opts opt = {0};
    opt.key = (const uint8_t *)key;
    opt.key_len = strlen(key);
    if (end) {
        opt.range_end = (const uint8_t *)(end[0] ? end : "");
        opt.range_end_len = end[0] ? strlen(end) : 1;
    }
    opt.start_revision = start;
    opt.no_put = noput;
    opt.no_delete = nodel;
    opt.prev_kv = prev;
    opt.progress_notify = true;
    opt.owner = o;
    opt.fn = on_watch;
    kv_watcher *w = NULL;
    assert_int_equal(kv_watch_create(t->s, &opt, &w), 0);
    o->w = w;
    return w;
}

static void drain(kvt *t)
{
    for (int i = 0; i < 10000 && kv_watch_notify(t->s) > 0; i++)
        ;
}

static void test_history_then_live(void **state)
{
    (void)state;
    kvt t;
    owner o = {0}, f = {0};
    kvt_init(&t, "kv-watch1", NULL);
    for (int i = 0; i < 50; i++) { /* revisions 2..51 */
        char k[16], v[16];
        snprintf(k, 16, "k%d", i % 7);
        snprintf(v, 16, "v%d", i);
        assert_int_equal(kvt_put1(&t, k, v), 0);
    }
    t.opt.watch_batch_events = 8; /* force several catch-up batches */
    kvt_reopen(&t);
    watch(&t, &o, "k", "l", 10, false, false, true);
    watch(&t, &f, "k3", NULL, 0, false, false, false); /* from now on, one key */
    assert_false(kv_watch_synced(o.w));
    assert_true(kv_watch_synced(f.w));
    /* interleave live writes with the catch-up */
    for (int i = 50; i < 80; i++) {
        char k[16], v[16];
        snprintf(k, 16, "k%d", i % 7);
        snprintf(v, 16, "v%d", i);
        assert_int_equal(kvt_put1(&t, k, v), 0);
        kv_watch_notify(t.s);
    }
    drain(&t);
    assert_true(kv_watch_synced(o.w));
    assert_int_equal(o.n, 80 - 8); /* revisions 10..81 */
    for (size_t i = 0; i < o.n; i++) {
        assert_int_equal(o.ev[i].rev, 10 + (int64_t)i);
        char v[16];
        snprintf(v, 16, "v%d", (int)i + 8);
        assert_string_equal(o.ev[i].val, v);
        /* prev_kv: the same key 7 revisions earlier */
        assert_true(o.ev[i].has_prev);
        snprintf(v, 16, "v%d", (int)i + 1);
        assert_string_equal(o.ev[i].pval, v);
    }
    /* the single-key watcher saw only k3's live puts */
    for (size_t i = 0; i < f.n; i++)
        assert_string_equal(f.ev[i].key, "k3");
    assert_int_equal(f.n, 4); /* i = 52, 59, 66, 73 */
    kv_watch_cancel(o.w);
    kv_watch_cancel(f.w);
    free(o.ev);
    free(f.ev);
    kvt_done(&t);
}

static void test_filters_and_deletes(void **state)
{
    (void)state;
    kvt t;
    owner np = {0}, nd = {0}, all = {0};
    kv_result r;
    kvt_init(&t, "kv-watch2", NULL);
    watch(&t, &np, "a", "", 0, true, false, false); /* from "a" on, no puts */
    watch(&t, &nd, "a", "", 0, false, true, false);
    watch(&t, &all, "a", "", 0, false, false, true);
    assert_int_equal(kvt_put1(&t, "a", "1"), 0);
    assert_int_equal(kvt_put1(&t, "b", "2"), 0);
    assert_int_equal(kvt_del(&t, "a", "c", &r), 0); /* one revision, two deletes */
    kv_result_free(&r);
    kv_watch_notify(t.s);
    assert_int_equal(np.n, 2);
    assert_true(np.ev[0].del && np.ev[1].del);
    assert_int_equal(np.ev[0].rev, 4);
    assert_int_equal(np.ev[1].rev, 4);
    assert_int_equal(nd.n, 2);
    assert_false(nd.ev[0].del);
    assert_int_equal(all.n, 4);
    assert_true(all.ev[2].has_prev);
    assert_string_equal(all.ev[2].pval, "1");
    assert_int_equal(all.ev[0].version, 1);
    /* a watcher created now from revision 2 replays the same four events from disk */
    owner late = {0};
    watch(&t, &late, "a", "", 2, false, false, true);
    drain(&t);
    assert_int_equal(late.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(late.ev[i].rev, all.ev[i].rev);
        assert_int_equal(late.ev[i].del, all.ev[i].del);
        assert_string_equal(late.ev[i].key, all.ev[i].key);
        assert_int_equal(late.ev[i].has_prev, all.ev[i].has_prev);
        assert_string_equal(late.ev[i].pval, all.ev[i].pval);
    }
    free(np.ev);
    free(nd.ev);
    free(all.ev);
    free(late.ev);
    kvt_done(&t); /* kv_close frees the watchers */
}

static void test_compacted(void **state)
{
    (void)state;
    kvt t;
    owner slow = {0}, o2 = {0};
    kvt_init(&t, "kv-watch3", NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(kvt_put1(&t, "x", "v"), 0); /* 2..11 */
    watch(&t, &slow, "x", NULL, 0, false, false, false);
    slow.busy = -1;
    assert_int_equal(kvt_put1(&t, "x", "w"), 0); /* 12 */
    kv_watch_notify(t.s);
    assert_false(kv_watch_synced(slow.w));
    assert_int_equal(kvt_put1(&t, "x", "w"), 0); /* 13 */
    assert_int_equal(kvt_compact(&t, 13), 0);
    kv_watch_notify(t.s);
    /* creating below the compaction is refused with the compacted revision */
    kv_watch_opts opt = {.key = (const uint8_t *)"x", .key_len = 1, .start_revision = 5,
                         .fn = on_watch, .owner = &o2};
    kv_watcher *w;
    assert_int_equal(kv_watch_create(t.s, &opt, &w), KV_ECOMPACTED);
    assert_int_equal(kv_compact_revision(t.s), 13);
    /* the stalled watcher needed revision 12: it learns it was compacted */
    slow.busy = 0;
    kv_watch_resume(slow.w);
    drain(&t);
    assert_int_equal(slow.compacted, 13);
    assert_int_equal(slow.n, 0);
    kv_watch_cancel(slow.w);
    /* starting exactly at the compacted revision is allowed, as in etcd */
    opt.start_revision = 13;
    assert_int_equal(kv_watch_create(t.s, &opt, &w), 0);
    drain(&t);
    assert_int_equal(o2.n, 1);
    assert_int_equal(o2.ev[0].rev, 13);
    kv_watch_cancel(w);
    /* a delete at exactly the compacted revision is still seen from that revision */
    kv_result r;
    assert_int_equal(kvt_del(&t, "x", NULL, &r), 0); /* 14 */
    kv_result_free(&r);
    assert_int_equal(kvt_compact(&t, 14), 0);
    owner o3 = {0};
    watch(&t, &o3, "x", NULL, 14, false, false, false);
    drain(&t);
    assert_int_equal(o3.n, 1);
    assert_true(o3.ev[0].del);
    assert_int_equal(o3.ev[0].rev, 14);
    free(o3.ev);
    free(o2.ev);
    kvt_done(&t);
}

static void test_stalled_catches_up(void **state)
{
    (void)state;
    kvt t;
    owner s1 = {0}, fast = {0};
    kvt_init(&t, "kv-watch4", NULL);
    watch(&t, &s1, "", "", 0, false, false, false);
    watch(&t, &fast, "", "", 0, false, false, false);
    s1.busy = -1;
    int64_t base = kv_current_revision(t.s);
    for (int i = 0; i < 3000; i++) {
        char k[16];
        snprintf(k, 16, "k%d", i % 50);
        assert_int_equal(kvt_put1(&t, k, "v"), 0);
        kv_watch_notify(t.s);
        if (i == 1500) { /* the owner has room again for a while */
            s1.busy = 0;
            kv_watch_resume(s1.w);
        }
        if (i == 1600)
            s1.busy = -1;
    }
    assert_int_equal(fast.n, 3000);
    assert_true(s1.n < 3000);
    assert_false(kv_watch_synced(s1.w));
    s1.busy = 0;
    kv_watch_resume(s1.w);
    drain(&t);
    assert_true(kv_watch_synced(s1.w));
    assert_int_equal(s1.n, 3000);
    for (size_t i = 0; i < s1.n; i++)
        assert_int_equal(s1.ev[i].rev, base + 1 + (int64_t)i);
    /* rejoined: live events again */
    assert_int_equal(kvt_put1(&t, "k", "v"), 0);
    kv_watch_notify(t.s);
    assert_int_equal(s1.n, 3001);
    /* a callback may cancel its own watcher */
    s1.cancel_in_cb = true;
    assert_int_equal(kvt_put1(&t, "k", "v"), 0);
    kv_watch_notify(t.s);
    assert_null(s1.w);
    assert_int_equal(kvt_put1(&t, "k", "v"), 0);
    kv_watch_notify(t.s);
    assert_int_equal(s1.n, 3002);
    free(s1.ev);
    free(fast.ev);
    kvt_done(&t);
}

/* a watcher created while a turn is open, after the turn's events were produced with no
 * watcher around (so none were kept), still gets them: from the store */
static void test_created_mid_turn(void **state)
{
    (void)state;
    kvt t;
    owner o = {0};
    kvt_init(&t, "kv-watch8", NULL);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = kvt_b("m");
    p.value = kvt_b("1");
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = &p;
    kv_wtxn *w;
    kv_result r;
    assert_int_equal(kv_wtxn_begin(t.s, &w), 0);
    assert_int_equal(kv_apply(w, ++t.index, 1, &req, &r), 0); /* revision 2 */
    kv_result_free(&r);
    watch(&t, &o, "m", NULL, 2, false, false, false);
    assert_int_equal(kv_wtxn_commit(w), 0);
    drain(&t);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.ev[0].rev, 2);
    assert_int_equal(kvt_put1(&t, "m", "2"), 0);
    kv_watch_notify(t.s);
    assert_int_equal(o.n, 2);
    free(o.ev);
    kvt_done(&t);
}

/* many watchers far behind share the catch-up work: none waits for the others */
static void test_catch_up_fair(void **state)
{
    (void)state;
    kvt t;
    kvt_init(&t, "kv-watch7", NULL);
    t.opt.watch_batch_events = 16;
    kvt_reopen(&t);
    for (int i = 0; i < 2000; i++) {
        char k[16];
        snprintf(k, 16, "k%d", i % 100);
        assert_int_equal(kvt_put1(&t, k, "v"), 0);
    }
    owner o[20];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 20; i++)
        watch(&t, &o[i], "k", "l", 2, false, false, false);
    for (int i = 0; i < 10; i++)
        kv_watch_notify(t.s);
    for (int i = 0; i < 20; i++)
        assert_true(o[i].n >= 48); /* 80 batches of 16 shared by 20 watchers */
    drain(&t);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(o[i].n, 2000);
        free(o[i].ev);
    }
    kvt_done(&t);
}

static void test_progress(void **state)
{
    (void)state;
    kvt t;
    owner o = {0};
    kvt_init(&t, "kv-watch5", NULL);
    watch(&t, &o, "p", NULL, 0, false, false, false);
    kv_watch_progress_tick(t.s, 1000, 500);
    kv_watch_progress_tick(t.s, 1200, 500);
    assert_int_equal(o.progress, 0);
    kv_watch_progress_tick(t.s, 1600, 500);
    assert_int_equal(o.progress, 1);
    assert_int_equal(o.last_header, kv_current_revision(t.s));
    assert_int_equal(kvt_put1(&t, "p", "1"), 0);
    kv_watch_notify(t.s);
    kv_watch_progress_tick(t.s, 2200, 500); /* delivered recently: no progress */
    assert_int_equal(o.progress, 1);
    kv_watch_progress_tick(t.s, 2800, 500);
    assert_int_equal(o.progress, 2);
    free(o.ev);
    kvt_done(&t);
}

/* ---- random mix against the list of every change ---- */
typedef struct change {
    int64_t rev;
    bool del;
    char key[16];
    char val[16];
} change;

static bool in_rng(const char *k, const char *key, const char *end)
{
    if (strcmp(k, key) < 0)
        return false;
    if (!end)
        return !strcmp(k, key);
    if (!end[0])
        return true;
    return strcmp(k, end) < 0;
}

static void random_watchers_seed(uint64_t seed)
{
    kvt t;
    rng = seed * 0x9E3779B97F4A7C15ull + 7;
    kvt_init(&t, "kv-watch6", NULL);
    t.opt.watch_batch_events = 16;
    kvt_reopen(&t);
    enum { NW = 12, NOPS = 4000 };
    change *ch = calloc(NOPS * 4, sizeof(change));
    size_t nch = 0;
    owner o[NW];
    const char *keys[NW], *ends[NW];
    int64_t starts[NW];
    bool noput[NW], nodel[NW];
    memset(o, 0, sizeof o);
    const char *ks[] = {"a", "b", "c", "d", "e", "f"};
    int created = 0;
    for (int i = 0; i < NOPS; i++) {
        int x = rn(100);
        char k[16], v[16];
        snprintf(k, 16, "%s%d", ks[rn(6)], rn(4));
        snprintf(v, 16, "v%d", i);
        if (x < 60) {
            assert_int_equal(kvt_put1(&t, k, v), 0);
            change c = {kv_current_revision(t.s), false, "", ""};
            snprintf(c.key, 16, "%s", k);
            snprintf(c.val, 16, "%s", v);
            ch[nch++] = c;
        } else if (x < 75) {
            kv_result r;
            char e[16];
            snprintf(e, 16, "%s", ks[rn(6)]);
            const char *end = rn(2) ? e : NULL;
            const char *key = end ? ks[rn(6)] : k;
            assert_int_equal(kvt_del(&t, key, end, &r), 0);
            Etcdserverpb__DeleteRangeResponse *dr = (Etcdserverpb__DeleteRangeResponse *)r.msg;
            for (size_t j = 0; j < dr->n_prev_kvs; j++) {
                change c = {kv_current_revision(t.s), true, "", ""};
                snprintf(c.key, 16, "%.*s", (int)dr->prev_kvs[j]->key.len, dr->prev_kvs[j]->key.data);
                ch[nch++] = c;
            }
            kv_result_free(&r);
        } else if (x < 80 && created < NW) {
            int w = created++;
            static char kbuf[NW][8];
            int a = rn(6), b = a + 1 + rn(6 - a);
            ends[w] = rn(3) == 0 ? NULL : rn(2) ? "" : b < 6 ? ks[b] : "g";
            snprintf(kbuf[w], 8, "%s%s", ks[a], ends[w] ? "" : "1");
            keys[w] = kbuf[w];
            starts[w] = rn(3) == 0 ? 0 : 1 + rn((int)kv_current_revision(t.s));
            if (starts[w] == 0)
                starts[w] = kv_current_revision(t.s) + 1;
            noput[w] = rn(5) == 0;
            nodel[w] = !noput[w] && rn(5) == 0;
            o[w].busy_pct = rn(3) == 0 ? 0 : rn(60);
            watch(&t, &o[w], keys[w], ends[w], starts[w], noput[w], nodel[w], false);
        } else if (x < 90) {
            int w = rn(NW);
            if (w < created)
                kv_watch_resume(o[w].w);
        } else if (x < 91) {
            kvt_reopen(&t); /* watchers are gone with the handle: re-create them */
            for (int w = 0; w < created; w++) {
                int64_t next = o[w].n ? o[w].ev[o[w].n - 1].rev + 1 : starts[w];
                /* like a client re-watching from its last revision + 1 */
                watch(&t, &o[w], keys[w], ends[w], next, noput[w], nodel[w], false);
            }
        }
        kv_watch_notify(t.s);
    }
    for (int w = 0; w < created; w++) {
        o[w].busy_pct = 0;
        kv_watch_resume(o[w].w);
    }
    drain(&t);
    for (int w = 0; w < created; w++) {
        assert_true(kv_watch_synced(o[w].w));
        size_t j = 0;
        for (size_t i = 0; i < nch; i++) {
            const change *c = &ch[i];
            if (c->rev < starts[w] || !in_rng(c->key, keys[w], ends[w]))
                continue;
            if (c->del ? nodel[w] : noput[w])
                continue;
            assert_true(j < o[w].n);
            assert_int_equal(o[w].ev[j].rev, c->rev);
            assert_int_equal(o[w].ev[j].del, c->del);
            assert_string_equal(o[w].ev[j].key, c->key);
            if (!c->del)
                assert_string_equal(o[w].ev[j].val, c->val);
            j++;
        }
        assert_int_equal(j, o[w].n);
        free(o[w].ev);
    }
    free(ch);
    kvt_done(&t);
}

static void test_random_watchers(void **state)
{
    (void)state;
    for (uint64_t s = 1; s <= 10; s++)
        random_watchers_seed(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_then_live),
        cmocka_unit_test(test_filters_and_deletes),
        cmocka_unit_test(test_compacted),
        cmocka_unit_test(test_stalled_catches_up),
        cmocka_unit_test(test_catch_up_fair),
        cmocka_unit_test(test_created_mid_turn),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_random_watchers),
    };
    return PLINTH_RUN_TESTS("kv_watch", tests);
}

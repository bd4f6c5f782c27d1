/* test_lincheck — the linearizability checker on known histories and against a brute-force checker. */
#define LINCHECK_NO_MAIN
#include "tests/tools/lincheck.c"

#include "tests/lib/testlib.h"

static int check(const char *text)
{
    return lincheck_text(text, NULL);
}

/* Runs the checker and returns its diagnostic text (caller frees). */
static char *diagnose(const char *text, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    *rc = lincheck_text(text, out);
    fclose(out);
    return buf;
}

static void test_sequential_ok(void **st)
{
    (void)st;
    assert_int_equal(check("c1 get x - 0 1 -\n"
                           "c1 put x a 2 3 ok\n"
                           "c1 get x - 4 5 a\n"
                           "c1 put x b 6 7 ok\n"
                           "c1 get x - 8 9 b\n"), 0);
    assert_int_equal(check(""), 0);
    assert_int_equal(check("# only a comment\n\n"), 0);
}

static void test_concurrent_ok(void **st)
{
    (void)st;
    /* Both reads overlap the write: one may see the old value, one the new. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c2 put x b 5 30 ok\n"
                           "c3 get x - 12 20 b\n"
                           "c4 get x - 14 25 a\n"), 0);
    /* A read concurrent with the first write may still see nothing. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c2 get x - 1 12 -\n"
                           "c2 get x - 13 14 a\n"), 0);
}

static void test_stale_read_rejected(void **st)
{
    (void)st;
    int rc;
    char *msg = diagnose("c1 put x a 0 10 ok\n"
                         "c1 put x b 20 30 ok\n"
                         "c2 get x - 40 50 a\n", &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "NOT linearizable: key x"));
    assert_non_null(strstr(msg, "line 3: c2 get x -> a"));
    assert_non_null(strstr(msg, "stale read"));
    free(msg);
    /* Reading nothing after an acknowledged write is stale too. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c2 get x - 11 12 -\n"), 1);
}

static void test_opposite_orders_rejected(void **st)
{
    (void)st;
    /* c3 sees b then a, c4 sees a then b, all after both writes began: no single order. */
    const char *h = "c1 put x a 0 100 ok\n"
                    "c2 put x b 0 100 ok\n"
                    "c3 get x - 10 20 b\n"
                    "c3 get x - 30 40 a\n"
                    "c4 get x - 10 20 a\n"
                    "c4 get x - 30 40 b\n";
    assert_int_equal(check(h), 1);
    /* With the second reads of each overlapping, it is fine. */
    assert_int_equal(check("c1 put x a 0 100 ok\n"
                           "c2 put x b 0 100 ok\n"
                           "c3 get x - 10 20 a\n"
                           "c3 get x - 30 40 b\n"
                           "c4 get x - 10 20 a\n"
                           "c4 get x - 30 40 b\n"), 0);
}

static void test_lost_write_rejected(void **st)
{
    (void)st;
    /* b was acknowledged, then a later read still sees a, and later ones nothing of b. */
    int rc;
    char *msg = diagnose("c1 put x a 0 10 ok\n"
                         "c2 put x b 20 30 ok\n"
                         "c3 get x - 35 36 a\n"
                         "c3 get x - 40 41 a\n", &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "key x"));
    free(msg);
    /* A read of a value nobody wrote. */
    msg = diagnose("c1 put x a 0 10 ok\nc2 get x - 20 30 zz\n", &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "a value no operation wrote"));
    free(msg);
    /* A read of a value from the future. */
    msg = diagnose("c2 get x - 0 5 a\nc1 put x a 10 20 ok\n", &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "began after the read returned"));
    free(msg);
}

static void test_unknown_outcomes(void **st)
{
    (void)st;
    /* A timed-out write may have happened... */
    assert_int_equal(check("c1 put x a 0 - unknown\n"
                           "c2 get x - 50 60 a\n"), 0);
    /* ...or never. */
    assert_int_equal(check("c1 put x a 0 - unknown\n"
                           "c2 get x - 50 60 -\n"), 0);
    /* ...and late: long after the client gave up. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c1 put x b 20 - unknown\n"
                           "c2 get x - 50 60 a\n"
                           "c2 get x - 70 80 b\n"), 0);
    /* But not before it was invoked. */
    assert_int_equal(check("c2 get x - 0 5 a\n"
                           "c1 put x a 10 - unknown\n"), 1);
    /* Once seen, it cannot be undone by going back to the old value. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c1 put x b 20 - unknown\n"
                           "c2 get x - 50 60 b\n"
                           "c2 get x - 70 80 a\n"), 1);
    /* A read with an unknown result constrains nothing. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c2 get x - 20 - unknown\n"), 0);
    /* A return time given for an unknown outcome is ignored: it may still land later. */
    assert_int_equal(check("c1 put x a 0 10 ok\n"
                           "c1 put x b 20 30 unknown\n"
                           "c2 get x - 40 41 a\n"
                           "c2 get x - 50 51 b\n"), 0);
}

static void test_cas(void **st)
{
    (void)st;
    assert_int_equal(check("c1 put x a 0 1 ok\n"
                           "c1 cas x a->b 2 3 ok\n"
                           "c1 get x - 4 5 b\n"
                           "c1 cas x a->c 6 7 fail\n"
                           "c1 cas x -->d 8 9 fail\n"), 0);
    assert_int_equal(check("c1 cas x -->a 0 1 ok\n"
                           "c1 get x - 4 5 a\n"), 0);
    assert_int_equal(check("c1 put x a 0 1 ok\n"
                           "c1 cas x a->b 2 3 fail\n"), 1);
    assert_int_equal(check("c1 put x a 0 1 ok\n"
                           "c1 cas x b->c 2 3 ok\n"), 1);
    /* Two successful cas from the same value: only one can win. */
    assert_int_equal(check("c1 put x a 0 1 ok\n"
                           "c2 cas x a->b 2 10 ok\n"
                           "c3 cas x a->c 2 10 ok\n"), 1);
}

static void test_delete(void **st)
{
    (void)st;
    assert_int_equal(check("c1 put x a 0 1 ok\n"
                           "c1 del x - 2 3 ok\n"
                           "c2 get x - 4 5 -\n"
                           "c2 cas x -->b 6 7 ok\n"), 0);
    int rc;
    char *msg = diagnose("c1 put x a 0 1 ok\n"
                         "c1 del x - 2 3 ok\n"
                         "c2 get x - 4 5 a\n", &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "line 2 (del -> -)"));
    free(msg);
    /* A timed-out delete may land late. */
    assert_int_equal(check("c1 put x a 0 1 ok\n"
                           "c1 del x - 2 - unknown\n"
                           "c2 get x - 4 5 a\n"
                           "c2 get x - 6 7 -\n"), 0);
    assert_int_equal(check("c1 del x a 0 1 ok\n"), 2);
}

static void test_minimized_counterexample(void **st)
{
    (void)st;
    /* A stale read buried in concurrent traffic shrinks to the three ops that explain it. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "c0 put x old 0 10 ok\n");
    for (int i = 0; i < 30; i++) {
        int64_t t = 20 + i * 10;
        fprintf(f, "c1 get x - %" PRId64 " %" PRId64 " %s\n", t, t + 3, i ? "v" : "old");
        fprintf(f, "c2 put x v %" PRId64 " %" PRId64 " ok\n", t + 1, t + 2);
    }
    fprintf(f, "c9 get x - 400 410 old\n");   /* long after "v" was acknowledged */
    fclose(f);
    int rc;
    char *msg = diagnose(buf, &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "a small failing sub-history (3 of 62 operations)"));
    assert_non_null(strstr(msg, "    c0 put x old 0 10 ok\n"));
    assert_non_null(strstr(msg, "    c9 get x - 400 410 old\n"));
    free(msg);
    free(buf);
}

static void test_keys_independent(void **st)
{
    (void)st;
    int rc;
    char *msg = diagnose("c1 put x a 0 10 ok\n"
                         "c1 put y a 0 10 ok\n"
                         "c2 get x - 20 30 a\n"
                         "c1 put y b 40 50 ok\n"
                         "c2 get y - 60 70 a\n", &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "key y"));
    assert_null(strstr(msg, "key x"));
    free(msg);
}

static void test_malformed(void **st)
{
    (void)st;
    assert_int_equal(check("c1 put x a 0 10\n"), 2);
    assert_int_equal(check("c1 frob x a 0 10 ok\n"), 2);
    assert_int_equal(check("c1 put x a 10 5 ok\n"), 2);
    assert_int_equal(check("c1 put x a 0 - ok\n"), 2);
    assert_int_equal(check("c1 cas x ab 0 1 ok\n"), 2);
    assert_int_equal(check("c1 put x a zero 1 ok\n"), 2);
}

static void test_many_concurrent_unknowns(void **st)
{
    (void)st;
    /* 40 timed-out writes during an outage, then reads: must stay fast. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "c0 put x v0 0 10 ok\n");
    for (int i = 1; i <= 40; i++)
        fprintf(f, "c%d put x v%d %d - unknown\n", i, i, 20 + i);
    fprintf(f, "c0 get x - 100 110 v7\nc0 get x - 120 130 v33\nc0 get x - 140 150 v33\n");
    fclose(f);
    assert_int_equal(check(buf), 0);
    free(buf);
}

static void test_unknowns_with_failed_cas_fast(void **st)
{
    (void)st;
    /* Timed-out writes and cas mixed with failed cas (which could depend on any of them):
     * the search must not try every place every timed-out write could go. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "c0 put x v0 0 10 ok\n");
    int64_t t = 20;
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < 4; i++)
            fprintf(f, "u%d put x r%dv%d %" PRId64 " - unknown\n", i, round, i, t + i);
        fprintf(f, "u9 cas x r%dv1->r%dw %" PRId64 " - unknown\n", round, round, t + 4);
        fprintf(f, "c1 cas x v0->z%d %" PRId64 " %" PRId64 " fail\n", round, t + 5, t + 30);
        fprintf(f, "c2 get x - %" PRId64 " %" PRId64 " r%dv2\n", t + 40, t + 50, round);
        fprintf(f, "c3 cas x r%dv2->r%dz %" PRId64 " %" PRId64 " ok\n", round, round, t + 60, t + 70);
        fprintf(f, "c2 get x - %" PRId64 " %" PRId64 " r%dz\n", t + 80, t + 90, round);
        t += 100;
    }
    fclose(f);
    assert_int_equal(check(buf), 0);
    free(buf);
}

/* A long simulated run like histclient's: 6 clients, puts, gets and cas on one key, one
 * op in 8 timing out (taking effect or not). Linearizable by construction; must be
 * decided well within the search budget. */
struct simop { int64_t inv, lin, ret; int client, kind, timeout, applied, seq; };

static int cmp_lin(const void *a, const void *b)
{
    const struct simop *x = a, *y = b;
    return x->lin < y->lin ? -1 : x->lin > y->lin;
}

static void test_long_simulated_run(void **st)
{
    (void)st;
    enum { CLIENTS = 6, PER = 500 };
    static struct simop ops[CLIENTS * PER];
    uint64_t rng = 777;
    int n = 0;
    for (int c = 0; c < CLIENTS; c++) {
        int64_t t = (int64_t)(splitmix(&rng) % 10);
        for (int i = 0; i < PER; i++) {
            struct simop *o = &ops[n++];
            o->client = c;
            o->seq = i;
            o->inv = t + 1 + (int64_t)(splitmix(&rng) % 10);
            /* Outages: in 4 windows of the run most ops time out; a timed-out op may
             * take effect long after the client gave up on it (at 150). */
            int64_t phase = o->inv % 2000;
            int outage = phase >= 1000 && phase < 1400;
            o->timeout = outage ? splitmix(&rng) % 10 < 8 : splitmix(&rng) % 20 == 0;
            o->applied = !o->timeout || splitmix(&rng) % 2;
            o->lin = o->inv + 1 + (int64_t)(splitmix(&rng) % (o->timeout ? 400 : 30));
            o->ret = o->timeout ? o->inv + 150 : o->lin + 1 + (int64_t)(splitmix(&rng) % 30);
            o->kind = (int)(splitmix(&rng) % 10);
            t = o->ret;
        }
    }
    /* Lin points are distinct enough; ties resolved by sort order are still valid. */
    qsort(ops, (size_t)n, sizeof(ops[0]), cmp_lin);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    char state[32] = "-", seen[CLIENTS][32];
    for (int c = 0; c < CLIENTS; c++)
        snprintf(seen[c], sizeof(seen[c]), "-");
    for (int i = 0; i < n; i++) {
        const struct simop *o = &ops[i];
        int c = o->client;
        char val[32];
        snprintf(val, sizeof(val), "c%d-%d", c, o->seq);
        if (o->kind < 4) {
            if (o->timeout) {
                fprintf(f, "c%d get x - %" PRId64 " - unknown\n", c, o->inv);
                continue;
            }
            fprintf(f, "c%d get x - %" PRId64 " %" PRId64 " %s\n", c, o->inv, o->ret, state);
            snprintf(seen[c], sizeof(seen[c]), "%s", state);
        } else if (o->kind < 7) {
            if (o->applied)
                snprintf(state, sizeof(state), "%s", val);
            if (o->timeout)
                fprintf(f, "c%d put x %s %" PRId64 " - unknown\n", c, val, o->inv);
            else
                fprintf(f, "c%d put x %s %" PRId64 " %" PRId64 " ok\n", c, val, o->inv, o->ret);
            if (!o->timeout)
                snprintf(seen[c], sizeof(seen[c]), "%s", val);
        } else {
            int match = strcmp(state, seen[c]) == 0;
            char old[32];
            snprintf(old, sizeof(old), "%s", seen[c]);
            if (match && o->applied)
                snprintf(state, sizeof(state), "%s", val);
            if (o->timeout) {
                fprintf(f, "c%d cas x %s->%s %" PRId64 " - unknown\n", c, old, val, o->inv);
            } else {
                fprintf(f, "c%d cas x %s->%s %" PRId64 " %" PRId64 " %s\n", c, old, val, o->inv,
                        o->ret, match ? "ok" : "fail");
                if (match)
                    snprintf(seen[c], sizeof(seen[c]), "%s", val);
            }
        }
    }
    fclose(f);
    int rc = check(buf);
    if (rc != 0) {
        int r2;
        char *msg = diagnose(buf, &r2);
        fprintf(stderr, "%s", msg);
        free(msg);
    }
    assert_int_equal(rc, 0);
    free(buf);
}

/* ---- brute force: every real-time-respecting order of every subset of unknown ops ---- */

struct bop { int kind, outcome, arg, arg2, result; int64_t inv, ret; };

static int brute_rec(const struct bop *ops, int n, unsigned include, unsigned placed, int state)
{
    if ((placed & include) == include)
        return 1;
    for (int i = 0; i < n; i++) {
        if (!(include & (1u << i)) || (placed & (1u << i)))
            continue;
        int blocked = 0;
        for (int j = 0; j < n && !blocked; j++)
            if ((include & (1u << j)) && !(placed & (1u << j)) && j != i &&
                ops[j].outcome != LC_UNKNOWN && ops[j].ret < ops[i].inv)
                blocked = 1;
        if (blocked)
            continue;
        /* The register, written out again independently of the checker's model. */
        const struct bop *o = &ops[i];
        int next = state, legal = 1;
        if (o->kind == LC_GET)
            legal = o->result == state;
        else if (o->kind == LC_PUT)
            next = o->arg;
        else if (o->outcome == LC_OK)
            legal = state == o->arg, next = o->arg2;
        else if (o->outcome == LC_FAIL)
            legal = state != o->arg;
        else if (state == o->arg)
            next = o->arg2;
        if (legal && brute_rec(ops, n, include, placed | (1u << i), next))
            return 1;
    }
    return 0;
}

static int brute(const struct bop *ops, int n)
{
    unsigned must = 0, optional = 0;
    for (int i = 0; i < n; i++) {
        if (ops[i].outcome != LC_UNKNOWN)
            must |= 1u << i;
        else if (ops[i].kind != LC_GET)
            optional |= 1u << i;
    }
    /* Enumerate subsets of the optional (unknown-outcome) writes. */
    unsigned sub = 0;
    do {
        if (brute_rec(ops, n, must | sub, 0, LC_ABSENT))
            return 1;
        sub = (sub - optional) & optional;
    } while (sub);
    return 0;
}

static uint64_t rng_state;
static unsigned rnd(unsigned n)
{
    return (unsigned)(splitmix(&rng_state) % n);
}

/* unique: every write has its own value (as histclient's do), which takes lincheck's
 * shortcuts for timed-out writes of unique values; otherwise values repeat. */
static void random_vs_brute_force(int unique, uint64_t seed)
{
    const char *vals[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    int agree = 0, lin = 0, nonlin = 0;
    rng_state = seed;
    for (int iter = 0; iter < 6000; iter++) {
        int n = 1 + (int)rnd(8);
        struct bop ops[9];
        int64_t lp[9];
        for (int i = 0; i < n; i++) {
            struct bop *o = &ops[i];
            o->inv = rnd(30);
            o->ret = o->inv + 1 + rnd(12);
            lp[i] = o->inv * 2 + 1 + rnd((unsigned)(o->ret - o->inv) * 2 - 1);
            unsigned k = rnd(10);
            o->kind = k < 4 ? LC_GET : k < 8 ? LC_PUT : LC_CAS;
            /* a put of -1 is a delete; a cas of -1 expects no value */
            if (unique) {
                o->arg = o->kind == LC_PUT ? (rnd(8) == 0 ? -1 : i) : (int)rnd((unsigned)n + 1) - 1;
                o->arg2 = i;
            } else {
                o->arg = (int)rnd(4) - 1;
                o->arg2 = (int)rnd(3);
            }
            o->outcome = LC_OK;
            o->result = LC_ABSENT;
        }
        /* Simulate a correct execution at the chosen points, then maybe corrupt it. */
        int order[9];
        for (int i = 0; i < n; i++)
            order[i] = i;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (lp[order[j]] < lp[order[i]]) {
                    int t = order[i]; order[i] = order[j]; order[j] = t;
                }
        int s = LC_ABSENT;
        for (int i = 0; i < n; i++) {
            struct bop *o = &ops[order[i]];
            int unknown = rnd(3) == 0 && o->kind != LC_GET;
            int applied = !unknown || rnd(2);
            if (o->kind == LC_GET) {
                o->result = s;
            } else if (o->kind == LC_PUT) {
                if (applied)
                    s = o->arg;
            } else {
                if (s == o->arg) {
                    if (applied)
                        s = o->arg2;
                } else
                    o->outcome = LC_FAIL;
            }
            if (unknown)
                o->outcome = LC_UNKNOWN;
        }
        if (rnd(2) == 0) {
            struct bop *o = &ops[rnd((unsigned)n)];
            if (o->kind == LC_GET)
                o->result = unique ? (int)rnd((unsigned)n + 1) - 1 : (int)rnd(4) - 1;
            else if (o->kind == LC_CAS && o->outcome != LC_UNKNOWN)
                o->outcome = o->outcome == LC_OK ? LC_FAIL : LC_OK;
            else
                o->inv += 10, o->ret += 10;
        }
        char text[2048];
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            const struct bop *o = &ops[i];
            const char *a = o->arg < 0 ? "-" : vals[o->arg];
            char ret[24];
            if (o->outcome == LC_UNKNOWN)
                snprintf(ret, sizeof(ret), "-");
            else
                snprintf(ret, sizeof(ret), "%" PRId64, o->ret);
            const char *oc = o->outcome == LC_OK ? "ok" : o->outcome == LC_FAIL ? "fail" : "unknown";
            if (o->kind == LC_GET)
                len += (size_t)snprintf(text + len, sizeof(text) - len, "c%d get k - %" PRId64 " %s %s\n",
                                        i, o->inv, ret, o->result < 0 ? "-" : vals[o->result]);
            else if (o->kind == LC_PUT && o->arg < 0)
                len += (size_t)snprintf(text + len, sizeof(text) - len, "c%d del k - %" PRId64 " %s %s\n",
                                        i, o->inv, ret, oc);
            else if (o->kind == LC_PUT)
                len += (size_t)snprintf(text + len, sizeof(text) - len, "c%d put k %s %" PRId64 " %s %s\n",
                                        i, a, o->inv, ret, oc);
            else
                len += (size_t)snprintf(text + len, sizeof(text) - len, "c%d cas k %s->%s %" PRId64 " %s %s\n",
                                        i, a, vals[o->arg2], o->inv, ret, oc);
        }
        int want = brute(ops, n) ? 0 : 1;
        int got = check(text);
        if (got != want) {
            fprintf(stderr, "iteration %d: brute force says %d, lincheck %d for:\n%s", iter, want, got, text);
            fail();
        }
        agree++;
        if (want == 0)
            lin++;
        else
            nonlin++;
    }
    /* The generator must exercise both verdicts. */
    assert_true(lin > 800);
    assert_true(nonlin > 400);
    assert_int_equal(agree, 6000);
}

static void test_random_vs_brute_force(void **st)
{
    (void)st;
    random_vs_brute_force(0, 12345);
}

static void test_random_unique_values_vs_brute_force(void **st)
{
    (void)st;
    random_vs_brute_force(1, 54321);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_ok),
        cmocka_unit_test(test_concurrent_ok),
        cmocka_unit_test(test_stale_read_rejected),
        cmocka_unit_test(test_opposite_orders_rejected),
        cmocka_unit_test(test_lost_write_rejected),
        cmocka_unit_test(test_unknown_outcomes),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_minimized_counterexample),
        cmocka_unit_test(test_keys_independent),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_many_concurrent_unknowns),
        cmocka_unit_test(test_unknowns_with_failed_cas_fast),
        cmocka_unit_test(test_long_simulated_run),
        cmocka_unit_test(test_random_vs_brute_force),
        cmocka_unit_test(test_random_unique_values_vs_brute_force),
    };
    return PLINTH_RUN_TESTS("lincheck", tests);
}

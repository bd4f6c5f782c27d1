/* lincheck — checks a recorded client history of a key/value store for linearizability. */
/*
 * Usage: lincheck [-v] [--no-minimize] [--budget STATES] HISTORY
 * Exit: 0 linearizable, 1 not linearizable (the key, an explanation and a small failing
 *       sub-history, unless --no-minimize, are printed),
 *       2 malformed input or search budget exhausted (inconclusive).
 *
 * History format: one operation per line, 7 fields separated by blanks; '#' starts a
 * comment line. Values are tokens without blanks; "-" means "no value" (key absent).
 *
 *   CLIENT put KEY VALUE      INVOKE RETURN ok|unknown
 *   CLIENT del KEY -          INVOKE RETURN ok|unknown
 *   CLIENT get KEY -          INVOKE RETURN VALUE|-|unknown
 *   CLIENT cas KEY OLD->NEW   INVOKE RETURN ok|fail|unknown
 *
 * INVOKE and RETURN are integers on one clock (histclient writes CLOCK_MONOTONIC ns).
 * RETURN may be "-" when the outcome is unknown. An operation whose outcome is unknown
 * (a timeout, a dropped connection) may have taken effect at any time after its
 * invocation, or never. Every key starts absent.
 *
 * The model is one register per key, so the history is split per key and each part is
 * checked alone (a history is linearizable iff every key's is, P-compositionality).
 * Each part is searched in the Wing-Gong style as improved by Lowe and used by
 * Porcupine: walk the call/return events in time order, linearize a pending call when the
 * register allows its result, backtrack at a return that nothing could precede, and
 * remember every (set of linearized ops, register value) already seen, so that no
 * configuration is explored twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LC_ABSENT (-1)
#define LC_INF INT64_MAX

enum lc_kind { LC_GET, LC_PUT, LC_CAS };
enum lc_outcome { LC_OK, LC_FAIL, LC_UNKNOWN };

struct lc_op {
    int line;
    int client;           /* index into the name table */
    int key;              /* index into the name table */
    enum lc_kind kind;
    enum lc_outcome outcome;
    int is_del;           /* a put of "no value": printed as del */
    int arg;              /* put: value; cas: expected old value */
    int arg2;             /* cas: new value */
    int result;           /* get: value read (LC_ABSENT for none) */
    int64_t inv, ret;     /* ret == LC_INF: never returned */
};

/* Interned strings (clients, keys, values): "-" is never interned, it is LC_ABSENT. */
struct lc_names {
    char **s;
    int n, cap;
    int *slots;   /* open hash of indices, -1 empty */
    int nslots;
};

struct lc_history {
    struct lc_names names;
    struct lc_op *ops;
    int n, cap;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int names_intern(struct lc_names *t, const char *s)
{
    if (t->n * 2 >= t->nslots) {
        int ns = t->nslots ? t->nslots * 2 : 256;
        int *slots = malloc(sizeof(int) * ns);
        if (!slots)
            return -2;
        memset(slots, 0xff, sizeof(int) * ns);
        for (int i = 0; i < t->n; i++) {
            uint64_t h = hash_str(t->s[i]) & (uint64_t)(ns - 1);
            while (slots[h] >= 0)
                h = (h + 1) & (uint64_t)(ns - 1);
            slots[h] = i;
        }
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    uint64_t h = hash_str(s) & (uint64_t)(t->nslots - 1);
    while (t->slots[h] >= 0) {
        if (strcmp(t->s[t->slots[h]], s) == 0)
            return t->slots[h];
        h = (h + 1) & (uint64_t)(t->nslots - 1);
    }
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 256;
        char **ns = realloc(t->s, sizeof(char *) * nc);
        if (!ns)
            return -2;
        t->s = ns;
        t->cap = nc;
    }
    if (!(t->s[t->n] = strdup(s)))
        return -2;
    t->slots[h] = t->n;
    return t->n++;
}

static const char *vname(const struct lc_history *h, int v)
{
    return v == LC_ABSENT ? "-" : h->names.s[v];
}

static void history_free(struct lc_history *h)
{
    for (int i = 0; i < h->names.n; i++)
        free(h->names.s[i]);
    free(h->names.s);
    free(h->names.slots);
    free(h->ops);
    memset(h, 0, sizeof(*h));
}

static int intern_value(struct lc_history *h, const char *s)
{
    return strcmp(s, "-") == 0 ? LC_ABSENT : names_intern(&h->names, s);
}

static int parse_time(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Parses one line into h; returns 0, or -1 with a message in err. */
static int parse_line(struct lc_history *h, char *line, int lineno, char *err, size_t errlen)
{
    char *f[8];
    int nf = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        if (nf == 0 && tok[0] == '#')
            return 0;
        if (nf == 8)
            break;
        f[nf++] = tok;
    }
    if (nf == 0)
        return 0;
    if (nf != 7) {
        snprintf(err, errlen, "line %d: expected 7 fields, found %d", lineno, nf);
        return -1;
    }
    struct lc_op op = {.line = lineno, .arg = LC_ABSENT, .arg2 = LC_ABSENT, .result = LC_ABSENT};
    op.client = names_intern(&h->names, f[0]);
    op.key = names_intern(&h->names, f[2]);
    if (parse_time(f[4], &op.inv) < 0) {
        snprintf(err, errlen, "line %d: bad invoke time '%s'", lineno, f[4]);
        return -1;
    }
    if (strcmp(f[5], "-") == 0)
        op.ret = LC_INF;
    else if (parse_time(f[5], &op.ret) < 0 || op.ret < op.inv) {
        snprintf(err, errlen, "line %d: bad return time '%s'", lineno, f[5]);
        return -1;
    }
    const char *res = f[6];
    if (strcmp(f[1], "put") == 0 || strcmp(f[1], "del") == 0) {
        op.kind = LC_PUT;
        op.is_del = f[1][0] == 'd';
        if (op.is_del && strcmp(f[3], "-") != 0) {
            snprintf(err, errlen, "line %d: del takes '-' as its value", lineno);
            return -1;
        }
        op.arg = intern_value(h, f[3]);
        if (strcmp(res, "ok") == 0)
            op.outcome = LC_OK;
        else if (strcmp(res, "unknown") == 0)
            op.outcome = LC_UNKNOWN;
        else
            goto bad_result;
    } else if (strcmp(f[1], "get") == 0) {
        op.kind = LC_GET;
        if (strcmp(res, "unknown") == 0) {
            op.outcome = LC_UNKNOWN;
        } else {
            op.outcome = LC_OK;
            op.result = intern_value(h, res);
        }
    } else if (strcmp(f[1], "cas") == 0) {
        op.kind = LC_CAS;
        char *arrow = strstr(f[3], "->");
        if (!arrow) {
            snprintf(err, errlen, "line %d: cas argument must be OLD->NEW", lineno);
            return -1;
        }
        *arrow = '\0';
        op.arg = intern_value(h, f[3]);
        op.arg2 = intern_value(h, arrow + 2);
        if (strcmp(res, "ok") == 0)
            op.outcome = LC_OK;
        else if (strcmp(res, "fail") == 0)
            op.outcome = LC_FAIL;
        else if (strcmp(res, "unknown") == 0)
            op.outcome = LC_UNKNOWN;
        else
            goto bad_result;
    } else {
        snprintf(err, errlen, "line %d: unknown operation '%s'", lineno, f[1]);
        return -1;
    }
    if (op.outcome != LC_UNKNOWN && op.ret == LC_INF) {
        snprintf(err, errlen, "line %d: a completed operation needs a return time", lineno);
        return -1;
    }
    if (op.outcome == LC_UNKNOWN)
        op.ret = LC_INF;   /* it may take effect at any time after its invocation */
    if (op.client < 0 || op.key < 0 || op.arg < -1 || op.arg2 < -1 || op.result < -1) {
        snprintf(err, errlen, "line %d: out of memory", lineno);
        return -1;
    }
    if (h->n == h->cap) {
        int nc = h->cap ? h->cap * 2 : 1024;
        struct lc_op *no = realloc(h->ops, sizeof(*no) * nc);
        if (!no) {
            snprintf(err, errlen, "line %d: out of memory", lineno);
            return -1;
        }
        h->ops = no;
        h->cap = nc;
    }
    h->ops[h->n++] = op;
    return 0;
bad_result:
    snprintf(err, errlen, "line %d: bad result '%s' for %s", lineno, res, f[1]);
    return -1;
}

static int history_parse(struct lc_history *h, FILE *in, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, in) > 0) {
        lineno++;
        if ((rc = parse_line(h, line, lineno, err, errlen)) < 0)
            break;
    }
    free(line);
    return rc;
}

/* ---- the search for one key ------------------------------------------------------- */

struct lc_entry {
    int op;          /* index into the key's op array */
    int is_call;
    int64_t time;
    int prev, next;  /* linked list over entries; -1 ends, index n2 is the head */
    int match;       /* the call's return entry / the return's call entry */
};

struct lc_memo {   /* set of (bitmap, state) seen, open addressing on a Zobrist hash */
    uint64_t *hash;
    int64_t *state;   /* register value and pending requirement, see check_key */
    uint64_t *bits;   /* nslots * words */
    char *used;
    size_t nslots, count;
    int words;
};

struct lc_key_result {
    int ok;                 /* 1 linearizable, 0 not, -1 budget exhausted / no memory */
    uint64_t states;        /* configurations explored */
    int best_depth;         /* longest linearizable prefix found */
    int *best_prefix;       /* its ops, in order */
    int best_block;         /* the op whose return ended that prefix */
    int best_state;         /* register value after the prefix */
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int memo_init(struct lc_memo *m, int words, size_t slots)
{
    memset(m, 0, sizeof(*m));
    m->words = words;
    m->nslots = slots;
    m->hash = calloc(slots, sizeof(uint64_t));
    m->state = calloc(slots, sizeof(int64_t));
    m->bits = calloc(slots * (size_t)words, sizeof(uint64_t));
    m->used = calloc(slots, 1);
    return (m->hash && m->state && m->bits && m->used) ? 0 : -1;
}

static void memo_free(struct lc_memo *m)
{
    free(m->hash);
    free(m->state);
    free(m->bits);
    free(m->used);
}

static int memo_insert(struct lc_memo *m, uint64_t h, const uint64_t *bits, int64_t state);

static int memo_grow(struct lc_memo *m)
{
    struct lc_memo old = *m;
    if (memo_init(m, old.words, old.nslots * 2) < 0) {
        memo_free(m);
        *m = old;
        return -1;
    }
    for (size_t i = 0; i < old.nslots; i++)
        if (old.used[i])
            memo_insert(m, old.hash[i], old.bits + i * (size_t)old.words, old.state[i]);
    memo_free(&old);
    return 0;
}

/* Returns 1 if inserted, 0 if already present, -1 out of memory. */
static int memo_insert(struct lc_memo *m, uint64_t h, const uint64_t *bits, int64_t state)
{
    if ((m->count + 1) * 2 > m->nslots && memo_grow(m) < 0)
        return -1;
    uint64_t hh = h ^ ((uint64_t)state * 0x9e3779b97f4a7c15ULL);
    size_t i = hh & (m->nslots - 1);
    size_t wbytes = sizeof(uint64_t) * (size_t)m->words;
    while (m->used[i]) {
        if (m->hash[i] == h && m->state[i] == state &&
            memcmp(m->bits + i * (size_t)m->words, bits, wbytes) == 0)
            return 0;
        i = (i + 1) & (m->nslots - 1);
    }
    m->used[i] = 1;
    m->hash[i] = h;
    m->state[i] = state;
    memcpy(m->bits + i * (size_t)m->words, bits, wbytes);
    m->count++;
    return 1;
}

/* The register model: may op take effect in state s? On yes, *next is the new state. */
static int model_step(const struct lc_op *op, int s, int *next)
{
    switch (op->kind) {
    case LC_GET:
        *next = s;
        return op->result == s;
    case LC_PUT:
        *next = op->arg;
        return 1;
    case LC_CAS:
        if (op->outcome == LC_OK) {
            *next = op->arg2;
            return s == op->arg;
        }
        if (op->outcome == LC_FAIL) {
            *next = s;
            return s != op->arg;
        }
        *next = (s == op->arg) ? op->arg2 : s;   /* unknown: either outcome is allowed */
        return 1;
    }
    return 0;
}

/*
 * An op whose outcome is unknown never has to take effect, and taking effect is useful
 * only where something depends on it. So the search places such an op only where it
 * changes the register and the very next op "needs" the change: a get or cas reading the
 * new value, an unknown cas swapping from it, or a failed cas whose expected value the
 * change moved away from. Any linearization can be rearranged into this form (move each
 * unknown op later, up to its first such reader, or drop it), and it spares the search
 * the countless places a timed-out write could go. The random test checks it against
 * brute force. prev is the register before the unknown op, cur after it.
 */
static int needs(const struct lc_op *op, int prev, int cur)
{
    switch (op->kind) {
    case LC_GET:
        return op->result == cur;
    case LC_PUT:
        return 0;
    case LC_CAS:
        if (op->outcome == LC_FAIL)
            return op->arg == prev;
        return op->arg == cur;
    }
    return 0;
}

#define NO_REQ (-2)

static int cmp_entry(const void *a, const void *b)
{
    const struct lc_entry *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->is_call != y->is_call)   /* equal times overlap: calls first */
        return x->is_call ? -1 : 1;
    return x->op - y->op;
}

static void lift(struct lc_entry *e, int i)
{
    struct lc_entry *c = &e[i], *r = &e[c->match];
    e[c->prev].next = c->next;
    if (c->next >= 0)
        e[c->next].prev = c->prev;
    e[r->prev].next = r->next;
    if (r->next >= 0)
        e[r->next].prev = r->prev;
}

static void unlift(struct lc_entry *e, int i)
{
    struct lc_entry *c = &e[i], *r = &e[c->match];
    e[r->prev].next = c->match;
    if (r->next >= 0)
        e[r->next].prev = c->match;
    e[c->prev].next = i;
    if (c->next >= 0)
        e[c->next].prev = i;
}

/* Searches for a linearization of ops[0..n); fills res. */
static void check_key(const struct lc_op *ops, int n, uint64_t budget, struct lc_key_result *res)
{
    memset(res, 0, sizeof(*res));
    res->best_block = -1;
    res->best_state = LC_ABSENT;
    res->ok = -1;
    int words = (n + 63) / 64 ? (n + 63) / 64 : 1;
    int head = 2 * n;
    struct lc_entry *e = calloc((size_t)2 * n + 1, sizeof(*e));
    uint64_t *bits = calloc((size_t)words, sizeof(uint64_t));
    uint64_t *zob = calloc((size_t)n + 1, sizeof(uint64_t));
    struct { int entry, state, req; } *stack = calloc((size_t)n + 1, sizeof(*stack));
    res->best_prefix = calloc((size_t)n + 1, sizeof(int));
    struct lc_memo memo;
    int memo_ok = memo_init(&memo, words, 1024) == 0;
    if (!e || !bits || !zob || !stack || !res->best_prefix || !memo_ok)
        goto out;
    uint64_t seed = 42;
    for (int i = 0; i < n; i++) {
        zob[i] = splitmix(&seed);
        e[2 * i] = (struct lc_entry){.op = i, .is_call = 1, .time = ops[i].inv};
        e[2 * i + 1] = (struct lc_entry){.op = i, .is_call = 0, .time = ops[i].ret};
    }
    qsort(e, (size_t)2 * n, sizeof(*e), cmp_entry);
    {
        int *call_at = malloc(sizeof(int) * (n > 0 ? (size_t)n : 1));
        if (!call_at)
            goto out;
        for (int i = 0; i < 2 * n; i++)
            if (e[i].is_call)
                call_at[e[i].op] = i;
        for (int i = 0; i < 2 * n; i++)
            if (!e[i].is_call) {
                e[i].match = call_at[e[i].op];
                e[call_at[e[i].op]].match = i;
            }
        free(call_at);
    }
    for (int i = 0; i < 2 * n; i++) {
        e[i].prev = i == 0 ? head : i - 1;
        e[i].next = i + 1 < 2 * n ? i + 1 : -1;
    }
    e[head].next = n ? 0 : -1;
    e[head].prev = -1;

    /* req: NO_REQ, or the register before an unknown op just placed, whose successor must
     * need it (see needs()). */
    int state = LC_ABSENT, depth = 0, req = NO_REQ, finite_left = 0;
    for (int i = 0; i < n; i++)
        finite_left += ops[i].ret != LC_INF;
    uint64_t h = 0;
    int cur = e[head].next;
    while (finite_left > 0) {
        if (++res->states > budget)
            goto out;
        if (cur < 0) /* cannot happen: a return entry always ends the list */
            goto out;
        if (e[cur].is_call) {
            const struct lc_op *op = &ops[e[cur].op];
            int next;
            int unknown = op->outcome == LC_UNKNOWN;
            if ((req == NO_REQ || needs(op, req, state)) && model_step(op, state, &next) &&
                (!unknown || next != state)) {
                int o = e[cur].op;
                int next_req = unknown ? state : NO_REQ;
                bits[o / 64] |= 1ULL << (o % 64);
                int64_t key = (int64_t)((uint64_t)(uint32_t)next << 32 | (uint32_t)next_req);
                int ins = memo_insert(&memo, h ^ zob[o], bits, key);
                if (ins < 0)
                    goto out;
                if (ins) {
                    stack[depth].entry = cur;
                    stack[depth].state = state;
                    stack[depth].req = req;
                    depth++;
                    state = next;
                    req = next_req;
                    finite_left -= op->ret != LC_INF;
                    h ^= zob[o];
                    lift(e, cur);
                    cur = e[head].next;
                    continue;
                }
                bits[o / 64] &= ~(1ULL << (o % 64));
            }
            cur = e[cur].next;
        } else {
            /* A return that no pending call could precede: back up one step. */
            if (depth > res->best_depth || res->best_block < 0) {
                res->best_depth = depth;
                res->best_block = e[cur].op;
                res->best_state = state;
                for (int i = 0; i < depth; i++)
                    res->best_prefix[i] = e[stack[i].entry].op;
            }
            if (depth == 0) {
                res->ok = 0;
                goto out;
            }
            depth--;
            int ce = stack[depth].entry, o = e[ce].op;
            state = stack[depth].state;
            req = stack[depth].req;
            finite_left += ops[o].ret != LC_INF;
            bits[o / 64] &= ~(1ULL << (o % 64));
            h ^= zob[o];
            unlift(e, ce);
            cur = e[ce].next;
        }
    }
    res->ok = 1;
out:
    free(e);
    free(bits);
    free(zob);
    free(stack);
    if (memo_ok)
        memo_free(&memo);
}

/* ---- per-key preparation and reporting --------------------------------------------- */

static int64_t observed_by(const struct lc_op *ops, int n, int v)
{
    /* Earliest return of a completed op that saw value v as the register's content. */
    int64_t t = LC_INF;
    for (int i = 0; i < n; i++) {
        const struct lc_op *o = &ops[i];
        int sees = (o->kind == LC_GET && o->outcome == LC_OK && o->result == v) ||
                   (o->kind == LC_CAS && o->outcome == LC_OK && o->arg == v);
        if (sees && o->ret < t)
            t = o->ret;
    }
    return t;
}

static int writes_of(const struct lc_op *ops, int n, int v)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        if ((ops[i].kind == LC_PUT && ops[i].arg == v) || (ops[i].kind == LC_CAS && ops[i].arg2 == v))
            c++;
    return c;
}

static int seen_at_all(const struct lc_op *ops, int n, int v)
{
    for (int i = 0; i < n; i++) {
        const struct lc_op *o = &ops[i];
        if ((o->kind == LC_GET && o->outcome == LC_OK && o->result == v) ||
            (o->kind == LC_CAS && o->arg == v))
            return 1;
    }
    return 0;
}

/*
 * Shrinks a key's history without changing its verdict:
 *  - a get with an unknown result says nothing: dropped;
 *  - an unknown-outcome put whose value is written only once and never observed can always
 *    take effect last (or never): dropped, unless a failed cas could depend on it;
 *  - an unknown-outcome put of a value written once that is observed must take effect
 *    before its first observer returns: that becomes its return time.
 * Returns the new count.
 */
static int prepare_key(struct lc_op *ops, int n)
{
    int has_failed_cas = 0;
    for (int i = 0; i < n; i++)
        if (ops[i].kind == LC_CAS && ops[i].outcome == LC_FAIL)
            has_failed_cas = 1;
    int m = 0;
    for (int i = 0; i < n; i++) {
        struct lc_op o = ops[i];
        if (o.kind == LC_GET && o.outcome == LC_UNKNOWN)
            continue;
        if (o.kind == LC_PUT && o.outcome == LC_UNKNOWN && o.arg != LC_ABSENT &&
            writes_of(ops, n, o.arg) == 1) {
            if (!seen_at_all(ops, n, o.arg)) {
                if (!has_failed_cas)
                    continue;
            } else {
                int64_t t = observed_by(ops, n, o.arg);
                if (t != LC_INF && t >= o.inv)
                    o.ret = t;
            }
        }
        ops[m++] = o;
    }
    return m;
}

static void print_op(FILE *out, const struct lc_history *h, const struct lc_op *o)
{
    const char *c = h->names.s[o->client], *k = h->names.s[o->key];
    char ret[32];
    if (o->ret == LC_INF)
        snprintf(ret, sizeof(ret), "-");
    else
        snprintf(ret, sizeof(ret), "%" PRId64, o->ret);
    switch (o->kind) {
    case LC_GET:
        fprintf(out, "line %d: %s get %s -> %s  [%" PRId64 " .. %s]\n", o->line, c, k,
                vname(h, o->result), o->inv, ret);
        break;
    case LC_PUT:
        if (o->is_del)
            fprintf(out, "line %d: %s del %s %s  [%" PRId64 " .. %s]\n", o->line, c, k,
                    o->outcome == LC_OK ? "ok" : "(outcome unknown)", o->inv, ret);
        else
            fprintf(out, "line %d: %s put %s %s %s  [%" PRId64 " .. %s]\n", o->line, c, k,
                    vname(h, o->arg), o->outcome == LC_OK ? "ok" : "(outcome unknown)", o->inv, ret);
        break;
    case LC_CAS:
        fprintf(out, "line %d: %s cas %s %s->%s %s  [%" PRId64 " .. %s]\n", o->line, c, k,
                vname(h, o->arg), vname(h, o->arg2),
                o->outcome == LC_OK ? "ok" : o->outcome == LC_FAIL ? "fail" : "(outcome unknown)",
                o->inv, ret);
        break;
    }
}

/* A one-line diagnosis of why a read cannot be placed, for the common anomalies. */
static void explain_read(FILE *out, const struct lc_history *h, const struct lc_op *ops, int n,
                         const struct lc_op *r)
{
    int v = r->result;
    const struct lc_op *w = NULL;
    for (int i = 0; i < n; i++)
        if ((ops[i].kind == LC_PUT && ops[i].arg == v) || (ops[i].kind == LC_CAS && ops[i].arg2 == v))
            if (!w || ops[i].inv < w->inv)
                w = &ops[i];
    if (v != LC_ABSENT && !w) {
        fprintf(out, "  why: it read %s, a value no operation wrote\n", vname(h, v));
        return;
    }
    if (w && w->inv > r->ret) {
        fprintf(out, "  why: it read %s, written by line %d which began after the read returned\n",
                vname(h, v), w->line);
        return;
    }
    for (int i = 0; i < n; i++) {
        const struct lc_op *x = &ops[i];
        int writes = (x->kind == LC_PUT) || (x->kind == LC_CAS && x->outcome == LC_OK);
        int xv = x->kind == LC_PUT ? x->arg : x->arg2;
        if (!writes || xv == v || x->ret >= r->inv)
            continue;
        if (!w || w->ret < x->inv) {
            fprintf(out, "  why: stale read: it read %s, but line %d (%s -> %s) was acknowledged "
                         "before the read began and after %s was written\n",
                    vname(h, v), x->line, x->kind == LC_CAS ? "cas" : x->is_del ? "del" : "put",
                    vname(h, xv),
                    w ? vname(h, v) : "the key was empty");
            return;
        }
    }
    fprintf(out, "  why: no order of the writes concurrent with it lets it read %s here\n",
            vname(h, v));
}

/* Does a kept op other than skip read value v (as a get result or a cas's expected value)? */
static int value_read(const struct lc_op *ops, int n, const char *keep, int skip, int v)
{
    for (int i = 0; i < n; i++) {
        if (!keep[i] || i == skip)
            continue;
        if (ops[i].kind == LC_GET && ops[i].outcome == LC_OK && ops[i].result == v)
            return 1;
        if (ops[i].kind == LC_CAS && ops[i].arg == v)
            return 1;
    }
    return 0;
}

static int is_pure_read(const struct lc_op *o)
{
    return o->kind == LC_GET || (o->kind == LC_CAS && o->outcome == LC_FAIL);
}

/* Is the sub-history ops[keep] still not linearizable (within budget)? */
static int still_bad(const struct lc_op *ops, int n, const char *keep, struct lc_op *scratch,
                     uint64_t budget)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (keep[i])
            scratch[m++] = ops[i];
    m = prepare_key(scratch, m);
    struct lc_key_result r;
    check_key(scratch, m, budget, &r);
    free(r.best_prefix);
    return r.ok == 0;
}

/*
 * Shrinks a non-linearizable key history to a small one that is still not linearizable,
 * for a person to read: drops ops, latest first, whenever the rest stays non-linearizable
 * and every value still read still has its writer (so the verdict keeps its first cause
 * instead of becoming "read a value nobody wrote"). Each step is checked, so what remains
 * is a true counterexample. Prints it in history format. ops are the key's raw ops.
 */
/* Marks in keep the ops of a time window around [from, to] plus what its reads rely on:
 * the writers of every value they read and every delete before the window (reads of
 * "no value"). Failed cas are left out: their success depends on writes that may be cut. */
static int window(const struct lc_op *ops, int n, int64_t from, int64_t to, char *keep)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        keep[i] = ops[i].inv <= to && ops[i].ret >= from &&
                  !(ops[i].kind == LC_CAS && ops[i].outcome == LC_FAIL);
        kept += keep[i];
    }
    for (int i = 0; i < n; i++) {
        if (keep[i])
            continue;
        const struct lc_op *o = &ops[i];
        int wrote = o->kind == LC_PUT ? o->arg : o->kind == LC_CAS && o->outcome != LC_FAIL ? o->arg2 : -2;
        if (wrote == -2 || o->inv > to)
            continue;
        if ((wrote == LC_ABSENT && o->inv < from) || (wrote != LC_ABSENT && value_read(ops, n, keep, i, wrote))) {
            keep[i] = 1;
            kept++;
        }
    }
    return kept;
}

static void print_minimal(FILE *out, const struct lc_history *h, const struct lc_op *ops, int n,
                          const struct lc_op *blocked, uint64_t budget)
{
    char *keep = malloc((size_t)n + 1);
    struct lc_op *scratch = malloc(sizeof(*scratch) * ((size_t)n + 1));
    if (!keep || !scratch)
        goto out;
    /* The failure is usually local: find a small window around the op that could not be
     * placed (with what its reads need) that still fails, widening it as needed. */
    int kept = 0, checks = 0, found = 0;
    int64_t span = blocked->ret == LC_INF ? 1 : blocked->ret - blocked->inv + 1;
    for (int tries = 0; tries < 40 && !found; tries++, span *= 2) {
        int64_t from = blocked->inv > span ? blocked->inv - span : 0;
        kept = window(ops, n, from, blocked->ret, keep);
        checks++;
        found = still_bad(ops, n, keep, scratch, budget);
        if (kept == n)
            break;
    }
    if (!found) {
        fprintf(out, "  (no smaller failing sub-history found)\n");
        goto out;
    }
    /* Dropping a read only removes a constraint, so what fails after it failed before for
     * the same reason. Dropping a write can create a new failure (a read losing the write
     * it saw), so a write goes only when no kept op reads its value and no kept failed cas
     * could depend on the register's content. */
    for (int round = 0; round < 2; round++) {
        for (int i = n - 1; i >= 0 && checks < 20000; i--) {
            if (!keep[i] || !is_pure_read(&ops[i]))
                continue;
            keep[i] = 0;
            checks++;
            if (still_bad(ops, n, keep, scratch, budget))
                kept--;
            else
                keep[i] = 1;
        }
        int failed_cas = 0;
        for (int i = 0; i < n; i++)
            failed_cas |= keep[i] && ops[i].kind == LC_CAS && ops[i].outcome == LC_FAIL;
        for (int i = n - 1; i >= 0 && checks < 20000 && !failed_cas; i--) {
            if (!keep[i] || is_pure_read(&ops[i]))
                continue;
            int wrote = ops[i].kind == LC_PUT ? ops[i].arg : ops[i].arg2;
            if (value_read(ops, n, keep, i, wrote))
                continue;
            keep[i] = 0;
            checks++;
            if (still_bad(ops, n, keep, scratch, budget))
                kept--;
            else
                keep[i] = 1;
        }
    }
    fprintf(out, "  a small failing sub-history (%d of %d operations):\n", kept, n);
    for (int i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        const struct lc_op *o = &ops[i];
        char ret[32];
        if (o->ret == LC_INF)
            snprintf(ret, sizeof(ret), "-");
        else
            snprintf(ret, sizeof(ret), "%" PRId64, o->ret);
        const char *c = h->names.s[o->client], *k = h->names.s[o->key];
        const char *oc = o->outcome == LC_OK ? "ok" : o->outcome == LC_FAIL ? "fail" : "unknown";
        if (o->kind == LC_GET)
            fprintf(out, "    %s get %s - %" PRId64 " %s %s\n", c, k, o->inv, ret,
                    o->outcome == LC_UNKNOWN ? "unknown" : vname(h, o->result));
        else if (o->kind == LC_PUT && o->is_del)
            fprintf(out, "    %s del %s - %" PRId64 " %s %s\n", c, k, o->inv, ret, oc);
        else if (o->kind == LC_PUT)
            fprintf(out, "    %s put %s %s %" PRId64 " %s %s\n", c, k, vname(h, o->arg), o->inv, ret, oc);
        else
            fprintf(out, "    %s cas %s %s->%s %" PRId64 " %s %s\n", c, k, vname(h, o->arg),
                    vname(h, o->arg2), o->inv, ret, oc);
    }
out:
    free(keep);
    free(scratch);
}

struct lc_summary {
    int keys, ops, bad_key, inconclusive;
    uint64_t states;
};

/* Checks every key of h; prints a verdict per failing key to out. Returns 0, 1 or 2. */
static int lincheck_history(struct lc_history *h, uint64_t budget, int verbose, int minimize,
                            FILE *out, struct lc_summary *sum)
{
    memset(sum, 0, sizeof(*sum));
    sum->bad_key = -1;
    struct lc_op *part = malloc(sizeof(*part) * (size_t)(h->n ? h->n : 1));
    char *done = calloc((size_t)h->names.n + 1, 1);
    int verdict = 0;
    if (!part || !done) {
        fprintf(out, "lincheck: out of memory\n");
        verdict = 2;
        goto out;
    }
    for (int i = 0; i < h->n; i++) {
        int key = h->ops[i].key;
        if (done[key])
            continue;
        done[key] = 1;
        int n = 0;
        for (int j = i; j < h->n; j++)
            if (h->ops[j].key == key)
                part[n++] = h->ops[j];
        int total = n;
        n = prepare_key(part, n);
        struct lc_key_result r;
        check_key(part, n, budget, &r);
        sum->keys++;
        sum->ops += total;
        sum->states += r.states;
        if (verbose)
            fprintf(out, "lincheck: key %s: %d ops (%d searched), %" PRIu64 " states: %s\n",
                    h->names.s[key], total, n, r.states,
                    r.ok == 1 ? "linearizable" : r.ok == 0 ? "NOT linearizable" : "inconclusive");
        if (r.ok == 0) {
            fprintf(out, "lincheck: NOT linearizable: key %s (%d operations)\n", h->names.s[key], total);
            fprintf(out, "  the longest linearizable order found has %d operations", r.best_depth);
            int from = r.best_depth > 6 ? r.best_depth - 6 : 0;
            fprintf(out, from ? "; its last %d:\n" : ":\n", r.best_depth - from);
            for (int d = from; d < r.best_depth; d++) {
                fprintf(out, "    ");
                print_op(out, h, &part[r.best_prefix[d]]);
            }
            fprintf(out, "  after it the key holds %s, and this operation returned before any\n"
                         "  pending operation could take effect:\n    ",
                    vname(h, r.best_state));
            print_op(out, h, &part[r.best_block]);
            if (part[r.best_block].kind == LC_GET)
                explain_read(out, h, part, n, &part[r.best_block]);
            if (minimize) {
                /* prepare_key rewrote part; start again from the raw ops of this key. */
                struct lc_op blocked = part[r.best_block];
                int m = 0;
                for (int j = i; j < h->n; j++)
                    if (h->ops[j].key == key)
                        part[m++] = h->ops[j];
                for (int j = 0; j < m; j++)
                    if (part[j].line == blocked.line)
                        blocked = part[j];   /* its raw times, not the prepared ones */
                print_minimal(out, h, part, m, &blocked, 2000000);
            }
            if (sum->bad_key < 0)
                sum->bad_key = key;
            verdict = 1;
        } else if (r.ok < 0) {
            fprintf(out, "lincheck: key %s: search stopped after %" PRIu64 " states (budget); "
                         "inconclusive\n", h->names.s[key], r.states);
            sum->inconclusive++;
            if (verdict == 0)
                verdict = 2;
        }
        free(r.best_prefix);
    }
out:
    free(part);
    free(done);
    return verdict;
}

/* Checks a whole history given as text; the entry point the unit tests use.
 * Diagnostics go to out (may be NULL). Returns 0 linearizable, 1 not, 2 malformed. */
__attribute__((unused)) static int lincheck_text(const char *text, FILE *out)
{
    struct lc_history h = {0};
    char err[256];
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    FILE *sink = out ? out : fopen("/dev/null", "w");
    int rc = 2;
    if (!in || !sink)
        goto out;
    if (history_parse(&h, in, err, sizeof(err)) < 0) {
        fprintf(sink, "lincheck: %s\n", err);
        goto out;
    }
    struct lc_summary sum;
    rc = lincheck_history(&h, 20000000, 0, 1, sink, &sum);
out:
    if (in)
        fclose(in);
    if (sink && sink != out)
        fclose(sink);
    history_free(&h);
    return rc;
}

#ifndef LINCHECK_NO_MAIN
int main(int argc, char **argv)
{
    const char *path = NULL;
    int verbose = 0, minimize = 1;
    uint64_t budget = 50000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--no-minimize") == 0)
            minimize = 0;
        else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
            budget = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "usage: lincheck [-v] [--no-minimize] [--budget STATES] HISTORY|-\n");
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: lincheck [-v] [--no-minimize] [--budget STATES] HISTORY|-\n");
        return 2;
    }
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "lincheck: %s: %s\n", path, strerror(errno));
        return 2;
    }
    struct lc_history h = {0};
    char err[256];
    if (history_parse(&h, in, err, sizeof(err)) < 0) {
        fprintf(stderr, "lincheck: %s: %s\n", path, err);
        history_free(&h);
        return 2;
    }
    if (in != stdin)
        fclose(in);
    struct lc_summary sum;
    int rc = lincheck_history(&h, budget, verbose, minimize, stdout, &sum);
    if (rc == 0)
        printf("lincheck: linearizable: %d operations on %d keys (%" PRIu64 " states searched)\n",
               sum.ops, sum.keys, sum.states);
    history_free(&h);
    return rc;
}
#endif

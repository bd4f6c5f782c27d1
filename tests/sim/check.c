/* check.c — the simulation's safety checker: Raft's guarantees (Figure 3) verified
 * incrementally as entries appear, are applied and leaders are elected. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* Per (index, term): the previous entry's term and the payload hash. If each pair is
 * unique, two logs holding the same (index, term) agree on every earlier entry
 * (Log Matching, by induction). */
struct seen {
    raft_index_t index;
    raft_term_t term;
    raft_term_t prev_term;
    uint64_t hash;
    bool used;
};

struct committed {
    raft_term_t term;
    raft_term_t obs_term; /* lowest current term of a node when it applied the entry:
                             the entry was committed in that term or earlier */
    uint64_t hash;
    bool set;
};

struct checker {
    struct seen *seen;
    size_t cap_seen, n_seen;
    struct committed *com; /* by index */
    size_t cap_com;
    raft_index_t max_com;
    struct { raft_term_t term; raft_id_t leader; } *leaders;
    size_t n_leaders, cap_leaders;
};

uint64_t check_hash(const void *data, size_t len, uint64_t h)
{
    const unsigned char *p = data;
    h ^= 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

struct checker *check_new(void)
{
    struct checker *c = calloc(1, sizeof(*c));
    c->cap_seen = 1024;
    c->seen = calloc(c->cap_seen, sizeof(*c->seen));
    return c;
}

void check_reset(struct checker *c)
{
    memset(c->seen, 0, c->cap_seen * sizeof(*c->seen));
    c->n_seen = 0;
    if (c->com)
        memset(c->com, 0, c->cap_com * sizeof(*c->com));
    c->max_com = 0;
    c->n_leaders = 0;
}

void check_free(struct checker *c)
{
    free(c->seen);
    free(c->com);
    free(c->leaders);
    free(c);
}

static size_t slot(const struct checker *c, raft_index_t i, raft_term_t t)
{
    uint64_t h = i * 0x9e3779b97f4a7c15ull ^ t * 0xc2b2ae3d27d4eb4full;
    return (size_t)(h ^ (h >> 29)) & (c->cap_seen - 1);
}

static struct seen *find(struct checker *c, raft_index_t i, raft_term_t t)
{
    size_t s = slot(c, i, t);
    while (c->seen[s].used && (c->seen[s].index != i || c->seen[s].term != t))
        s = (s + 1) & (c->cap_seen - 1);
    return &c->seen[s];
}

static void grow_seen(struct checker *c)
{
    struct seen *old = c->seen;
    size_t n = c->cap_seen;
    c->cap_seen *= 2;
    c->seen = calloc(c->cap_seen, sizeof(*c->seen));
    for (size_t i = 0; i < n; i++)
        if (old[i].used)
            *find(c, old[i].index, old[i].term) = old[i];
    free(old);
}

int check_new_entry(struct checker *c, raft_id_t node, const struct raft_entry *e,
                    raft_term_t prev_term)
{
    uint64_t h = check_hash(e->data, e->len, e->type);
    if (2 * (c->n_seen + 1) > c->cap_seen)
        grow_seen(c);
    struct seen *s = find(c, e->index, e->term);
    if (!s->used) {
        s->used = true;
        s->index = e->index;
        s->term = e->term;
        s->prev_term = prev_term;
        s->hash = h;
        c->n_seen++;
        return 0;
    }
    if (s->prev_term != prev_term || s->hash != h) {
        fprintf(stderr, "VIOLATION log matching: node %llu entry (%llu,%llu) differs from "
                "another log's entry with the same index and term\n",
                (unsigned long long)node, (unsigned long long)e->index,
                (unsigned long long)e->term);
        return -1;
    }
    return 0;
}

int check_applied(struct checker *c, raft_id_t node, const struct raft_entry *e,
                  raft_term_t node_term)
{
    if (e->index >= c->cap_com) {
        size_t n = c->cap_com ? c->cap_com : 1024;
        while (n <= e->index)
            n *= 2;
        c->com = realloc(c->com, n * sizeof(*c->com));
        memset(c->com + c->cap_com, 0, (n - c->cap_com) * sizeof(*c->com));
        c->cap_com = n;
    }
    struct committed *k = &c->com[e->index];
    uint64_t h = check_hash(e->data, e->len, e->type);
    if (!k->set) {
        k->set = true;
        k->term = e->term;
        k->hash = h;
        k->obs_term = node_term;
        if (e->index > c->max_com)
            c->max_com = e->index;
        return 0;
    }
    if (k->term != e->term || k->hash != h) {
        fprintf(stderr, "VIOLATION state machine safety: node %llu applied (%llu,%llu) but "
                "another node applied term %llu at that index\n",
                (unsigned long long)node, (unsigned long long)e->index,
                (unsigned long long)e->term, (unsigned long long)k->term);
        return -1;
    }
    if (node_term < k->obs_term)
        k->obs_term = node_term;
    return 0;
}

int check_leader(struct checker *c, raft_id_t node, raft_term_t term)
{
    for (size_t i = 0; i < c->n_leaders; i++)
        if (c->leaders[i].term == term) {
            if (c->leaders[i].leader != node) {
                fprintf(stderr, "VIOLATION election safety: nodes %llu and %llu both "
                        "leaders of term %llu\n", (unsigned long long)node,
                        (unsigned long long)c->leaders[i].leader, (unsigned long long)term);
                return -1;
            }
            return 0;
        }
    if (c->n_leaders == c->cap_leaders) {
        c->cap_leaders = c->cap_leaders ? 2 * c->cap_leaders : 64;
        c->leaders = realloc(c->leaders, c->cap_leaders * sizeof(*c->leaders));
    }
    c->leaders[c->n_leaders].term = term;
    c->leaders[c->n_leaders].leader = node;
    c->n_leaders++;
    return 0;
}

/* Leader completeness (§5.4): a leader holds every entry committed so far. Compacted
 * entries were applied by that node, so check_applied covered them. */
int check_leader_complete(struct checker *c, const struct raft *r)
{
    raft_index_t first = raft_first_index(r);
    raft_term_t lt = raft_term(r);
    for (raft_index_t i = 1; i <= c->max_com; i++) {
        if (!c->com[i].set || c->com[i].obs_term >= lt || i < first)
            continue;
        raft_term_t t = 0;
        raft_term_at(r, i, &t);
        if (t != c->com[i].term) {
            fprintf(stderr, "VIOLATION leader completeness: leader %llu (term %llu) has term "
                    "%llu at %llu, but term %llu was committed there by term %llu\n",
                    (unsigned long long)raft_id(r), (unsigned long long)lt,
                    (unsigned long long)t, (unsigned long long)i,
                    (unsigned long long)c->com[i].term, (unsigned long long)c->com[i].obs_term);
            return -1;
        }
    }
    return 0;
}

int check_read(struct checker *c, raft_id_t node, raft_index_t read_index,
               raft_index_t required)
{
    (void)c;
    if (read_index < required) {
        fprintf(stderr, "VIOLATION linearizable read: node %llu served read at index %llu, "
                "but %llu was committed before the read began\n", (unsigned long long)node,
                (unsigned long long)read_index, (unsigned long long)required);
        return -1;
    }
    return 0;
}

raft_index_t check_max_committed(const struct checker *c)
{
    return c->max_com;
}

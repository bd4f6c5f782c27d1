/* log.c — the in-memory Raft log: entries from the log start to the last index. */
#include "raft/raft_int.h"

#include <stddef.h>

static struct rblock *block_of(const void *data)
{
    return (struct rblock *)((unsigned char *)data - offsetof(struct rblock, data));
}

/* A fresh block holding a copy of data with one reference; entries point at its bytes and
 * block_of() finds the header again when the last reference goes. */
static void *block_new(const void *data, size_t len)
{
    struct rblock *b = malloc(sizeof(*b) + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    memcpy(b->data, data, len);
    return (unsigned char *)b + offsetof(struct rblock, data);
}

void entry_ref(const struct raft_entry *e)
{
    if (e->len)
        block_of(e->data)->refs++;
}

void entry_unref(const struct raft_entry *e)
{
    if (!e->len)
        return;
    struct rblock *b = block_of(e->data);
    assert(b->refs > 0);
    if (--b->refs == 0)
        free(b);
}

int log_init(struct rlog *l)
{
    memset(l, 0, sizeof(*l));
    return 0;
}

void log_free(struct rlog *l)
{
    for (size_t i = 0; i < l->n; i++)
        entry_unref(&l->ents[i]);
    free(l->ents);
    memset(l, 0, sizeof(*l));
}

raft_index_t log_last(const struct rlog *l)
{
    return l->start + l->n;
}

raft_term_t log_last_term(const struct rlog *l)
{
    return l->n ? l->ents[l->n - 1].term : l->start_term;
}

raft_term_t log_term(const struct rlog *l, raft_index_t i, bool *ok)
{
    if (i == l->start) {
        *ok = true;
        return l->start_term;
    }
    if (i < l->start || i > log_last(l)) {
        *ok = false;
        return 0;
    }
    *ok = true;
    return l->ents[i - l->start - 1].term;
}

bool log_match(const struct rlog *l, raft_index_t i, raft_term_t t)
{
    bool ok;
    raft_term_t have = log_term(l, i, &ok);
    return ok && have == t;
}

const struct raft_entry *log_get(const struct rlog *l, raft_index_t i)
{
    if (i <= l->start || i > log_last(l))
        return NULL;
    return &l->ents[i - l->start - 1];
}

static int grow(struct rlog *l)
{
    if (l->n < l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct raft_entry *e = realloc(l->ents, cap * sizeof(*e));
    if (!e)
        return RAFT_ENOMEM;
    l->ents = e;
    l->cap = cap;
    return 0;
}

int log_append(struct rlog *l, raft_term_t term, enum raft_entry_type type,
               const void *data, size_t len)
{
    if (grow(l))
        return RAFT_ENOMEM;
    struct raft_entry *e = &l->ents[l->n];
    e->term = term;
    e->index = log_last(l) + 1;
    e->type = type;
    e->len = len;
    e->data = NULL;
    if (len) {
        e->data = block_new(data, len);
        if (!e->data)
            return RAFT_ENOMEM;
    }
    l->n++;
    return 0;
}

int log_append_entry(struct rlog *l, const struct raft_entry *src, bool shared)
{
    assert(src->index == log_last(l) + 1);
    if (!shared)
        return log_append(l, src->term, src->type, src->data, src->len);
    if (grow(l))
        return RAFT_ENOMEM;
    l->ents[l->n] = *src;
    entry_ref(src);
    l->n++;
    return 0;
}

void log_truncate_from(struct rlog *l, raft_index_t i)
{
    assert(i > l->start);
    while (log_last(l) >= i) {
        entry_unref(&l->ents[l->n - 1]);
        l->n--;
    }
    if (l->stable >= i)
        l->stable = i - 1;
}

void log_compact(struct rlog *l, raft_index_t i)
{
    if (i <= l->start)
        return;
    assert(i <= log_last(l));
    size_t k = (size_t)(i - l->start);
    raft_term_t t = l->ents[k - 1].term;
    for (size_t j = 0; j < k; j++)
        entry_unref(&l->ents[j]);
    memmove(l->ents, l->ents + k, (l->n - k) * sizeof(*l->ents));
    l->n -= k;
    l->start = i;
    l->start_term = t;
}

void log_reset(struct rlog *l, raft_index_t start, raft_term_t start_term)
{
    for (size_t i = 0; i < l->n; i++)
        entry_unref(&l->ents[i]);
    l->n = 0;
    l->start = start;
    l->start_term = start_term;
    l->stable = start;
    l->commit = start;
    l->applied = start;
}

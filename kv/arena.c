/* arena.c — the bump allocator behind kv_result messages and watch event batches, so a
 * response with thousands of keys is freed in one call. */
#include <stdlib.h>

#include "kv/kv_int.h"

#define CHUNK (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

struct kv_arena {
    chunk *head;
};

/* A few freed standard chunks are kept per thread: a range answer allocates and frees
 * hundreds of kilobytes per request, and handing them back to malloc each time made the
 * heap shrink and grow (page faults) on every request. */
#define CACHE_MAX 16
static _Thread_local chunk *cache;
static _Thread_local int cached;

static chunk *chunk_get(size_t cap)
{
    if (cap == CHUNK && cache) {
        chunk *c = cache;
        cache = c->next;
        cached--;
        return c;
    }
    return malloc(sizeof(chunk) + cap);
}

static void chunk_put(chunk *c)
{
    if (c->cap == CHUNK && cached < CACHE_MAX) {
        c->next = cache;
        cache = c;
        cached++;
        return;
    }
    free(c);
}

kv_arena *arena_new(void)
{
    return calloc(1, sizeof(kv_arena));
}

void arena_free(kv_arena *a)
{
    if (!a)
        return;
    chunk *c = a->head;
    while (c) {
        chunk *n = c->next;
        chunk_put(c);
        c = n;
    }
    free(a);
}

void *arena_alloc(kv_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        /* big requests get their own chunk behind the head so the head keeps filling */
        size_t cap = n > CHUNK / 4 ? n : CHUNK;
        chunk *nc = chunk_get(cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (c && cap == n) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void *arena_dup(kv_arena *a, const void *p, size_t n)
{
    void *d = arena_alloc(a, n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

void kv_result_free(kv_result *r)
{
    if (!r)
        return;
    arena_free(r->arena);
    memset(r, 0, sizeof(*r));
}

int result_begin(kv_result *out)
{
    memset(out, 0, sizeof(*out));
    out->arena = arena_new();
    return out->arena ? 0 : KV_ENOMEM;
}

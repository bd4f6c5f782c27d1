/* election — campaign, renew, watch the predecessor, resign (etcd's election recipe). */
#include "sched/election.h"

#include "sched/daemon.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum state { IDLE, CAMPAIGNING, LEADING };

struct sched_election {
    struct sched_store *s;
    char prefix[96];
    char id[128];
    int ttl;
    bool no_local_expiry;
    enum state state;
    int64_t lease;
    struct sched_fence fence;     /* our key and its create_revision */
    int64_t ka_due, ka_ok_sent;   /* next renewal; send time of the last good renewal */
    int64_t relist_due;
    struct sched_watch *pred;     /* watch on the predecessor's key */
    char leader[128];
    int terms;
    int64_t retry_at;
};

int sched_election_new(struct sched_store *s, const struct sched_election_opts *o,
                       struct sched_election **out)
{
    if (!o->prefix || strlen(o->prefix) >= 80 || !o->id) return SCHED_EINVAL;
    struct sched_election *e = calloc(1, sizeof(*e));
    if (!e) return SCHED_ENOMEM;
    e->s = s;
    snprintf(e->prefix, sizeof(e->prefix), "%s", o->prefix);
    snprintf(e->id, sizeof(e->id), "%s", o->id);
    e->ttl = o->ttl > 0 ? o->ttl : SCHED_ELECTION_DEFAULT_TTL;
    e->no_local_expiry = o->no_local_expiry;
    *out = e;
    return 0;
}

static void drop(struct sched_election *e)
{
    sched_watch_close(e->pred);
    e->pred = NULL;
    if (e->state == LEADING)
        sched_log("election %s: %s: leadership lost", e->prefix, e->id);
    e->state = IDLE;
    e->lease = 0;
}

static int campaign(struct sched_election *e)
{
    int64_t sent = sched_now_ms();
    int rc = sched_store_lease_grant(e->s, e->ttl, &e->lease);
    if (rc) return rc;
    /* fixed-width ids: no candidate's key is a prefix of another's */
    snprintf(e->fence.key, sizeof(e->fence.key), "%s%016" PRIx64, e->prefix, (uint64_t)e->lease);
    int64_t rev = 0;
    rc = sched_store_put(e->s, e->fence.key, e->id, strlen(e->id), 0, e->lease, NULL, &rev);
    if (rc) {
        sched_store_lease_revoke(e->s, e->lease);
        e->lease = 0;
        return rc;
    }
    e->fence.create_rev = rev;
    e->ka_ok_sent = sent;
    e->ka_due = sent + e->ttl * 1000 / 3;
    e->state = CAMPAIGNING;
    e->relist_due = 0;
    return 0;
}

/* Lists the candidates: leads when ours is the oldest, else watches the next older one. */
static int check_order(struct sched_election *e)
{
    struct sched_kv *kvs = NULL;
    size_t n = 0;
    int64_t rev = 0;
    int rc = sched_store_list(e->s, e->prefix, 0, false, &kvs, &n, &rev);
    if (rc) return rc;
    const struct sched_kv *pred = NULL, *mine = NULL, *oldest = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!oldest || kvs[i].create_rev < oldest->create_rev) oldest = &kvs[i];
        if (!strcmp(kvs[i].key, e->fence.key)) mine = &kvs[i];
        else if (kvs[i].create_rev < e->fence.create_rev &&
                 (!pred || kvs[i].create_rev > pred->create_rev))
            pred = &kvs[i];
    }
    snprintf(e->leader, sizeof(e->leader), "%s", oldest && oldest->value ? oldest->value : "");
    if (!mine) { /* our key is gone: the lease expired */
        sched_kvs_free(kvs, n);
        /* the testing mode believes it leads until the store refuses one of its writes */
        if (!(e->no_local_expiry && e->state == LEADING)) drop(e);
        return 0;
    }
    if (!pred) {
        if (e->state != LEADING) {
            e->terms++;
            sched_log("election %s: %s: elected (key %s, revision %" PRId64 ")", e->prefix,
                      e->id, e->fence.key, e->fence.create_rev);
        }
        e->state = LEADING;
        sched_watch_close(e->pred);
        e->pred = NULL;
    } else {
        sched_watch_close(e->pred);
        e->pred = NULL;
        sched_watch_open(e->s, pred->key, rev + 1, &e->pred);
    }
    sched_kvs_free(kvs, n);
    /* re-check now and then even without events: cheap, and robust to a lost watch */
    e->relist_due = sched_now_ms() + e->ttl * 1000;
    return 0;
}

bool sched_election_step(struct sched_election *e)
{
    int64_t now = sched_now_ms();
    if (e->retry_at > now) goto out;
    if (e->state == IDLE) {
        if (campaign(e)) {
            e->retry_at = now + 500;
            goto out;
        }
    }
    if (now >= e->ka_due) {
        int64_t sent = sched_now_ms();
        int rc = sched_store_lease_keepalive(e->s, e->lease, NULL);
        if (rc == SCHED_ENOTFOUND) {
            if (e->no_local_expiry && e->state == LEADING) {
                e->ka_due = INT64_MAX; /* nothing left to renew; see no_local_expiry */
                goto out;
            }
            drop(e);
            goto out;
        }
        if (rc == 0) e->ka_ok_sent = sent;
        /* on a failed renewal try again soon; validity below decays with time */
        e->ka_due = sched_now_ms() + (rc == 0 ? e->ttl * 1000 / 3 : 300);
    }
    if (e->pred) {
        struct sched_event *evs = NULL;
        size_t n = 0;
        int rc = sched_watch_next(e->pred, 0, &evs, &n, NULL);
        bool gone = rc != 0;
        for (size_t i = 0; i < n; i++) gone |= evs[i].type == SCHED_EV_DELETE;
        sched_events_free(evs, n);
        if (gone) {
            sched_watch_close(e->pred);
            e->pred = NULL;
            e->relist_due = 0;
        }
    }
    if (e->state != IDLE && (now >= e->relist_due || (e->state == CAMPAIGNING && !e->pred))) {
        if (check_order(e)) e->retry_at = sched_now_ms() + 300;
    }
out:
    return sched_election_fence(e) != NULL;
}

const struct sched_fence *sched_election_fence(const struct sched_election *e)
{
    if (e->state != LEADING) return NULL;
    /* our lease may have expired on the server by now: the server counts from when it
     * received our last renewal, which is after we sent it */
    if (!e->no_local_expiry && sched_now_ms() - e->ka_ok_sent >= (int64_t)e->ttl * 1000 - 250)
        return NULL;
    return &e->fence;
}

void sched_election_lost(struct sched_election *e)
{
    if (e->state == IDLE) return;
    sched_log("election %s: %s: a fenced write was refused", e->prefix, e->id);
    drop(e);
}

const char *sched_election_leader(const struct sched_election *e)
{
    return e->leader;
}

int sched_election_terms(const struct sched_election *e)
{
    return e->terms;
}

int sched_election_resign(struct sched_election *e)
{
    int rc = 0;
    if (e->lease) rc = sched_store_lease_revoke(e->s, e->lease);
    if (e->state == LEADING) sched_log("election %s: %s: resigned", e->prefix, e->id);
    sched_watch_close(e->pred);
    e->pred = NULL;
    e->state = IDLE;
    e->lease = 0;
    e->retry_at = sched_now_ms() + 3600 * 1000; /* a resigned candidate stays out */
    return rc;
}

void sched_election_free(struct sched_election *e)
{
    if (!e) return;
    sched_watch_close(e->pred);
    free(e);
}

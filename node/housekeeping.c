/* housekeeping — what the leader proposes on its own: auto-compaction (etcd's
 * --auto-compaction-mode periodic|revision with --auto-compaction-retention) and lease
 * checkpoints (remaining TTLs go through Raft, so a new leader does not reset them). */
#include "node/node_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"

enum { F_COMPACT = 5, F_LEASE_CHECKPOINT = 8 };

#define CHECKPOINT_EVERY_MS 10000
#define CHECKPOINT_MAX 1000
#define REVISION_CHECK_MS 5000

static void propose_compaction(struct node *n, int64_t rev)
{
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    uint8_t buf[32];
    size_t l;
    if (rev <= kv_compact_revision(n->kv) || rev <= n->hk.last_auto_compact)
        return;
    c.revision = rev;
    l = etcdserverpb__compaction_request__pack(&c, buf);
    node_propose_client(n, NULL, F_COMPACT, buf, l);
    n->hk.last_auto_compact = rev;
    node_log(n, LOG_INFO, "auto-compaction to revision %" PRId64, rev);
}

/* Periodic mode: remember (time, revision) samples every retention/10 and compact to
 * the revision the store had `retention` ago. */
static void periodic(struct node *n, int64_t now)
{
    struct node_housekeeping *hk = &n->hk;
    int64_t step = (int64_t)n->cfg.auto_compaction_ms / 10;
    int i, best = -1;
    if (step < 100)
        step = 100;
    if (now - hk->last_sample_ms >= step) {
        hk->samples[hk->next].t = now;
        hk->samples[hk->next].rev = kv_current_revision(n->kv);
        hk->next = (hk->next + 1) % HK_SAMPLES;
        if (hk->n < HK_SAMPLES)
            hk->n++;
        hk->last_sample_ms = now;
    }
    for (i = 0; i < hk->n; i++)
        if (now - hk->samples[i].t >= (int64_t)n->cfg.auto_compaction_ms &&
            (best < 0 || hk->samples[i].t > hk->samples[best].t))
            best = i;
    if (best >= 0)
        propose_compaction(n, hk->samples[best].rev);
}

static void checkpoint(struct node *n)
{
    Etcdserverpb__LeaseCheckpointRequest r = ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpoint *cps, **ptrs;
    size_t k, m, len;
    uint8_t *buf;
    cps = calloc(CHECKPOINT_MAX, sizeof(*cps));
    ptrs = calloc(CHECKPOINT_MAX, sizeof(*ptrs));
    if (!cps || !ptrs)
        goto out;
    for (k = 0; k < CHECKPOINT_MAX; k++) {
        etcdserverpb__lease_checkpoint__init(&cps[k]);
        ptrs[k] = &cps[k];
    }
    m = kv_lease_checkpoints(n->kv, node_now_ms(), cps, CHECKPOINT_MAX);
    if (m == 0)
        goto out;
    r.n_checkpoints = m;
    r.checkpoints = ptrs;
    len = etcdserverpb__lease_checkpoint_request__get_packed_size(&r);
    buf = malloc(len ? len : 1);
    if (buf) {
        etcdserverpb__lease_checkpoint_request__pack(&r, buf);
        node_propose_client(n, NULL, F_LEASE_CHECKPOINT, buf, len);
        free(buf);
    }
out:
    free(cps);
    free(ptrs);
}

void node_housekeeping_tick(struct node *n, int64_t now)
{
    struct node_housekeeping *hk = &n->hk;
    if (!node_is_leader(n) || n->stopping) {
        hk->n = 0;
        hk->next = 0;
        return;
    }
    if (n->cfg.auto_compaction_ms)
        periodic(n, now);
    if (n->cfg.auto_compaction_revs && now - hk->last_rev_check_ms >= REVISION_CHECK_MS) {
        int64_t rev = kv_current_revision(n->kv) - n->cfg.auto_compaction_revs;
        hk->last_rev_check_ms = now;
        if (rev > 0)
            propose_compaction(n, rev);
    }
    if (now - hk->last_checkpoint_ms >= CHECKPOINT_EVERY_MS) {
        hk->last_checkpoint_ms = now;
        checkpoint(n);
    }
}

/* quota.c — the NOSPACE quota and replicated alarms (etcd's AlarmRequest), database
 * sizes, and the Status figures. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "kv/kv_int.h"

/* Bytes the data file takes and bytes in pages that hold data (free pages excluded),
 * so a compaction gives quota back without a defragment. Cached per commit. */
int db_sizes(kv_store *s, int64_t *size, int64_t *in_use)
{
    if (s->inuse_at == s->commits + 1) {
        *size = s->size_cache;
        *in_use = s->inuse_cache;
        return 0;
    }
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn;
    bool cached;
    if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st))
        return kv_seterr(s, KV_EIO, "kv: stat failed");
    int64_t hw = (int64_t)(info.me_last_pgno + 1) * st.ms_psize;
    char path[PATH_MAX + 16];
    struct stat fst;
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    *size = stat(path, &fst) == 0 && fst.st_size > hw ? (int64_t)fst.st_size : hw;
    int err = rtxn_get(s, &txn, &cached);
    if (err)
        return err;
    /* the free list: database 0, each value an ID list whose first word is its length */
    MDB_cursor *c;
    uint64_t free_pages = 0;
    int rc = mdb_cursor_open(txn, 0, &c);
    if (rc == 0) {
        MDB_val k, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (v.mv_size >= sizeof(size_t)) {
                size_t n;
                memcpy(&n, v.mv_data, sizeof n);
                free_pages += n;
            }
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
    }
    rtxn_put(s, txn, cached);
    *in_use = hw - (int64_t)free_pages * st.ms_psize;
    if (*in_use < 0)
        *in_use = 0;
    s->size_cache = *size;
    s->inuse_cache = *in_use;
    s->inuse_at = s->commits + 1;
    return 0;
}

int kv_quota_check(kv_store *s, uint64_t cost_bytes)
{
    int64_t size, in_use;
    if (db_sizes(s, &size, &in_use))
        return 0; /* cannot tell: let the write through; LMDB will say if it is full */
    if ((uint64_t)in_use + cost_bytes > s->opt.quota_bytes)
        return kv_seterr(s, KV_ENOSPACE, "kv: quota: %lld bytes in use + %llu > quota %llu",
                         (long long)in_use, (unsigned long long)cost_bytes,
                         (unsigned long long)s->opt.quota_bytes);
    return 0;
}

/* etcd's quota.go cost: kvOverhead (256) plus the put's size; a txn costs its larger
 * branch; a lease grant a fixed overhead. */
static uint64_t put_cost(const Etcdserverpb__PutRequest *p)
{
    return 256 + p->key.len + p->value.len + 16;
}

uint64_t kv_request_cost(const Plinthpb__Request *req)
{
    switch (req->request_case) {
    case PLINTHPB__REQUEST__REQUEST_PUT:
        return put_cost(req->put);
    case PLINTHPB__REQUEST__REQUEST_TXN: {
        uint64_t a = 0, b = 0;
        for (size_t i = 0; i < req->txn->n_success; i++)
            if (req->txn->success[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
                a += put_cost(req->txn->success[i]->request_put);
        for (size_t i = 0; i < req->txn->n_failure; i++)
            if (req->txn->failure[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
                b += put_cost(req->txn->failure[i]->request_put);
        return a > b ? a : b;
    }
    case PLINTHPB__REQUEST__REQUEST_LEASE_GRANT:
        return 64;
    default:
        return 0;
    }
}

static int alarm_response(kv_store *s, kv_arena *a, kv_rev_t rev, const alarm_ent *al,
                          size_t n, kv_result *out)
{
    Etcdserverpb__AlarmResponse *resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return KV_ENOMEM;
    etcdserverpb__alarm_response__init(resp);
    if (!(resp->header = new_header(s, a, rev)))
        return KV_ENOMEM;
    if (n) {
        resp->alarms = arena_alloc(a, n * sizeof(*resp->alarms));
        if (!resp->alarms)
            return KV_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            Etcdserverpb__AlarmMember *m = arena_alloc(a, sizeof(*m));
            if (!m)
                return KV_ENOMEM;
            etcdserverpb__alarm_member__init(m);
            m->memberid = al[i].member;
            m->alarm = al[i].type;
            resp->alarms[i] = m;
        }
        resp->n_alarms = n;
    }
    out->msg = &resp->base;
    return 0;
}

int apply_alarm(kv_wtxn *w, const Etcdserverpb__AlarmRequest *r, kv_arena *a, kv_result *out)
{
    alarm_ent hit[MAX_ALARMS];
    size_t nh = 0;
    switch (r->action) {
    case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET:
        for (size_t i = 0; i < w->n_alarms; i++)
            if (r->alarm == ETCDSERVERPB__ALARM_TYPE__NONE || w->alarms[i].type == (int32_t)r->alarm)
                hit[nh++] = w->alarms[i];
        break;
    case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE: {
        if (r->alarm == ETCDSERVERPB__ALARM_TYPE__NONE)
            break;
        bool have = false;
        for (size_t i = 0; i < w->n_alarms; i++)
            if (w->alarms[i].member == r->memberid && w->alarms[i].type == (int32_t)r->alarm)
                have = true;
        alarm_ent e = {r->memberid, (int32_t)r->alarm};
        if (!have && w->n_alarms < MAX_ALARMS) {
            w->alarms[w->n_alarms++] = e;
            w->alarms_dirty = true;
        }
        hit[nh++] = e;
        break;
    }
    case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE:
        for (size_t i = 0; i < w->n_alarms; i++) {
            if (w->alarms[i].member == r->memberid && w->alarms[i].type == (int32_t)r->alarm) {
                hit[nh++] = w->alarms[i];
                memmove(&w->alarms[i], &w->alarms[i + 1], (w->n_alarms - i - 1) * sizeof(alarm_ent));
                w->n_alarms--;
                w->alarms_dirty = true;
                break;
            }
        }
        break;
    default:
        break;
    }
    return alarm_response(w->s, a, w->rev, hit, nh, out);
}

int kv_alarms(kv_store *s, kv_result *out)
{
    int err = result_begin(out);
    if (err)
        return err;
    if ((err = alarm_response(s, out->arena, s->rev, s->alarms, s->n_alarms, out)))
        kv_result_free(out);
    return err;
}

int kv_stat(kv_store *s, kv_stats *st)
{
    memset(st, 0, sizeof(*st));
    int err = db_sizes(s, &st->db_size, &st->db_size_in_use);
    st->quota_bytes = (int64_t)s->opt.quota_bytes;
    st->revision = s->rev;
    st->compact_revision = s->compact_rev;
    st->applied_index = s->applied;
    st->alarm_nospace = nospace_active(s->alarms, s->n_alarms);
    st->alarm_corrupt = corrupt_active(s->alarms, s->n_alarms);
    st->keys = s->live_keys > 0 ? (uint64_t)s->live_keys : 0;
    st->leases = s->n_leases;
    st->watchers = s->n_watchers;
    if (!s->wtxn) {
        kv_hard_state hs;
        st->last_index = kv_log_last_index(s);
        if (kv_hard_state_get(s, &hs) == 0)
            st->term = hs.term;
    }
    return err;
}

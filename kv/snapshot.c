/* snapshot.c — consistent copies of the environment (Maintenance/Snapshot, Raft
 * snapshots for lagging followers) and installing such a copy in place of the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_int.h"

/* May run on another thread: touches only the environment, never s->errmsg. The
 * environment pointer is read under copy_mu once no resize or restore is under way, and
 * the copy counted, so neither can close or remap it until the copy is done. */
int kv_snapshot_write_fd(kv_store *s, int fd, bool compact)
{
    pthread_mutex_lock(&s->copy_mu);
    while (s->resizing || s->restoring)
        pthread_cond_wait(&s->copy_cv, &s->copy_mu);
    MDB_env *env = s->env;
    if (!env) {
        pthread_mutex_unlock(&s->copy_mu);
        return KV_EIO;
    }
    s->copies++;
    pthread_mutex_unlock(&s->copy_mu);
    int rc = mdb_env_copyfd2(env, fd, compact ? MDB_CP_COMPACT : 0);
    pthread_mutex_lock(&s->copy_mu);
    s->copies--;
    pthread_cond_broadcast(&s->copy_cv);
    pthread_mutex_unlock(&s->copy_mu);
    if (rc)
        return rc == ENOMEM ? KV_ENOMEM : KV_EIO;
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int kv_snapshot_write_path(kv_store *s, const char *path, bool compact)
{
    char tmp[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return KV_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return KV_EIO;
    int err = kv_snapshot_write_fd(s, fd, compact);
    if (!err && fsync(fd))
        err = KV_EIO;
    if (close(fd) && !err)
        err = KV_EIO;
    if (!err && rename(tmp, path))
        err = KV_EIO;
    if (err)
        unlink(tmp);
    else
        fsync_dir_of(path);
    return err;
}

/* Opens a snapshot file as an environment of its own (no subdirectory). */
static int file_env(const char *path, bool rdonly, uint64_t mapsize, MDB_env **env,
                    MDB_dbi *meta, MDB_dbi *log)
{
    int rc = mdb_env_create(env);
    if (rc)
        return rc;
    mdb_env_set_maxdbs(*env, 8);
    if (mapsize)
        mdb_env_set_mapsize(*env, mapsize);
    rc = mdb_env_open(*env, path, MDB_NOSUBDIR | MDB_NOLOCK | (rdonly ? MDB_RDONLY : 0), 0600);
    MDB_txn *txn = NULL;
    if (!rc)
        rc = mdb_txn_begin(*env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, "raft_meta", 0, meta);
    if (!rc && log)
        rc = mdb_dbi_open(txn, "raft_log", 0, log);
    if (txn) {
        /* commit even a read-only txn: an aborted one would close the dbi handles */
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    }
    if (rc) {
        mdb_env_close(*env);
        *env = NULL;
    }
    return rc;
}

static uint64_t get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, size_t off)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    if (mdb_get(txn, dbi, &k, &v) || v.mv_size < off + 8)
        return 0;
    return get_be64((const uint8_t *)v.mv_data + off);
}

int kv_snapshot_file_info(const char *path, kv_snapshot_info *info)
{
    MDB_env *env;
    MDB_dbi meta;
    MDB_txn *txn;
    memset(info, 0, sizeof(*info));
    if (file_env(path, true, 0, &env, &meta, NULL))
        return KV_EIO;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (!rc) {
        info->applied_index = get_u64(txn, meta, "applied", 0);
        info->applied_term = get_u64(txn, meta, "applied", 8);
        info->revision = (kv_rev_t)get_u64(txn, meta, "rev", 0);
        if (info->revision < 1)
            info->revision = 1;
        info->cluster_id = get_u64(txn, meta, "ids", 0);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc ? KV_EIO : 0;
}

/* Rewrites the member-local records inside the snapshot file before it is swapped in,
 * so the swap itself (a rename) is the only step a crash can interrupt. */
static int localize(kv_store *s, const char *path, const kv_snap_meta *log_start)
{
    kv_hard_state hs;
    int err = kv_hard_state_get(s, &hs);
    if (err)
        return err;
    struct stat st;
    if (stat(path, &st))
        return kv_seterr(s, KV_EIO, "kv: restore: %s: %s", path, strerror(errno));
    uint64_t map = (uint64_t)st.st_size * 2 + (64u << 20);
    if (map < s->map_size)
        map = s->map_size;
    MDB_env *env;
    MDB_dbi meta, log;
    MDB_txn *txn;
    int rc = file_env(path, false, map, &env, &meta, &log);
    if (rc)
        return kv_seterr(s, KV_EIO, "kv: restore: %s is not a store: %s", path, mdb_strerror(rc));
    rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (!rc) {
        uint8_t b[24];
        if (hs.commit < log_start->index)
            hs.commit = log_start->index;
        put_be64(b, hs.term);
        put_be64(b + 8, hs.vote);
        put_be64(b + 16, hs.commit);
        MDB_val k = {4, "hard"}, v = {24, b};
        rc = mdb_put(txn, meta, &k, &v, 0);
        if (!rc) {
            uint64_t cluster = get_u64(txn, meta, "ids", 0);
            put_be64(b, cluster ? cluster : s->cluster_id);
            put_be64(b + 8, s->member_id);
            k = (MDB_val){3, "ids"};
            v = (MDB_val){16, b};
            rc = mdb_put(txn, meta, &k, &v, 0);
        }
        if (!rc) {
            put_be64(b, log_start->index);
            put_be64(b + 8, log_start->term);
            k = (MDB_val){4, "snap"};
            v = (MDB_val){16, b};
            rc = mdb_put(txn, meta, &k, &v, 0);
        }
        if (!rc)
            rc = mdb_drop(txn, log, 0); /* the leader's log is not ours */
        if (!rc)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (!rc)
        rc = mdb_env_sync(env, 1);
    mdb_env_close(env);
    return rc ? kv_seterr(s, KV_EIO, "kv: restore: rewrite %s: %s", path, mdb_strerror(rc)) : 0;
}

static int restore_swap(kv_store *s, const char *path, const kv_snap_meta *log_start);

int kv_restore(kv_store *s, const char *path, const kv_snap_meta *log_start)
{
    if (s->wtxn)
        return kv_seterr(s, KV_EBUSY, "kv: restore: a write transaction is open");
    /* Checking for running copies is not enough: a copy thread that starts after the
     * check would copy an environment being closed. `restoring` holds new copies back
     * until the swap is over. */
    pthread_mutex_lock(&s->copy_mu);
    bool busy = s->copies > 0;
    if (!busy)
        s->restoring = true;
    pthread_mutex_unlock(&s->copy_mu);
    if (busy)
        return kv_seterr(s, KV_EBUSY, "kv: restore: a snapshot copy is running");
    int err = restore_swap(s, path, log_start);
    pthread_mutex_lock(&s->copy_mu);
    s->restoring = false;
    pthread_cond_broadcast(&s->copy_cv);
    pthread_mutex_unlock(&s->copy_mu);
    return err;
}

/* kv_restore with new copies held back. */
static int restore_swap(kv_store *s, const char *path, const kv_snap_meta *log_start)
{
    if (!s->env)
        return kv_seterr(s, KV_EIO, "kv: restore: store is closed");
    int err = localize(s, path, log_start);
    if (err)
        return err;
    char data[PATH_MAX + 16], lock[PATH_MAX + 16];
    snprintf(data, sizeof data, "%s/data.mdb", s->dir);
    snprintf(lock, sizeof lock, "%s/lock.mdb", s->dir);
    /* close, swap, reopen: the rename is atomic, so a crash leaves the old or the new */
    if (s->rtxn) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
    }
    mdb_env_close(s->env);
    s->env = NULL;
    if (rename(path, data))
        err = kv_seterr(s, KV_EIO, "kv: restore: rename %s: %s", path, strerror(errno));
    else
        fsync_dir_of(data);
    unlink(lock);
    {
        /* reopen through a throwaway handle and move its environment into s, so the
         * caller's pointer, watchers and options stay */
        kv_store *tmp;
        char eb[256];
        kv_options o = s->opt;
        o.map_size = s->map_size;
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", s->dir);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = 0;
        int e = kv_open(parent, &o, &tmp, eb, sizeof eb);
        if (e) {
            s->broken = true;
            return kv_seterr(s, KV_EIO, "kv: restore: reopen: %s", eb);
        }
        /* move the fresh environment into s */
        s->env = tmp->env;
        s->dbi_log = tmp->dbi_log;
        s->dbi_meta = tmp->dbi_meta;
        s->dbi_rev = tmp->dbi_rev;
        s->dbi_key = tmp->dbi_key;
        s->dbi_lease = tmp->dbi_lease;
        s->map_size = tmp->map_size;
        s->maxkey = tmp->maxkey;
        tmp->env = NULL;
        if (tmp->rtxn)
            mdb_txn_abort(tmp->rtxn);
        tmp->rtxn = NULL;
        kv_close(tmp);
    }
    s->primary = false;
    s->inuse_at = 0;
    int e = store_load_state(s);
    if (e)
        return e;
    watch_reset_after_restore(s);
    return err;
}

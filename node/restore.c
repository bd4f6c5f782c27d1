/* restore — `plinth --restore-snapshot FILE`: builds an empty data dir from a
 * Maintenance/Snapshot file as `etcdutl snapshot restore` does, then the member starts on
 * it. The file is the store copy followed by the SHA-256 of everything before it (etcd's
 * trailer); the hash is checked and stripped. The keys, revisions and leases of the
 * snapshot are kept; the Raft state is new: an empty log starting at the snapshot's
 * applied (index, term), every member of --initial-cluster a voter, the cluster and
 * member ids of --initial-cluster and its token, and no removed members. Every member of
 * the new cluster restores the same file, so their logs agree and any of them can lead. */
#include "node/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "node/log.h"

#define HASH_LEN 32

/* Copies the first len bytes of the file at src to dst (a new file, fsynced) and hashes
 * them into md. */
static int copy_hashed(const char *src, const char *dst, uint64_t len, uint8_t md[HASH_LEN],
                       char *err, size_t errlen)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    static uint8_t buf[1 << 16];
    uint64_t done = 0;
    unsigned mdlen = 0;
    if (in < 0 || !ctx) {
        snprintf(err, errlen, "--restore-snapshot: open %s: %s", src, strerror(errno));
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(err, errlen, "--restore-snapshot: create %s: %s", dst, strerror(errno));
        goto out;
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while (done < len) {
        size_t want = len - done < sizeof buf ? (size_t)(len - done) : sizeof buf;
        ssize_t r = read(in, buf, want), w = 0;
        if (r <= 0) {
            snprintf(err, errlen, "--restore-snapshot: read %s: %s", src, r ? strerror(errno) : "short file");
            goto out;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        while (w < r) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0) {
                snprintf(err, errlen, "--restore-snapshot: write %s: %s", dst, strerror(errno));
                goto out;
            }
            w += k;
        }
        done += (uint64_t)r;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    if (fsync(out) != 0) {
        snprintf(err, errlen, "--restore-snapshot: fsync %s: %s", dst, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int read_trailer(const char *path, uint64_t at, uint8_t md[HASH_LEN])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r;
    if (fd < 0)
        return -1;
    r = pread(fd, md, HASH_LEN, (off_t)at);
    close(fd);
    return r == HASH_LEN ? 0 : -1;
}

/* Rewrites the Raft state of the restored store for the new cluster. */
static int reset_raft_state(struct node *n, char *err, size_t errlen)
{
    kv_wtxn *w = NULL;
    kv_index_t applied = kv_applied_index(n->kv);
    kv_term_t term = kv_applied_term(n->kv);
    kv_hard_state hs = {0};
    kv_snap_meta sm;
    struct raft_conf_state cs;
    int i, rc;
    memset(&cs, 0, sizeof cs);
    if (term == 0)
        term = 1;
    n->id = n->cfg.self_id;
    n->cluster_id = n->cfg.cluster_id;
    node_members_from_config(n);
    for (i = 0; i < n->members.n; i++)
        cs.voters[cs.n_voters++] = n->members.m[i].id;
    if ((rc = kv_wtxn_begin(n->kv, &w)) != 0)
        goto fail;
    if (kv_log_last_index(n->kv) >= kv_log_first_index(n->kv) &&
        (rc = kv_log_truncate(w, kv_log_first_index(n->kv))) != 0)
        goto fail;
    sm.index = applied;
    sm.term = term;
    hs.term = term;
    hs.commit = applied;
    if ((rc = kv_snap_meta_set(w, &sm)) != 0 || (rc = kv_hard_state_set(w, &hs)) != 0 ||
        (rc = kv_ids_set(w, n->cluster_id, n->id)) != 0 ||
        (rc = node_conf_state_save(n, w, &cs)) != 0 || (rc = node_members_save(n, w)) != 0)
        goto fail;
    rc = kv_meta_del(w, "removed_ids");
    if (rc && rc != KV_ENOTFOUND)
        goto fail;
    rc = kv_wtxn_commit(w);
    w = NULL;
    if (rc)
        goto fail;
    node_log(n, LOG_INFO, "restored the snapshot: revision %lld, applied index %llu (term %llu), %d members",
             (long long)kv_current_revision(n->kv), (unsigned long long)applied,
             (unsigned long long)term, n->members.n);
    return 0;
fail:
    if (w)
        kv_wtxn_abort(w);
    snprintf(err, errlen, "--restore-snapshot: %s", kv_errmsg(n->kv));
    return -1;
}

int node_restore_snapshot(struct node *n, const kv_options *ko, char *err, size_t errlen)
{
    const char *file = n->cfg.restore_snapshot;
    char db[1200], tmp[1300];
    uint8_t want[HASH_LEN], got[HASH_LEN];
    struct stat st;
    uint64_t len;
    bool has_hash;
    int rc;
    snprintf(db, sizeof db, "%s/data.mdb", n->member_dir);
    snprintf(tmp, sizeof tmp, "%s/data.mdb.restore", n->member_dir);
    if (stat(db, &st) == 0) {
        snprintf(err, errlen, "--restore-snapshot: the data dir %s already holds a member; restore into an empty data dir",
                 n->cfg.data_dir);
        return -1;
    }
    if (stat(file, &st) != 0) {
        snprintf(err, errlen, "--restore-snapshot: %s: %s", file, strerror(errno));
        return -1;
    }
    len = (uint64_t)st.st_size;
    /* etcd's test: a store copy is whole pages, so a hash trailer leaves 32 bytes over */
    has_hash = len % 512 == HASH_LEN;
    if (!has_hash && !n->cfg.skip_hash_check) {
        snprintf(err, errlen, "snapshot missing hash but --skip-hash-check=false");
        return -1;
    }
    if (has_hash) {
        len -= HASH_LEN;
        if (read_trailer(file, len, want) != 0) {
            snprintf(err, errlen, "--restore-snapshot: read %s: %s", file, strerror(errno));
            return -1;
        }
    }
    if (copy_hashed(file, tmp, len, got, err, errlen) != 0) {
        unlink(tmp);
        return -1;
    }
    if (has_hash && !n->cfg.skip_hash_check && memcmp(want, got, HASH_LEN) != 0) {
        unlink(tmp);
        snprintf(err, errlen, "expected sha256 of %s does not match: snapshot file integrity check failed", file);
        return -1;
    }
    if (rename(tmp, db) != 0) {
        snprintf(err, errlen, "--restore-snapshot: rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    {
        char e[512];
        if (kv_open(n->cfg.data_dir, ko, &n->kv, e, sizeof e) != 0) {
            snprintf(err, errlen, "--restore-snapshot: %s is not a plinth snapshot: %s", file, e);
            unlink(db);
            return -1;
        }
    }
    rc = reset_raft_state(n, err, errlen);
    kv_close(n->kv);
    n->kv = NULL;
    if (rc)
        unlink(db);
    return rc;
}

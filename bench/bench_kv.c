/* bench_kv — kv/'s cost over raw LMDB: MVCC puts per second in write transactions of
 * 1, 64 and 1024 puts (100-byte values, fsync on) next to raw mdb_put of the same data
 * with the same fsync in the same run; ranges per second of 1, 64 and 1024 keys next to
 * a raw cursor read; then the time to reopen a store of 1M keys, its size on disk and
 * the resident memory of the process serving it.
 *
 *   build/bench/bench_kv [--keys N] [--seconds S]   (defaults: 1000000 keys, 2 s per figure)
 */
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ftw.h>

#include "kv/kv.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* VmRSS, and of it the anonymous part (heap) and the file part (LMDB's map) */
static void rss_kb(long *total, long *anon, long *file)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    *total = *anon = *file = -1;
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld kB", total);
        sscanf(line, "RssAnon: %ld kB", anon);
        sscanf(line, "RssFile: %ld kB", file);
    }
    if (f)
        fclose(f);
}

static long long du_bytes(const char *dir)
{
    char p[4400];
    struct stat st;
    long long total = 0;
    const char *files[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (stat(p, &st) == 0)
            total += (long long)st.st_blocks * 512;
    }
    return total;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static char *make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    static char path[4096];
    snprintf(path, sizeof path, "%s/plinth-bench-kv-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(path);
}

static char value[100];
static uint64_t seq;

static void key_of(char *k, uint64_t i)
{
    /* spread writes over the key space like independent clients would */
    uint64_t x = i * 0x9E3779B97F4A7C15ull;
    snprintf(k, 24, "/bench/%016llx", (unsigned long long)x);
}

static int die(const char *what, int rc)
{
    fprintf(stderr, "bench_kv: %s: %s\n", what, kv_strerror(rc));
    exit(1);
}

/* ---- MVCC side ---- */
static double mvcc_puts(kv_store *s, int batch, double seconds, kv_index_t *index)
{
    char key[24];
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = &p;
    p.value = (ProtobufCBinaryData){sizeof value, (uint8_t *)value};
    long n = 0;
    double t0 = now(), t;
    do {
        kv_wtxn *w;
        int rc = kv_wtxn_begin(s, &w);
        if (rc)
            die("begin", rc);
        for (int i = 0; i < batch; i++) {
            key_of(key, seq++);
            p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
            kv_result r;
            if ((rc = kv_apply(w, ++*index, 1, &req, &r)) || r.err)
                die("apply", rc ? rc : r.err);
            kv_result_free(&r);
        }
        if ((rc = kv_wtxn_commit(w)))
            die("commit", rc);
        n += batch;
        t = now();
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

/* the range figures read a prefix of 1024 keys, "/r/0000".."/r/1023", written first */
static void mvcc_prefix(kv_store *s, kv_index_t *index)
{
    kv_wtxn *w;
    char key[24];
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
    req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
    req.put = &p;
    p.value = (ProtobufCBinaryData){sizeof value, (uint8_t *)value};
    int rc = kv_wtxn_begin(s, &w);
    if (rc)
        die("begin", rc);
    for (int i = 0; i < 1024; i++) {
        snprintf(key, sizeof key, "/r/%04d", i);
        p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        kv_result r;
        if ((rc = kv_apply(w, ++*index, 1, &req, &r)) || r.err)
            die("apply", rc ? rc : r.err);
        kv_result_free(&r);
    }
    if ((rc = kv_wtxn_commit(w)))
        die("commit", rc);
}

/* width 1: a single-key get of a random key; otherwise the prefix with limit width */
static double mvcc_ranges(kv_store *s, int width, double seconds)
{
    char key[24];
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    long n = 0;
    double t0 = now(), t;
    if (width > 1) {
        q.key = (ProtobufCBinaryData){3, (uint8_t *)"/r/"};
        q.range_end = (ProtobufCBinaryData){3, (uint8_t *)"/r0"};
        q.limit = width;
    }
    do {
        if (width == 1) {
            key_of(key, (uint64_t)rand() % seq);
            q.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        }
        kv_result r;
        int rc = kv_range(s, &q, &r);
        if (rc || r.err)
            die("range", rc ? rc : r.err);
        if (width > 1 && ((Etcdserverpb__RangeResponse *)r.msg)->n_kvs != (size_t)width)
            die("range width", KV_EINVAL);
        kv_result_free(&r);
        n++;
        t = now();
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

/* ---- raw LMDB side: one database, key -> value ---- */
typedef struct raw {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t seq;
} raw;

static void raw_open(raw *r, const char *dir)
{
    mkdir(dir, 0700);
    mdb_env_create(&r->env);
    mdb_env_set_mapsize(r->env, 8ull << 30);
    if (mdb_env_open(r->env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600))
        die("raw open", KV_EIO);
    MDB_txn *txn;
    mdb_txn_begin(r->env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &r->dbi);
    mdb_txn_commit(txn);
}

static double raw_puts(raw *r, int batch, double seconds)
{
    char key[24];
    long n = 0;
    double t0 = now(), t;
    do {
        MDB_txn *txn;
        if (mdb_txn_begin(r->env, NULL, 0, &txn))
            die("raw begin", KV_EIO);
        for (int i = 0; i < batch; i++) {
            key_of(key, r->seq++);
            MDB_val k = {strlen(key), key}, v = {sizeof value, value};
            if (mdb_put(txn, r->dbi, &k, &v, 0))
                die("raw put", KV_EIO);
        }
        if (mdb_txn_commit(txn))
            die("raw commit", KV_EIO);
        n += batch;
        t = now();
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

static void raw_prefix(raw *r)
{
    MDB_txn *txn;
    char key[24];
    mdb_txn_begin(r->env, NULL, 0, &txn);
    for (int i = 0; i < 1024; i++) {
        snprintf(key, sizeof key, "/r/%04d", i);
        MDB_val k = {strlen(key), key}, v = {sizeof value, value};
        mdb_put(txn, r->dbi, &k, &v, 0);
    }
    mdb_txn_commit(txn);
}

static double raw_ranges(raw *r, int width, double seconds)
{
    char key[24];
    long n = 0;
    volatile size_t sink = 0;
    double t0 = now(), t;
    do {
        MDB_txn *txn;
        MDB_cursor *c;
        mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
        mdb_cursor_open(txn, r->dbi, &c);
        if (width == 1)
            key_of(key, (uint64_t)rand() % r->seq);
        else
            snprintf(key, sizeof key, "/r/");
        MDB_val k = {strlen(key), key}, v;
        int rc = mdb_cursor_get(c, &k, &v, width == 1 ? MDB_SET_KEY : MDB_SET_RANGE);
        /* copy out `width` values like a response would, and count the rest of the
         * prefix, which etcd's `count` asks for */
        for (int i = 0; rc == 0; i++) {
            if (width > 1 && (k.mv_size < 3 || memcmp(k.mv_data, "/r/", 3)))
                break;
            if (i < width) {
                char buf[128];
                memcpy(buf, v.mv_data, v.mv_size < sizeof buf ? v.mv_size : sizeof buf);
                sink += (size_t)buf[0] + k.mv_size;
            } else {
                sink++;
            }
            if (width == 1)
                break;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        n++;
        t = now();
    } while (t - t0 < seconds);
    (void)sink;
    return (double)n / (t - t0);
}

/* --serve DIR SECONDS: reopen a store, read from it, print the figures of this process */
static int serve(const char *bdir, double secs)
{
    long rss0, anon0, file0, rss1, anon1, file1, rss2, anon2, file2;
    kv_store *s;
    char eb[256], member[4200];
    kv_options o;
    kv_options_init(&o);
    o.quota_bytes = 8ull << 30;
    snprintf(member, sizeof member, "%s/member", bdir);
    rss_kb(&rss0, &anon0, &file0);
    double t0 = now();
    if (kv_open(bdir, &o, &s, eb, sizeof eb)) {
        fprintf(stderr, "reopen: %s\n", eb);
        return 1;
    }
    double reopen = now() - t0;
    kv_stats st;
    kv_stat(s, &st);
    seq = st.keys; /* the keys are key_of(0 .. keys-1) */
    t0 = now();
    mvcc_ranges(s, 1, 0);
    double first_read = now() - t0;
    rss_kb(&rss1, &anon1, &file1);
    double gets = mvcc_ranges(s, 1, secs);
    rss_kb(&rss2, &anon2, &file2);
    printf("%-40s %.2f ms\n", "reopen (kv_open)", reopen * 1e3);
    printf("%-40s %.3f ms\n", "first read after reopen", first_read * 1e3);
    printf("%-40s %.1f MB (in use %.1f MB, %llu keys)\n", "size on disk",
           du_bytes(member) / 1e6, st.db_size_in_use / 1e6, (unsigned long long)st.keys);
    printf("%-40s %ld kB at start (anon %ld), %ld kB after open + 1 read (anon %ld)\n",
           "resident memory of a serving process", rss0, anon0, rss1, anon1);
    printf("%-40s %ld kB after %.0f s of random gets: anon %ld kB, LMDB map pages %ld kB\n",
           "", rss2, secs, anon2, file2);
    printf("%-40s %.0f gets/s\n", "random single-key gets", gets);
    kv_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--serve"))
        return serve(argv[2], atof(argv[3]));
    long big = 1000000;
    double secs = 2.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keys") && i + 1 < argc)
            big = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            secs = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_kv [--keys N] [--seconds S]\n");
            return 2;
        }
    }
    memset(value, 'v', sizeof value);
    char *base = make_tmpdir();
    if (!base) {
        perror("mkdtemp");
        return 1;
    }
    char mdir[4096], rdir[4096], bdir[4096];
    snprintf(mdir, sizeof mdir, "%s/mvcc", base);
    snprintf(rdir, sizeof rdir, "%s/raw", base);
    snprintf(bdir, sizeof bdir, "%s/big", base);
    printf("bench_kv: data in %s, %.1f s per figure, 100-byte values, fsync on\n", base, secs);

    kv_store *s;
    char eb[256];
    kv_options o;
    kv_options_init(&o);
    o.quota_bytes = 8ull << 30;
    if (kv_open(mdir, &o, &s, eb, sizeof eb)) {
        fprintf(stderr, "open: %s\n", eb);
        return 1;
    }
    raw r = {0};
    raw_open(&r, rdir);
    kv_index_t index = 0;
    int batches[] = {1, 64, 1024};
    printf("\n%-26s %14s %14s %8s\n", "puts per commit", "MVCC puts/s", "raw LMDB puts/s", "ratio");
    for (int i = 0; i < 3; i++) {
        int b = batches[i];
        /* alternate the two in three rounds so disk noise hits both alike */
        double rw = 0, mv = 0;
        for (int round = 0; round < 3; round++) {
            rw += raw_puts(&r, b, secs / 3) / 3;
            mv += mvcc_puts(s, b, secs / 3, &index) / 3;
        }
        printf("%-26d %14.0f %14.0f %8.2f\n", b, mv, rw, mv / rw);
    }
    mvcc_prefix(s, &index);
    raw_prefix(&r);
    printf("\n(ranges: 1 = a random single-key get; 64 and 1024 = a 1024-key prefix with that\n"
           " limit, counting the whole prefix as etcd's `count` requires, raw side too)\n");
    printf("%-26s %14s %14s %8s\n", "keys per range", "MVCC ranges/s", "raw cursor/s", "ratio");
    for (int i = 0; i < 3; i++) {
        int b = batches[i];
        double rw = raw_ranges(&r, b, secs);
        double mv = mvcc_ranges(s, b, secs);
        printf("%-26d %14.0f %14.0f %8.2f\n", b, mv, rw, mv / rw);
    }
    kv_close(s);
    mdb_env_close(r.env);

    /* a store of `big` keys: build it in batches of 10k, then time a cold reopen */
    printf("\nbuilding a store of %ld keys...\n", big);
    if (kv_open(bdir, &o, &s, eb, sizeof eb)) {
        fprintf(stderr, "open: %s\n", eb);
        return 1;
    }
    seq = 0;
    index = 0;
    double t0 = now();
    long done = 0;
    while (done < big) {
        int b = big - done < 10000 ? (int)(big - done) : 10000;
        mvcc_puts(s, b, 0, &index);
        done += b;
    }
    double build = now() - t0;
    kv_close(s);
    s = NULL;
    char member[4200];
    snprintf(member, sizeof member, "%s/member", bdir);
    printf("%-40s %.1f s (%.0f puts/s in batches of 10000)\n", "build", build, big / build);
    fflush(stdout);
    /* serve it from a fresh process (exec, not just fork), so the figures are its own */
    pid_t pid = fork();
    if (pid == 0) {
        char secs_s[32];
        snprintf(secs_s, sizeof secs_s, "%g", secs);
        execl("/proc/self/exe", argv[0], "--serve", bdir, secs_s, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

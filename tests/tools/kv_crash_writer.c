/* kv_crash_writer — the child of kv/'s crash test: opens a store (fsync on), continues
 * the deterministic batch workload of tests/unit/kv/crashspec.h from what the store
 * holds, and after each commit returns prints "C <batch>" on stdout, until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/kv.h"
#include "tests/unit/kv/crashspec.h"

static void die(const char *what, int rc, kv_store *s)
{
    fprintf(stderr, "kv_crash_writer: %s: %s (%s)\n", what, kv_strerror(rc), kv_errmsg(s));
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kv_crash_writer DATA_DIR [MAX_BATCHES]\n");
        return 2;
    }
    unsigned long max = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    kv_store *s;
    char eb[256];
    int rc = kv_open(argv[1], NULL, &s, eb, sizeof eb);
    if (rc) {
        fprintf(stderr, "kv_crash_writer: open: %s\n", eb);
        return 2;
    }
    kv_hard_state hs;
    kv_hard_state_get(s, &hs);
    kv_index_t last = kv_log_last_index(s), applied = kv_applied_index(s);
    for (unsigned long b = hs.commit + 1; b <= max; b++) {
        kv_wtxn *w;
        if ((rc = kv_wtxn_begin(s, &w)))
            die("begin", rc, s);
        kv_entry ents[8];
        char data[8][64];
        int ne = cs_entries(b);
        for (int j = 0; j < ne; j++) {
            cs_entry(data[j], sizeof data[j], b, j);
            ents[j] = (kv_entry){last + 1 + (kv_index_t)j, b, 0, data[j], strlen(data[j])};
        }
        if ((rc = kv_log_append(w, ents, (size_t)ne)))
            die("append", rc, s);
        last += (kv_index_t)ne;
        for (int j = 0; j < cs_puts(b); j++) {
            char key[16], val[128];
            snprintf(key, sizeof key, "k%03d", cs_key(b, j));
            cs_value(val, sizeof val, b, j);
            Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
            p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
            p.value = (ProtobufCBinaryData){strlen(val), (uint8_t *)val};
            Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
            req.request_case = PLINTHPB__REQUEST__REQUEST_PUT;
            req.put = &p;
            kv_result r;
            if ((rc = kv_apply(w, ++applied, b, &req, &r)) || r.err)
                die("apply", rc ? rc : r.err, s);
            kv_result_free(&r);
        }
        if (cs_compacts(b)) {
            Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
            c.revision = kv_current_revision(s) - 30; /* committed revision: fine, it only grows */
            Plinthpb__Request req = PLINTHPB__REQUEST__INIT;
            req.request_case = PLINTHPB__REQUEST__REQUEST_COMPACTION;
            req.compaction = &c;
            kv_result r;
            if ((rc = kv_apply(w, ++applied, b, &req, &r)))
                die("compact", rc, s);
            kv_result_free(&r);
        }
        hs = (kv_hard_state){b, 1, b};
        if ((rc = kv_hard_state_set(w, &hs)))
            die("hard state", rc, s);
        if ((rc = kv_wtxn_commit(w)))
            die("commit", rc, s);
        char line[32];
        int n = snprintf(line, sizeof line, "C %lu\n", b);
        if (write(1, line, (size_t)n) != n)
            return 3;
    }
    kv_close(s);
    return 0;
}

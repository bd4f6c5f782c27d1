/* cluster — plinthctl member, endpoint and snapshot commands (Cluster and Maintenance). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "ctl.h"
#include "kv/kv.h"

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void join(char **v, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", v[i]);
}

/* --- member ----------------------------------------------------------------------- */

static int member_list(struct ctl *c)
{
    Etcdserverpb__MemberListRequest req = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Cluster/MemberList", &req.base,
                      &etcdserverpb__member_list_response__descriptor, &resp);
    if (rc)
        return rc;
    Etcdserverpb__MemberListResponse *r = (Etcdserverpb__MemberListResponse *)resp;
    if (c->out == OUT_JSON) {
        print_json(resp);
    } else {
        char **cells = calloc(r->n_members * 6 + 1, sizeof *cells);
        for (size_t i = 0; cells && i < r->n_members; i++) {
            Etcdserverpb__Member *m = r->members[i];
            char id[32], peers[1024], clients[1024];
            snprintf(id, sizeof id, "%" PRIx64, m->id);
            join(m->peerurls, m->n_peerurls, peers, sizeof peers);
            join(m->clienturls, m->n_clienturls, clients, sizeof clients);
            const char *status = m->name && *m->name ? "started" : "unstarted";
            if (c->out == OUT_SIMPLE) {
                printf("%s, %s, %s, %s, %s, %s\n", id, status, m->name, peers, clients,
                       m->islearner ? "true" : "false");
            } else {
                cells[i * 6 + 0] = strdup(id);
                cells[i * 6 + 1] = strdup(status);
                cells[i * 6 + 2] = strdup(m->name);
                cells[i * 6 + 3] = strdup(peers);
                cells[i * 6 + 4] = strdup(clients);
                cells[i * 6 + 5] = strdup(m->islearner ? "true" : "false");
            }
        }
        if (cells && c->out == OUT_TABLE) {
            static const char *const hdr[] = { "ID", "STATUS", "NAME", "PEER ADDRS",
                                               "CLIENT ADDRS", "IS LEARNER" };
            print_table(hdr, 6, cells, (int)r->n_members);
            for (size_t i = 0; i < r->n_members * 6; i++)
                free(cells[i]);
        }
        free(cells);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int parse_member_id(const char *s, uint64_t *id)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (!*s || *end || errno)
        return ctl_usage("bad member ID arg (%s), expecting ID in Hex", s);
    *id = v;
    return 0;
}

static int member_add(struct ctl *c, char **pos, int np, const char *peer_urls, int learner)
{
    if (np != 1)
        return ctl_usage("member name not provided");
    if (!peer_urls || !*peer_urls)
        return ctl_usage("member peer urls not provided (--peer-urls)");
    char *urls = strdup(peer_urls), *save = NULL, *u;
    char *list[16];
    size_t n = 0;
    for (u = strtok_r(urls, ",", &save); u && n < 16; u = strtok_r(NULL, ",", &save))
        list[n++] = u;
    Etcdserverpb__MemberAddRequest req = ETCDSERVERPB__MEMBER_ADD_REQUEST__INIT;
    req.n_peerurls = n;
    req.peerurls = list;
    req.islearner = learner;
    ProtobufCMessage *resp;
    int rc = ctl_call(c, "/etcdserverpb.Cluster/MemberAdd", &req.base,
                      &etcdserverpb__member_add_response__descriptor, &resp);
    if (!rc) {
        Etcdserverpb__MemberAddResponse *r = (Etcdserverpb__MemberAddResponse *)resp;
        if (c->out == OUT_JSON) {
            print_json(resp);
        } else {
            uint64_t cid = r->header ? r->header->cluster_id : 0, nid = r->member ? r->member->id : 0;
            printf("Member %16" PRIx64 " added to cluster %16" PRIx64 "\n\n", nid, cid);
            printf("ETCD_NAME=\"%s\"\nETCD_INITIAL_CLUSTER=\"", pos[0]);
            int first = 1;
            for (size_t i = 0; i < r->n_members; i++) {
                Etcdserverpb__Member *m = r->members[i];
                const char *name = m->id == nid ? pos[0] : m->name;
                for (size_t k = 0; k < m->n_peerurls; k++) {
                    printf("%s%s=%s", first ? "" : ",", name, m->peerurls[k]);
                    first = 0;
                }
            }
            printf("\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"%s\"\n"
                   "ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n", peer_urls);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    free(urls);
    return rc;
}

static int member_simple(struct ctl *c, const char *sub, char **pos, int np)
{
    uint64_t id = 0;
    if (np != 1)
        return ctl_usage("member ID is not provided");
    if (parse_member_id(pos[0], &id))
        return CTL_EXIT_USAGE;
    ProtobufCMessage *resp;
    int rc;
    const char *verb;
    if (!strcmp(sub, "remove")) {
        Etcdserverpb__MemberRemoveRequest req = ETCDSERVERPB__MEMBER_REMOVE_REQUEST__INIT;
        req.id = id;
        rc = ctl_call(c, "/etcdserverpb.Cluster/MemberRemove", &req.base,
                      &etcdserverpb__member_remove_response__descriptor, &resp);
        verb = "removed from";
    } else {
        Etcdserverpb__MemberPromoteRequest req = ETCDSERVERPB__MEMBER_PROMOTE_REQUEST__INIT;
        req.id = id;
        rc = ctl_call(c, "/etcdserverpb.Cluster/MemberPromote", &req.base,
                      &etcdserverpb__member_promote_response__descriptor, &resp);
        verb = "promoted in";
    }
    if (rc)
        return rc;
    if (c->out == OUT_JSON) {
        print_json(resp);
    } else {
        /* every Cluster response starts with the header (field 1) */
        Etcdserverpb__MemberRemoveResponse *r = (Etcdserverpb__MemberRemoveResponse *)resp;
        printf("Member %16" PRIx64 " %s cluster %16" PRIx64 "\n", id, verb,
               r->header ? r->header->cluster_id : 0);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

int cmd_member(struct ctl *c, const char *sub, int argc, char **argv)
{
    const char *peer_urls = NULL;
    int learner = 0;
    struct flag_spec specs[] = { { "peer-urls", F_STR, &peer_urls }, { "learner", F_BOOL, &learner },
                                 { NULL, 0, NULL } };
    char *pos[2];
    int np, rc;
    if (!sub)
        return ctl_usage("member needs a sub-command: list, add, remove, promote, update");
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 1, &np)))
        return rc;
    if (!strcmp(sub, "list")) return member_list(c);
    if (!strcmp(sub, "add")) return member_add(c, pos, np, peer_urls, learner);
    if (!strcmp(sub, "remove") || !strcmp(sub, "promote")) return member_simple(c, sub, pos, np);
    if (!strcmp(sub, "update")) return member_update(c, pos, np, peer_urls);
    return ctl_usage("unknown member sub-command \"%s\"", sub);
}

/* --- endpoint --------------------------------------------------------------------- */

/* The endpoints to visit: the given list, or with --cluster every member's client URLs. */
static int endpoint_list(struct ctl *c, int cluster, char ***out, size_t *n)
{
    *n = 0;
    *out = calloc(64, sizeof **out);
    if (!*out)
        return ctl_err("out of memory");
    if (cluster) {
        Etcdserverpb__MemberListRequest req = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
        ProtobufCMessage *resp;
        int rc = ctl_call(c, "/etcdserverpb.Cluster/MemberList", &req.base,
                          &etcdserverpb__member_list_response__descriptor, &resp);
        if (rc)
            return rc;
        Etcdserverpb__MemberListResponse *r = (Etcdserverpb__MemberListResponse *)resp;
        for (size_t i = 0; i < r->n_members; i++)
            for (size_t k = 0; k < r->members[i]->n_clienturls && *n < 64; k++)
                (*out)[(*n)++] = strdup(r->members[i]->clienturls[k]);
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
    }
    char *eps = strdup(c->endpoints), *save = NULL;
    for (char *u = strtok_r(eps, ",", &save); u && *n < 64; u = strtok_r(NULL, ",", &save))
        (*out)[(*n)++] = strdup(u);
    free(eps);
    return 0;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int endpoint_health(struct ctl *c, int cluster)
{
    char **eps;
    size_t n;
    int rc = endpoint_list(c, cluster, &eps, &n);
    if (rc)
        return rc;
    int bad = 0;
    char **cells = calloc(n * 4 + 1, sizeof *cells);
    for (size_t i = 0; i < n; i++) {
        struct net_grpc_client *cl = ctl_client_for(c, eps[i]);
        struct net_grpc_status st = { 0 };
        double t0 = mono_ms();
        int code = NET_GRPC_UNAVAILABLE;
        if (cl) {
            /* etcd's check: a linearizable read of the key "health"; permission denied
             * still proves the member can serve */
            Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
            req.key = (ProtobufCBinaryData){ 6, (uint8_t *)"health" };
            ProtobufCMessage *resp = NULL;
            code = net_grpc_unary(cl, "/etcdserverpb.KV/Range", &req.base,
                                  &etcdserverpb__range_response__descriptor, &resp, &st,
                                  c->command_timeout_ms);
            if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
            net_grpc_client_free(cl);
        }
        double took = mono_ms() - t0;
        int ok = code == NET_GRPC_OK || code == NET_GRPC_PERMISSION_DENIED;
        bad |= !ok;
        char tk[32];
        snprintf(tk, sizeof tk, "%.6fms", took);
        if (c->out == OUT_SIMPLE) {
            if (ok)
                printf("%s is healthy: successfully committed proposal: took = %s\n", eps[i], tk);
            else
                fprintf(stderr, "%s is unhealthy: failed to commit proposal: %s\n", eps[i],
                        st.message[0] ? st.message : net_grpc_code_name(code));
        } else if (c->out == OUT_JSON) {
            printf("[{\"endpoint\":\"%s\",\"health\":%s,\"took\":\"%s\"%s%s%s}]\n", eps[i],
                   ok ? "true" : "false", tk, ok ? "" : ",\"error\":\"",
                   ok ? "" : net_grpc_code_name(code), ok ? "" : "\"");
        } else if (cells) {
            cells[i * 4] = strdup(eps[i]);
            cells[i * 4 + 1] = strdup(ok ? "true" : "false");
            cells[i * 4 + 2] = strdup(tk);
            cells[i * 4 + 3] = strdup(ok ? "" : st.message);
        }
    }
    if (c->out == OUT_TABLE && cells) {
        static const char *const hdr[] = { "ENDPOINT", "HEALTH", "TOOK", "ERROR" };
        print_table(hdr, 4, cells, (int)n);
        for (size_t i = 0; i < n * 4; i++)
            free(cells[i]);
    }
    free(cells);
    free_list(eps, n);
    if (bad)
        return ctl_err("unhealthy cluster");
    return 0;
}

static int endpoint_status(struct ctl *c, int cluster)
{
    char **eps;
    size_t n;
    int rc = endpoint_list(c, cluster, &eps, &n);
    if (rc)
        return rc;
    int bad = 0;
    char **cells = calloc(n * 10 + 1, sizeof *cells);
    int rows = 0;
    if (c->out == OUT_JSON)
        putchar('[');
    for (size_t i = 0; i < n; i++) {
        struct net_grpc_client *cl = ctl_client_for(c, eps[i]);
        struct net_grpc_status st = { 0 };
        ProtobufCMessage *resp = NULL;
        int code = NET_GRPC_UNAVAILABLE;
        if (cl) {
            Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
            code = net_grpc_unary(cl, "/etcdserverpb.Maintenance/Status", &req.base,
                                  &etcdserverpb__status_response__descriptor, &resp, &st,
                                  c->command_timeout_ms);
            net_grpc_client_free(cl);
        }
        if (code != NET_GRPC_OK) {
            fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n", eps[i],
                    st.message[0] ? st.message : net_grpc_code_name(code));
            bad = 1;
            continue;
        }
        Etcdserverpb__StatusResponse *s = (Etcdserverpb__StatusResponse *)resp;
        uint64_t id = s->header ? s->header->member_id : 0;
        char idb[32], size[32], term[32], idx[32], applied[32], errs[512];
        snprintf(idb, sizeof idb, "%" PRIx64, id);
        human_size(s->dbsize, size, sizeof size);
        snprintf(term, sizeof term, "%" PRIu64, s->raftterm);
        snprintf(idx, sizeof idx, "%" PRIu64, s->raftindex);
        snprintf(applied, sizeof applied, "%" PRIu64, s->raftappliedindex);
        join(s->errors, s->n_errors, errs, sizeof errs);
        const char *leader = s->leader == id ? "true" : "false";
        if (c->out == OUT_SIMPLE) {
            printf("%s, %s, %s, %s, %s, %s, %s, %s, %s, %s\n", eps[i], idb, s->version, size,
                   leader, s->islearner ? "true" : "false", term, idx, applied, errs);
        } else if (c->out == OUT_JSON) {
            printf("%s{\"Endpoint\":\"%s\",\"Status\":", rows ? "," : "", eps[i]);
            print_json_inline(resp);
            printf("}");
        } else if (cells) {
            const char *v[10] = { eps[i], idb, s->version, size, leader,
                                  s->islearner ? "true" : "false", term, idx, applied, errs };
            for (int k = 0; k < 10; k++)
                cells[rows * 10 + k] = strdup(v[k]);
        }
        rows++;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    if (c->out == OUT_JSON)
        puts("]");
    if (c->out == OUT_TABLE && cells) {
        static const char *const hdr[] = { "ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER",
                                           "IS LEARNER", "RAFT TERM", "RAFT INDEX",
                                           "RAFT APPLIED INDEX", "ERRORS" };
        print_table(hdr, 10, cells, rows);
        for (int i = 0; i < rows * 10; i++)
            free(cells[i]);
    }
    free(cells);
    free_list(eps, n);
    return bad ? CTL_EXIT_ERR : 0;
}

int cmd_endpoint(struct ctl *c, const char *sub, int argc, char **argv)
{
    int cluster = 0;
    struct flag_spec specs[] = { { "cluster", F_BOOL, &cluster }, { NULL, 0, NULL } };
    char *pos[1];
    int np, rc;
    if (!sub)
        return ctl_usage("endpoint needs a sub-command: status, health");
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 0, &np)))
        return rc;
    if (!strcmp(sub, "health")) return endpoint_health(c, cluster);
    if (!strcmp(sub, "status")) return endpoint_status(c, cluster);
    return ctl_usage("unknown endpoint sub-command \"%s\"", sub);
}

/* --- snapshot --------------------------------------------------------------------- */

static int snapshot_save(struct ctl *c, const char *path)
{
    if (strchr(c->endpoints, ','))
        return ctl_usage("snapshot must be requested to one selected node, not multiple [%s]",
                         c->endpoints);
    char part[4096];
    snprintf(part, sizeof part, "%s.part", path);
    FILE *f = fopen(part, "wb");
    if (!f)
        return ctl_err("could not open %s (%s)", part, strerror(errno));
    struct net_grpc_client *cl = ctl_client(c);
    struct net_grpc_stream *s = NULL;
    struct net_grpc_stream_opts so = { 0 };
    int rc = 0;
    uint64_t total = 0;
    if (!cl || net_grpc_stream_open(cl, "/etcdserverpb.Maintenance/Snapshot", &so, &s) != 0) {
        rc = cl ? ctl_err("snapshot: cannot open a stream") : CTL_EXIT_USAGE;
        goto out;
    }
    Etcdserverpb__SnapshotRequest req = ETCDSERVERPB__SNAPSHOT_REQUEST__INIT;
    net_grpc_stream_send_msg(s, &req.base);
    net_grpc_stream_close_send(s);
    for (;;) {
        ProtobufCMessage *m = NULL;
        int r = net_grpc_stream_recv_msg(s, &etcdserverpb__snapshot_response__descriptor, &m, 60000);
        if (r == NET_GRPC_RECV_TIMEOUT) {
            rc = ctl_err("snapshot: no data for 60 s");
            break;
        }
        if (r == NET_GRPC_RECV_CLOSED) {
            const struct net_grpc_status *st = net_grpc_stream_status(s);
            if (st->code != NET_GRPC_OK)
                rc = ctl_err("snapshot: %s", st->message);
            else if (total == 0)
                rc = ctl_err("snapshot: the server sent no data");
            break;
        }
        Etcdserverpb__SnapshotResponse *sr = (Etcdserverpb__SnapshotResponse *)m;
        if (sr->blob.len && fwrite(sr->blob.data, 1, sr->blob.len, f) != sr->blob.len)
            rc = ctl_err("snapshot: writing %s: %s", part, strerror(errno));
        total += sr->blob.len;
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc)
            break;
    }
out:
    net_grpc_stream_free(s);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        if (!rc)
            rc = ctl_err("snapshot: writing %s: %s", part, strerror(errno));
    }
    fclose(f);
    if (rc) {
        unlink(part);
        return rc;
    }
    if (rename(part, path) != 0)
        return ctl_err("could not rename %s to %s (%s)", part, path, strerror(errno));
    printf("Snapshot saved at %s\n", path);
    return 0;
}

/* CRC-32 (IEEE), as zlib computes it. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Revision and number of revisions stored (etcd's "total keys" also counts revisions)
 * of a plinth snapshot, an LMDB environment file. Returns 0, or -1 when the file is not
 * one (an etcd bbolt snapshot, say). */
static int lmdb_snapshot_counts(const char *path, int64_t *rev, int64_t *keys)
{
    kv_snapshot_info info;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st;
    int ok = -1;
    if (kv_snapshot_file_info(path, &info) != 0)
        return -1;
    *rev = (int64_t)info.revision;
    *keys = 0;
    if (mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0 &&
        mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0 &&
        mdb_dbi_open(txn, "kv_rev", 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0) {
        *keys = (int64_t)st.ms_entries;
        ok = 0;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return ok;
}

/* Status of a snapshot file in etcdctl's columns: hash (CRC-32 of the file), revision,
 * total keys (stored revisions) and size. Revision and keys are read from plinth's
 * LMDB snapshots; for other files (etcd's bbolt) they are shown as 0 with a note. */
static int snapshot_status(struct ctl *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ctl_err("could not open %s (%s)", path, strerror(errno));
    uint32_t crc = 0;
    unsigned char buf[65536];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crc = crc32_update(crc, buf, n);
        total += n;
    }
    fclose(f);
    int64_t rev = 0, keys = 0;
    if (lmdb_snapshot_counts(path, &rev, &keys) != 0)
        fprintf(stderr, "note: %s is not a plinth (LMDB) snapshot; revision and keys not read\n",
                path);
    char size[32];
    human_size((int64_t)total, size, sizeof size);
    if (c->out == OUT_JSON) {
        printf("{\"hash\":%" PRIu32 ",\"revision\":%" PRId64 ",\"totalKey\":%" PRId64
               ",\"totalSize\":%zu}\n", crc, rev, keys, total);
    } else if (c->out == OUT_TABLE) {
        char h[32], r[32], k[32];
        snprintf(h, sizeof h, "%" PRIx32, crc);
        snprintf(r, sizeof r, "%" PRId64, rev);
        snprintf(k, sizeof k, "%" PRId64, keys);
        char *cells[4] = { h, r, k, size };
        static const char *const hdr[] = { "HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE" };
        print_table(hdr, 4, cells, 1);
    } else {
        printf("%" PRIx32 ", %" PRId64 ", %" PRId64 ", %s\n", crc, rev, keys, size);
    }
    return 0;
}

int cmd_snapshot(struct ctl *c, const char *sub, int argc, char **argv)
{
    char *pos[2];
    int np, rc;
    if (!sub)
        return ctl_usage("snapshot needs a sub-command: save, status");
    if ((rc = ctl_parse(c, argc, argv, NULL, pos, 1, &np)))
        return rc;
    if (np != 1)
        return ctl_usage("snapshot %s expects one argument (a file name)", sub);
    if (!strcmp(sub, "save")) return snapshot_save(c, pos[0]);
    if (!strcmp(sub, "status")) return snapshot_status(c, pos[0]);
    if (!strcmp(sub, "restore"))
        return ctl_err("snapshot restore is done by the server: start each member of the new cluster "
                       "once with `plinth --restore-snapshot %s` and its usual flags on an empty "
                       "--data-dir (docs/operations.md, Backup and restore)", pos[0]);
    return ctl_usage("unknown snapshot sub-command \"%s\"", sub);
}

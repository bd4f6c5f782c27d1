/* config — etcd-compatible flag parsing for the plinth server, and etcd's id derivation. */
#include "node/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

enum flag_kind { F_STR, F_URLS, F_U32, F_U64, F_BOOL, F_CLUSTER, F_STATE, F_IGNORED };

struct flag {
    const char *name;
    enum flag_kind kind;
    size_t off;    /* offset in node_config; unused for F_CLUSTER */
    size_t size;   /* for F_STR */
    const char *help;
};

#define OFF(f) offsetof(struct node_config, f)
#define STR(f) OFF(f), sizeof(((struct node_config *)0)->f)

static const struct flag flags[] = {
    {"name", F_STR, STR(name), "human-readable name for this member"},
    {"data-dir", F_STR, STR(data_dir), "path to the data directory (default \"<name>.etcd\")"},
    {"listen-client-urls", F_URLS, OFF(listen_client_urls), 0, "URLs to listen on for client traffic"},
    {"advertise-client-urls", F_URLS, OFF(advertise_client_urls), 0, "client URLs advertised to the cluster"},
    {"listen-peer-urls", F_URLS, OFF(listen_peer_urls), 0, "URLs to listen on for peer traffic"},
    {"initial-advertise-peer-urls", F_URLS, OFF(initial_advertise_peer_urls), 0, "peer URLs advertised to the cluster"},
    {"listen-metrics-urls", F_URLS, OFF(listen_metrics_urls), 0, "URLs serving /metrics and /health"},
    {"initial-cluster", F_CLUSTER, 0, 0, "initial cluster configuration: name=peerURL,..."},
    {"initial-cluster-state", F_STATE, 0, 0, "initial cluster state ('new' or 'existing')"},
    {"initial-cluster-token", F_STR, STR(initial_cluster_token), "initial cluster token"},
    {"heartbeat-interval", F_U32, OFF(heartbeat_ms), 0, "time (in milliseconds) of a heartbeat interval"},
    {"election-timeout", F_U32, OFF(election_ms), 0, "time (in milliseconds) for an election to timeout"},
    {"cert-file", F_STR, STR(cert_file), "path to the client server TLS cert file"},
    {"key-file", F_STR, STR(key_file), "path to the client server TLS key file"},
    {"trusted-ca-file", F_STR, STR(trusted_ca_file), "path to the client server TLS trusted CA file"},
    {"client-cert-auth", F_BOOL, OFF(client_cert_auth), 0, "enable client cert authentication"},
    {"peer-cert-file", F_STR, STR(peer_cert_file), "path to the peer server TLS cert file"},
    {"peer-key-file", F_STR, STR(peer_key_file), "path to the peer server TLS key file"},
    {"peer-trusted-ca-file", F_STR, STR(peer_trusted_ca_file), "path to the peer server TLS trusted CA file"},
    {"peer-client-cert-auth", F_BOOL, OFF(peer_client_cert_auth), 0, "enable peer client cert authentication"},
    {"quota-backend-bytes", F_U64, OFF(quota_backend_bytes), 0, "raise alarms when backend size exceeds the given quota"},
    {"max-request-bytes", F_U64, OFF(max_request_bytes), 0, "maximum client request size in bytes the server will accept"},
    {"max-txn-ops", F_U32, OFF(max_txn_ops), 0, "maximum number of operations permitted in a transaction"},
    {"snapshot-count", F_U64, OFF(snapshot_count), 0, "number of committed transactions to trigger a snapshot"},
    {"auto-compaction-mode", F_STR, STR(auto_compaction_mode), "'periodic' or 'revision'"},
    {"auto-compaction-retention", F_STR, STR(auto_compaction_retention), "auto compaction retention (e.g. '1h' or '1000'); 0 disables"},
    {"log-level", F_STR, STR(log_level), "debug, info, warn, error, panic, or fatal"},
    {"pre-vote", F_BOOL, OFF(pre_vote), 0, "enable the Raft pre-vote round"},
    {"strict-reconfig-check", F_BOOL, OFF(strict_reconfig_check), 0, "reject reconfiguration requests that would cause quorum loss"},
    {"restore-snapshot", F_STR, STR(restore_snapshot), "build the empty data dir from this snapshot file (etcdutl snapshot restore), then start"},
    {"skip-hash-check", F_BOOL, OFF(skip_hash_check), 0, "with --restore-snapshot: the file has no SHA-256 trailer (a copied data.mdb)"},
    {"logger", F_IGNORED, 0, 0, "accepted for etcd compatibility; plinth always logs to stderr"},
    {"log-outputs", F_IGNORED, 0, 0, "accepted for etcd compatibility; plinth always logs to stderr"},
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static void seterr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!err || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

void node_config_defaults(struct node_config *cfg)
{
    char e[64];
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->name, "default");
    node_url_list_parse(&cfg->listen_client_urls, "http://localhost:2379", e, sizeof e);
    node_url_list_parse(&cfg->advertise_client_urls, "http://localhost:2379", e, sizeof e);
    node_url_list_parse(&cfg->listen_peer_urls, "http://localhost:2380", e, sizeof e);
    node_url_list_parse(&cfg->initial_advertise_peer_urls, "http://localhost:2380", e, sizeof e);
    strcpy(cfg->initial_cluster_token, "etcd-cluster");
    cfg->heartbeat_ms = 100;
    cfg->election_ms = 1000;
    cfg->quota_backend_bytes = 2ULL << 30;
    cfg->max_request_bytes = 1536 * 1024;
    cfg->max_txn_ops = 128;
    cfg->snapshot_count = 100000;
    strcpy(cfg->auto_compaction_mode, "periodic");
    strcpy(cfg->auto_compaction_retention, "0");
    strcpy(cfg->log_level, "info");
    cfg->pre_vote = true;
    cfg->strict_reconfig_check = true;
}

static int url_parse(struct node_url *u, const char *s, size_t len, char *err, size_t errlen)
{
    const char *p, *host, *colon, *end;
    size_t hl;
    char *ep;
    long port;

    memset(u, 0, sizeof(*u));
    while (len && s[len - 1] == '/')
        len--;
    if (len == 0 || len >= sizeof(u->raw)) {
        seterr(err, errlen, "invalid URL %.*s", (int)len, s);
        return -1;
    }
    memcpy(u->raw, s, len);
    u->raw[len] = 0;
    if (strncmp(u->raw, "http://", 7) == 0) {
        p = u->raw + 7;
    } else if (strncmp(u->raw, "https://", 8) == 0) {
        p = u->raw + 8;
        u->tls = true;
    } else {
        seterr(err, errlen, "URL scheme must be http or https: %s", u->raw);
        return -1;
    }
    end = strchr(p, '/');
    if (!end)
        end = p + strlen(p);
    if (*p == '[') { /* IPv6 literal */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            seterr(err, errlen, "invalid URL %s: unclosed '['", u->raw);
            return -1;
        }
        host = p + 1;
        hl = (size_t)(rb - host);
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        host = p;
        colon = memchr(p, ':', (size_t)(end - p));
        hl = (size_t)((colon ? colon : end) - host);
    }
    if (hl == 0 || hl >= sizeof(u->host)) {
        seterr(err, errlen, "invalid URL %s: no host", u->raw);
        return -1;
    }
    memcpy(u->host, host, hl);
    u->host[hl] = 0;
    if (!colon) {
        seterr(err, errlen, "URL address does not have the form \"host:port\": %s", u->raw);
        return -1;
    }
    errno = 0;
    port = strtol(colon + 1, &ep, 10);
    if (errno || ep != end || port <= 0 || port > 65535) {
        seterr(err, errlen, "invalid port in URL %s", u->raw);
        return -1;
    }
    u->port = (int)port;
    return 0;
}

int node_url_list_parse(struct node_url_list *list, const char *s, char *err, size_t errlen)
{
    struct node_url_list tmp;
    tmp.n = 0;
    while (*s) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        while (len && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        if (len) {
            if (tmp.n == NODE_MAX_URLS) {
                seterr(err, errlen, "too many URLs (at most %d)", NODE_MAX_URLS);
                return -1;
            }
            if (url_parse(&tmp.u[tmp.n], s, len, err, errlen) < 0)
                return -1;
            tmp.n++;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    if (tmp.n == 0) {
        seterr(err, errlen, "no URL given");
        return -1;
    }
    *list = tmp;
    return 0;
}

int node_initial_cluster_parse(struct node_member_seed *members, int max, const char *s,
                               char *err, size_t errlen)
{
    int n = 0;
    while (*s) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        size_t nl;
        int i;
        if (len == 0)
            goto next;
        if (!eq || eq == s) {
            seterr(err, errlen, "%.*s: expected name=URL", (int)len, s);
            return -1;
        }
        nl = (size_t)(eq - s);
        if (nl >= sizeof(members[0].name)) {
            seterr(err, errlen, "member name too long: %.*s", (int)nl, s);
            return -1;
        }
        for (i = 0; i < n; i++)
            if (strlen(members[i].name) == nl && memcmp(members[i].name, s, nl) == 0)
                break;
        if (i == n) {
            if (n == max) {
                seterr(err, errlen, "too many members (at most %d)", max);
                return -1;
            }
            memset(&members[n], 0, sizeof(members[n]));
            memcpy(members[n].name, s, nl);
            n++;
        }
        if (members[i].peer_urls.n == NODE_MAX_URLS) {
            seterr(err, errlen, "member %s: too many URLs", members[i].name);
            return -1;
        }
        if (url_parse(&members[i].peer_urls.u[members[i].peer_urls.n], eq + 1,
                      len - nl - 1, err, errlen) < 0)
            return -1;
        members[i].peer_urls.n++;
    next:
        s += len;
        if (*s == ',')
            s++;
    }
    if (n == 0) {
        seterr(err, errlen, "empty initial cluster");
        return -1;
    }
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

uint64_t node_member_id(const struct node_url_list *peer_urls, const char *token, int64_t unix_time)
{
    const char *sorted[NODE_MAX_URLS];
    unsigned char md[SHA_DIGEST_LENGTH];
    char buf[NODE_MAX_URLS * 300 + 160];
    size_t len = 0;
    uint64_t id = 0;
    int i;

    for (i = 0; i < peer_urls->n; i++)
        sorted[i] = peer_urls->u[i].raw;
    qsort(sorted, (size_t)peer_urls->n, sizeof(sorted[0]), cmp_str);
    for (i = 0; i < peer_urls->n; i++) {
        size_t l = strlen(sorted[i]);
        memcpy(buf + len, sorted[i], l);
        len += l;
    }
    len += (size_t)snprintf(buf + len, 128, "%.127s", token);
    if (unix_time)
        len += (size_t)snprintf(buf + len, 32, "%" PRId64, unix_time);
    SHA1((const unsigned char *)buf, len, md);
    for (i = 0; i < 8; i++)
        id = id << 8 | md[i];
    return id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t node_cluster_id(const uint64_t *ids, int n)
{
    uint64_t sorted[NODE_MAX_MEMBERS];
    unsigned char buf[8 * NODE_MAX_MEMBERS], md[SHA_DIGEST_LENGTH];
    uint64_t id = 0;
    int i, j;

    if (n > NODE_MAX_MEMBERS)
        n = NODE_MAX_MEMBERS;
    memcpy(sorted, ids, (size_t)n * sizeof(uint64_t));
    qsort(sorted, (size_t)n, sizeof(uint64_t), cmp_u64);
    for (i = 0; i < n; i++)
        for (j = 0; j < 8; j++)
            buf[8 * i + j] = (unsigned char)(sorted[i] >> (56 - 8 * j));
    SHA1(buf, (size_t)(8 * n), md);
    for (i = 0; i < 8; i++)
        id = id << 8 | md[i];
    return id;
}

static int parse_u64(const char *v, uint64_t *out)
{
    char *ep;
    unsigned long long x;
    if (!*v || *v == '-')
        return -1;
    errno = 0;
    x = strtoull(v, &ep, 10);
    if (errno || *ep)
        return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "TRUE") ||
        !strcmp(v, "True") || !strcmp(v, "T")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "FALSE") ||
        !strcmp(v, "False") || !strcmp(v, "F")) {
        *out = false;
        return 0;
    }
    return -1;
}

/* Retention: a plain number means hours in periodic mode (etcd), revisions in revision
 * mode; a Go duration ("90m", "1h30m", "10s") is accepted in periodic mode. */
static int parse_retention(struct node_config *cfg, char *err, size_t errlen)
{
    const char *s = cfg->auto_compaction_retention;
    uint64_t n;
    cfg->auto_compaction_ms = 0;
    cfg->auto_compaction_revs = 0;
    if (strcmp(cfg->auto_compaction_mode, "periodic") && strcmp(cfg->auto_compaction_mode, "revision")) {
        seterr(err, errlen, "invalid value \"%s\" for flag --auto-compaction-mode: must be periodic or revision",
               cfg->auto_compaction_mode);
        return -1;
    }
    if (parse_u64(s, &n) == 0) {
        if (!strcmp(cfg->auto_compaction_mode, "revision"))
            cfg->auto_compaction_revs = (int64_t)n;
        else
            cfg->auto_compaction_ms = n * 3600 * 1000;
        return 0;
    }
    if (!strcmp(cfg->auto_compaction_mode, "periodic")) {
        double total = 0;
        const char *p = s;
        while (*p) {
            char *ep;
            double v = strtod(p, &ep);
            double mul;
            if (ep == p || v < 0)
                goto bad;
            if (!strncmp(ep, "ms", 2)) { mul = 1; ep += 2; }
            else if (*ep == 'h') { mul = 3600e3; ep++; }
            else if (*ep == 'm') { mul = 60e3; ep++; }
            else if (*ep == 's') { mul = 1e3; ep++; }
            else goto bad;
            total += v * mul;
            p = ep;
        }
        cfg->auto_compaction_ms = (uint64_t)total;
        return 0;
    }
bad:
    seterr(err, errlen, "invalid value \"%s\" for flag --auto-compaction-retention", s);
    return -1;
}

static int set_flag(struct node_config *cfg, const struct flag *f, const char *v, bool *cluster_set,
                    const char **cluster_str, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    uint64_t n;
    char e[256];

    switch (f->kind) {
    case F_STR:
        if (strlen(v) >= f->size) {
            seterr(err, errlen, "invalid value for flag --%s: too long", f->name);
            return -1;
        }
        strcpy(base + f->off, v);
        return 0;
    case F_URLS:
        if (node_url_list_parse((struct node_url_list *)(base + f->off), v, e, sizeof e) < 0) {
            seterr(err, errlen, "invalid value \"%s\" for flag --%s: %s", v, f->name, e);
            return -1;
        }
        return 0;
    case F_U32:
        if (parse_u64(v, &n) < 0 || n > 0xffffffffu) {
            seterr(err, errlen, "invalid value \"%s\" for flag --%s: parse error", v, f->name);
            return -1;
        }
        *(unsigned *)(base + f->off) = (unsigned)n;
        return 0;
    case F_U64:
        if (parse_u64(v, &n) < 0) {
            seterr(err, errlen, "invalid value \"%s\" for flag --%s: parse error", v, f->name);
            return -1;
        }
        *(uint64_t *)(base + f->off) = n;
        return 0;
    case F_BOOL:
        if (parse_bool(v, (bool *)(base + f->off)) < 0) {
            seterr(err, errlen, "invalid boolean value \"%s\" for --%s", v, f->name);
            return -1;
        }
        return 0;
    case F_CLUSTER:
        *cluster_set = true;
        *cluster_str = v;
        return 0;
    case F_STATE:
        if (!strcmp(v, "new"))
            cfg->initial_cluster_existing = false;
        else if (!strcmp(v, "existing"))
            cfg->initial_cluster_existing = true;
        else {
            seterr(err, errlen, "invalid value \"%s\" for flag --initial-cluster-state: must be new or existing", v);
            return -1;
        }
        return 0;
    case F_IGNORED:
        return 0;
    }
    return -1;
}

void node_config_usage(void *outp)
{
    FILE *out = outp ? outp : stdout;
    size_t i;
    fprintf(out, "Usage: plinth [flags]\n\nplinth is a Raft-replicated key/value store speaking etcd's v3 API.\n\nFlags:\n");
    for (i = 0; i < NFLAGS; i++)
        fprintf(out, "  --%s%s\n      %s\n", flags[i].name,
                flags[i].kind == F_BOOL ? "" : " <value>", flags[i].help);
    fprintf(out, "  --version\n      print the version and exit\n  --help\n      print this help and exit\n");
}

int node_config_parse(struct node_config *cfg, int argc, char **argv, char *err, size_t errlen,
                      void *outp)
{
    FILE *out = outp ? outp : stdout;
    bool cluster_set = false, data_dir_set = false, adv_set = false;
    const char *cluster_str = NULL;
    char e[256];
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        size_t nl, k;
        const struct flag *f = NULL;

        if (a[0] != '-' || !a[1]) {
            seterr(err, errlen, "'%s' is not a valid flag", a);
            return NODE_CONFIG_ERROR;
        }
        a += a[1] == '-' ? 2 : 1;
        eq = strchr(a, '=');
        nl = eq ? (size_t)(eq - a) : strlen(a);
        if ((nl == 4 && !strncmp(a, "help", 4)) || (nl == 1 && a[0] == 'h')) {
            node_config_usage(out);
            return NODE_CONFIG_EXIT_OK;
        }
        if (nl == 7 && !strncmp(a, "version", 7)) {
            fprintf(out, "plinth Version: %s\nAPI version: 3.5\netcd-compatible version: 3.5.0\n",
                    PLINTH_VERSION);
            return NODE_CONFIG_EXIT_OK;
        }
        for (k = 0; k < NFLAGS; k++)
            if (strlen(flags[k].name) == nl && !strncmp(flags[k].name, a, nl)) {
                f = &flags[k];
                break;
            }
        if (!f) {
            seterr(err, errlen, "flag provided but not defined: --%.*s", (int)nl, a);
            return NODE_CONFIG_ERROR;
        }
        if (eq) {
            v = eq + 1;
        } else if (f->kind == F_BOOL) {
            v = "true";
        } else {
            if (i + 1 >= argc) {
                seterr(err, errlen, "flag needs an argument: --%s", f->name);
                return NODE_CONFIG_ERROR;
            }
            v = argv[++i];
        }
        if (set_flag(cfg, f, v, &cluster_set, &cluster_str, err, errlen) < 0)
            return NODE_CONFIG_ERROR;
        if (!strcmp(f->name, "data-dir"))
            data_dir_set = true;
        if (!strcmp(f->name, "advertise-client-urls"))
            adv_set = true;
    }

    if (!cfg->name[0]) {
        seterr(err, errlen, "--name must not be empty");
        return NODE_CONFIG_ERROR;
    }
    if (!data_dir_set || !cfg->data_dir[0])
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s.etcd", cfg->name);
    if (!adv_set && strcmp(cfg->listen_client_urls.u[0].raw, "http://localhost:2379") != 0)
        cfg->advertise_client_urls = cfg->listen_client_urls;
    if (cfg->heartbeat_ms == 0) {
        seterr(err, errlen, "--heartbeat-interval must be > 0");
        return NODE_CONFIG_ERROR;
    }
    if (cfg->election_ms < 5 * cfg->heartbeat_ms) {
        seterr(err, errlen, "--election-timeout[%ums] should be at least as 5 times as --heartbeat-interval[%ums]",
               cfg->election_ms, cfg->heartbeat_ms);
        return NODE_CONFIG_ERROR;
    }
    if (cfg->election_ms > 50000) {
        seterr(err, errlen, "--election-timeout[%ums] is too long, and should be set less than 50000ms",
               cfg->election_ms);
        return NODE_CONFIG_ERROR;
    }
    if (cfg->max_request_bytes == 0 || cfg->max_txn_ops == 0) {
        seterr(err, errlen, "--max-request-bytes and --max-txn-ops must be > 0");
        return NODE_CONFIG_ERROR;
    }
    if (cfg->restore_snapshot[0] && cfg->initial_cluster_existing) {
        seterr(err, errlen, "--restore-snapshot starts a new cluster: use --initial-cluster-state new");
        return NODE_CONFIG_ERROR;
    }
    if (cfg->skip_hash_check && !cfg->restore_snapshot[0]) {
        seterr(err, errlen, "--skip-hash-check needs --restore-snapshot");
        return NODE_CONFIG_ERROR;
    }
    if (cfg->snapshot_count == 0)
        cfg->snapshot_count = 100000;
    if (parse_retention(cfg, err, errlen) < 0)
        return NODE_CONFIG_ERROR;
    if ((cfg->cert_file[0] != 0) != (cfg->key_file[0] != 0)) {
        seterr(err, errlen, "--cert-file and --key-file must be given together");
        return NODE_CONFIG_ERROR;
    }
    if ((cfg->peer_cert_file[0] != 0) != (cfg->peer_key_file[0] != 0)) {
        seterr(err, errlen, "--peer-cert-file and --peer-key-file must be given together");
        return NODE_CONFIG_ERROR;
    }
    for (i = 0; i < cfg->listen_client_urls.n; i++)
        if (cfg->listen_client_urls.u[i].tls && !cfg->cert_file[0]) {
            seterr(err, errlen, "TLS key/cert (--cert-file, --key-file) must be provided for client url %s",
                   cfg->listen_client_urls.u[i].raw);
            return NODE_CONFIG_ERROR;
        }
    for (i = 0; i < cfg->listen_peer_urls.n; i++)
        if (cfg->listen_peer_urls.u[i].tls && !cfg->peer_cert_file[0]) {
            seterr(err, errlen, "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url %s",
                   cfg->listen_peer_urls.u[i].raw);
            return NODE_CONFIG_ERROR;
        }
    if (cfg->client_cert_auth && !cfg->trusted_ca_file[0]) {
        seterr(err, errlen, "--client-cert-auth needs --trusted-ca-file");
        return NODE_CONFIG_ERROR;
    }

    /* etcd: with no --initial-cluster the cluster is this member alone. */
    if (cluster_set) {
        int n = node_initial_cluster_parse(cfg->members, NODE_MAX_MEMBERS, cluster_str, e, sizeof e);
        if (n < 0) {
            seterr(err, errlen, "invalid value \"%s\" for flag --initial-cluster: %s", cluster_str, e);
            return NODE_CONFIG_ERROR;
        }
        cfg->n_members = n;
    } else {
        cfg->n_members = 1;
        memset(&cfg->members[0], 0, sizeof(cfg->members[0]));
        snprintf(cfg->members[0].name, sizeof cfg->members[0].name, "%s", cfg->name);
        cfg->members[0].peer_urls = cfg->initial_advertise_peer_urls;
    }
    {
        uint64_t ids[NODE_MAX_MEMBERS];
        int self = -1, k;
        for (i = 0; i < cfg->n_members; i++) {
            cfg->members[i].id = node_member_id(&cfg->members[i].peer_urls, cfg->initial_cluster_token, 0);
            ids[i] = cfg->members[i].id;
            for (k = 0; k < i; k++)
                if (ids[k] == ids[i]) {
                    seterr(err, errlen, "--initial-cluster has duplicate peer URLs for %s and %s",
                           cfg->members[k].name, cfg->members[i].name);
                    return NODE_CONFIG_ERROR;
                }
            if (!strcmp(cfg->members[i].name, cfg->name))
                self = i;
        }
        if (self < 0) {
            seterr(err, errlen, "couldn't find local name \"%s\" in the initial cluster configuration",
                   cfg->name);
            return NODE_CONFIG_ERROR;
        }
        /* etcd checks that the advertised peer URLs match the cluster entry for this name. */
        {
            struct node_url_list *a = &cfg->initial_advertise_peer_urls,
                                 *b = &cfg->members[self].peer_urls;
            if (node_member_id(a, "", 0) != node_member_id(b, "", 0)) {
                seterr(err, errlen, "--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s",
                       cfg->name, b->u[0].raw, a->u[0].raw);
                return NODE_CONFIG_ERROR;
            }
        }
        cfg->self_id = cfg->members[self].id;
        cfg->cluster_id = node_cluster_id(ids, cfg->n_members);
    }
    return NODE_CONFIG_OK;
}

/* config — the plinth server's configuration: etcd's flags with etcd's names, defaults and
 * meanings, URL lists, the initial cluster, and the member and cluster ids derived from them. */
#ifndef PLINTH_NODE_CONFIG_H
#define PLINTH_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NODE_MAX_URLS 8
#define NODE_MAX_MEMBERS 16
#define NODE_ERRLEN 512

/* A parsed http:// or https:// URL ("unix" and others are refused). */
struct node_url {
    char raw[300];   /* the URL as given, without a trailing '/' */
    char host[256];  /* host name or address, without brackets */
    int port;
    bool tls;        /* https */
};

struct node_url_list {
    int n;
    struct node_url u[NODE_MAX_URLS];
};

/* One member of --initial-cluster ("name=url1,name=url2" groups by name). */
struct node_member_seed {
    char name[128];
    struct node_url_list peer_urls;
    uint64_t id; /* derived, see node_member_id */
};

struct node_config {
    char name[128];
    char data_dir[1024];
    struct node_url_list listen_client_urls;
    struct node_url_list advertise_client_urls;
    struct node_url_list listen_peer_urls;
    struct node_url_list initial_advertise_peer_urls;
    struct node_url_list listen_metrics_urls;
    int n_members;
    struct node_member_seed members[NODE_MAX_MEMBERS];
    bool initial_cluster_existing;  /* --initial-cluster-state existing */
    char initial_cluster_token[128];
    unsigned heartbeat_ms;
    unsigned election_ms;
    char cert_file[1024], key_file[1024], trusted_ca_file[1024];
    bool client_cert_auth;
    char peer_cert_file[1024], peer_key_file[1024], peer_trusted_ca_file[1024];
    bool peer_client_cert_auth;
    uint64_t quota_backend_bytes;
    uint64_t max_request_bytes;
    uint64_t snapshot_count;
    unsigned max_txn_ops;
    char auto_compaction_mode[16];   /* "periodic" or "revision" */
    char auto_compaction_retention[64];
    uint64_t auto_compaction_ms;     /* periodic: retention in ms; 0 = off */
    int64_t auto_compaction_revs;    /* revision mode: revisions kept; 0 = off */
    char log_level[16];
    bool pre_vote;
    bool strict_reconfig_check;
    /* --restore-snapshot FILE: build the (empty) data dir from a Maintenance/Snapshot file
     * first, with the membership of --initial-cluster (etcdutl snapshot restore) */
    char restore_snapshot[1024];
    bool skip_hash_check;           /* --skip-hash-check: the file has no SHA-256 trailer */
    uint64_t self_id;                /* this member's id (from initial cluster) */
    uint64_t cluster_id;
};

enum node_config_result {
    NODE_CONFIG_OK = 0,     /* run the server */
    NODE_CONFIG_EXIT_OK,    /* --help or --version printed; exit 0 */
    NODE_CONFIG_ERROR,      /* bad flag or value; err holds the text; exit 2 */
};

/* Fills cfg with etcd's defaults. */
void node_config_defaults(struct node_config *cfg);

/* Parses argv (argv[0] is skipped) in both "--flag=value" and "--flag value" forms (one or
 * two leading dashes, as Go's flag package takes them; boolean flags take "--flag" or
 * "--flag=true|false"). Applies etcd's derived defaults (data dir "<name>.etcd", initial
 * cluster "<name>=<advertise peer urls>"), checks the values, and computes member and cluster
 * ids. --help / --version text is written to `out` (may be NULL = stdout).
 * Returns a node_config_result; on NODE_CONFIG_ERROR err (errlen bytes) names the flag. */
int node_config_parse(struct node_config *cfg, int argc, char **argv, char *err, size_t errlen,
                      void *out);

/* Parses a comma-separated list of URLs into list. Returns 0 or -1 with text in err. */
int node_url_list_parse(struct node_url_list *list, const char *s, char *err, size_t errlen);

/* Parses "name=url,name=url" into members (grouped by name). Returns count or -1. */
int node_initial_cluster_parse(struct node_member_seed *members, int max, const char *s,
                               char *err, size_t errlen);

/* etcd's member id: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs
 * joined with no separator, then the cluster token, then (for runtime adds) the decimal
 * unix time when `unix_time` is non-zero. */
uint64_t node_member_id(const struct node_url_list *peer_urls, const char *token,
                        int64_t unix_time);

/* etcd's cluster id: SHA-1 over the sorted member ids as 8-byte big-endian values. */
uint64_t node_cluster_id(const uint64_t *ids, int n);

/* Writes the flag list to out (a FILE *). */
void node_config_usage(void *out);

#endif

/* metrics — the server's counters and histograms, printed in Prometheus text format on
 * /metrics, and /health, served with libevent's evhttp on --listen-metrics-urls. */
#ifndef PLINTH_NODE_METRICS_H
#define PLINTH_NODE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

/* Upper bounds (seconds) of etcd's disk histograms: 0.001 * 2^i, i = 0..13. */
#define NODE_HIST_BUCKETS 14

struct node_hist {
    uint64_t bucket[NODE_HIST_BUCKETS]; /* cumulative counts are computed when printed */
    uint64_t count;
    double sum;
};

/* Values the node updates as it runs; read by the HTTP handler. */
struct node_metrics {
    uint64_t leader_changes;
    uint64_t proposals_committed;   /* commit index seen */
    uint64_t proposals_applied;     /* applied index */
    uint64_t proposals_pending;
    uint64_t proposals_failed;
    uint64_t slow_applies;
    uint64_t read_indexes;
    uint64_t turns;                 /* loop turns that took a ready batch */
    uint64_t entries_proposed;      /* entries this member handed to raft_propose */
    uint64_t entries_forwarded;     /* proposals sent to the leader */
    struct node_hist wal_fsync;      /* etcd_disk_wal_fsync_duration_seconds */
    struct node_hist backend_commit; /* etcd_disk_backend_commit_duration_seconds */
    struct node_hist apply;          /* etcd_server_apply_duration_seconds (per turn) */
};

/* Values sampled at scrape time. */
struct node_gauges {
    bool has_leader;
    bool is_leader;
    bool is_learner;
    uint64_t term;
    uint64_t member_id;
    int64_t db_size;
    int64_t db_size_in_use;
    int64_t revision;
    int64_t compact_revision;
    uint64_t watchers;
    uint64_t watch_streams;
    uint64_t leases;
    uint64_t clients;
    int n_peers;
    uint64_t peer_id[16];
    double peer_rtt_s[16];     /* < 0 when unknown */
    uint64_t peer_sent_bytes[16];
    uint64_t peer_recv_bytes[16];
    bool alarm_nospace;
    bool health;               /* what /health reports */
    char health_reason[128];
};

typedef void (*node_gauges_cb)(void *ud, struct node_gauges *out);

struct node_metrics_server;

/* Records one observation (seconds) into h. */
void node_hist_observe(struct node_hist *h, double seconds);

/* Starts serving /metrics and /health on each URL of the list (http:// or https://;
 * https uses tls_ctx, borrowed). m is borrowed and must outlive the server; gauges is
 * called at each scrape. Returns 0, or -1 with text in err. */
struct node_url_list;
int node_metrics_server_start(struct event_base *base, const struct node_url_list *urls,
                              SSL_CTX *tls_ctx, struct node_metrics *m, node_gauges_cb gauges,
                              void *ud, struct node_metrics_server **out, char *err, size_t errlen);
void node_metrics_server_free(struct node_metrics_server *s);

/* Appends the Prometheus text of m and g to buf (an evbuffer *). Exposed for tests. */
void node_metrics_format(void *evbuf, const struct node_metrics *m, const struct node_gauges *g);

#endif

/* metrics — Prometheus text and /health for the plinth server, over evhttp. */
#include "node/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "node/config.h"

struct node_metrics_server {
    int n;
    struct evhttp *http[NODE_MAX_URLS];
    SSL_CTX *tls_ctx;
    struct node_metrics *m;
    node_gauges_cb gauges;
    void *ud;
};

void node_hist_observe(struct node_hist *h, double s)
{
    double ub = 0.001;
    int i;
    for (i = 0; i < NODE_HIST_BUCKETS; i++, ub *= 2)
        if (s <= ub) {
            h->bucket[i]++;
            break;
        }
    h->count++;
    h->sum += s;
}

static void hist_print(struct evbuffer *b, const char *name, const char *help, const struct node_hist *h)
{
    double ub = 0.001;
    uint64_t cum = 0;
    int i;
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (i = 0; i < NODE_HIST_BUCKETS; i++, ub *= 2) {
        cum += h->bucket[i];
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, ub, cum);
    }
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n",
                        name, h->count, name, h->sum, name, h->count);
}

static void gauge(struct evbuffer *b, const char *type, const char *name, const char *help, double v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

void node_metrics_format(void *evbuf, const struct node_metrics *m, const struct node_gauges *g)
{
    struct evbuffer *b = evbuf;
    int i;
    gauge(b, "gauge", "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", g->has_leader);
    gauge(b, "gauge", "etcd_server_is_leader", "Whether or not this member is a leader.", g->is_leader);
    gauge(b, "gauge", "etcd_server_is_learner", "Whether or not this member is a learner.", g->is_learner);
    gauge(b, "counter", "etcd_server_leader_changes_seen_total", "The number of leader changes seen.", (double)m->leader_changes);
    gauge(b, "gauge", "etcd_server_term", "The current Raft term.", (double)g->term);
    evbuffer_add_printf(b, "# HELP etcd_server_id Server ID.\n# TYPE etcd_server_id gauge\n"
                           "etcd_server_id{server_id=\"%" PRIx64 "\"} 1\n", g->member_id);
    gauge(b, "gauge", "etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", (double)m->proposals_committed);
    gauge(b, "gauge", "etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", (double)m->proposals_applied);
    gauge(b, "gauge", "etcd_server_proposals_pending", "The current number of pending proposals to commit.", (double)m->proposals_pending);
    gauge(b, "counter", "etcd_server_proposals_failed_total", "The total number of failed proposals seen.", (double)m->proposals_failed);
    gauge(b, "counter", "etcd_server_read_indexes_total", "The total number of ReadIndex rounds.", (double)m->read_indexes);
    gauge(b, "counter", "plinth_node_ready_batches_total", "Raft ready batches persisted (one LMDB commit each).", (double)m->turns);
    gauge(b, "counter", "plinth_node_entries_proposed_total", "Entries proposed by this member as leader.", (double)m->entries_proposed);
    gauge(b, "counter", "plinth_node_proposals_forwarded_total", "Client writes forwarded to the leader.", (double)m->entries_forwarded);
    gauge(b, "counter", "etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk).", (double)m->slow_applies);
    hist_print(b, "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", &m->wal_fsync);
    hist_print(b, "etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.", &m->backend_commit);
    hist_print(b, "etcd_server_apply_duration_seconds", "The latency distributions of applying a batch of committed entries.", &m->apply);
    gauge(b, "gauge", "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", (double)g->db_size);
    gauge(b, "gauge", "etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", (double)g->db_size_in_use);
    gauge(b, "gauge", "etcd_debugging_mvcc_current_revision", "The current revision of store.", (double)g->revision);
    gauge(b, "gauge", "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.", (double)g->compact_revision);
    gauge(b, "gauge", "etcd_debugging_mvcc_watcher_total", "Total number of watchers.", (double)g->watchers);
    gauge(b, "gauge", "etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.", (double)g->watch_streams);
    gauge(b, "gauge", "etcd_debugging_lease_total", "The number of leases.", (double)g->leases);
    gauge(b, "gauge", "etcd_server_client_connections", "The number of open client connections.", (double)g->clients);
    gauge(b, "gauge", "etcd_server_quota_alarm_nospace", "Whether the NOSPACE alarm is active.", g->alarm_nospace);
    if (g->n_peers > 0) {
        evbuffer_add_printf(b, "# HELP etcd_network_peer_round_trip_time_seconds Round-Trip-Time of the last heartbeat with a peer (seconds).\n"
                               "# TYPE etcd_network_peer_round_trip_time_seconds gauge\n");
        for (i = 0; i < g->n_peers && i < 16; i++)
            if (g->peer_rtt_s[i] >= 0)
                evbuffer_add_printf(b, "etcd_network_peer_round_trip_time_seconds{To=\"%" PRIx64 "\"} %.6f\n",
                                    g->peer_id[i], g->peer_rtt_s[i]);
        evbuffer_add_printf(b, "# HELP etcd_network_peer_sent_bytes_total The total number of bytes sent to peers.\n"
                               "# TYPE etcd_network_peer_sent_bytes_total counter\n");
        for (i = 0; i < g->n_peers && i < 16; i++)
            evbuffer_add_printf(b, "etcd_network_peer_sent_bytes_total{To=\"%" PRIx64 "\"} %" PRIu64 "\n",
                                g->peer_id[i], g->peer_sent_bytes[i]);
        evbuffer_add_printf(b, "# HELP etcd_network_peer_received_bytes_total The total number of bytes received from peers.\n"
                               "# TYPE etcd_network_peer_received_bytes_total counter\n");
        for (i = 0; i < g->n_peers && i < 16; i++)
            evbuffer_add_printf(b, "etcd_network_peer_received_bytes_total{From=\"%" PRIx64 "\"} %" PRIu64 "\n",
                                g->peer_id[i], g->peer_recv_bytes[i]);
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct node_metrics_server *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *b = evbuffer_new();
    struct node_gauges g;
    size_t pl;

    if (!b) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    memset(&g, 0, sizeof g);
    s->gauges(s->ud, &g);
    pl = strcspn(uri, "?");
    if (pl == 8 && !strncmp(uri, "/metrics", 8)) {
        node_metrics_format(b, s->m, &g);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", b);
    } else if ((pl == 7 && !strncmp(uri, "/health", 7)) || (pl == 9 && !strncmp(uri, "/readyz", 7)) ||
               (pl == 8 && !strncmp(uri, "/livez", 6))) {
        evbuffer_add_printf(b, "{\"health\":\"%s\",\"reason\":\"%s\"}", g.health ? "true" : "false",
                            g.health_reason);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
        evhttp_send_reply(req, g.health ? 200 : 503, g.health ? "OK" : "Service Unavailable", b);
    } else {
        evhttp_send_reply(req, 404, "Not Found", NULL);
    }
    evbuffer_free(b);
}

static struct bufferevent *ssl_bevcb(struct event_base *base, void *arg)
{
    struct node_metrics_server *s = arg;
    SSL *ssl = SSL_new(s->tls_ctx);
    if (!ssl)
        return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

int node_metrics_server_start(struct event_base *base, const struct node_url_list *urls,
                              SSL_CTX *tls_ctx, struct node_metrics *m, node_gauges_cb gauges,
                              void *ud, struct node_metrics_server **out, char *err, size_t errlen)
{
    struct node_metrics_server *s = calloc(1, sizeof *s);
    int i;
    if (!s) {
        snprintf(err, errlen, "metrics: out of memory");
        return -1;
    }
    s->tls_ctx = tls_ctx;
    s->m = m;
    s->gauges = gauges;
    s->ud = ud;
    for (i = 0; i < urls->n; i++) {
        const struct node_url *u = &urls->u[i];
        struct evhttp *h = evhttp_new(base);
        if (!h) {
            snprintf(err, errlen, "metrics: out of memory");
            goto fail;
        }
        s->http[s->n++] = h;
        if (u->tls) {
            if (!tls_ctx) {
                snprintf(err, errlen, "metrics: %s: https needs --cert-file and --key-file", u->raw);
                goto fail;
            }
            evhttp_set_bevcb(h, ssl_bevcb, s);
        }
        evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
        evhttp_set_gencb(h, on_request, s);
        if (evhttp_bind_socket(h, u->host, (ev_uint16_t)u->port) != 0) {
            snprintf(err, errlen, "metrics: listen %s:%d: cannot bind", u->host, u->port);
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    node_metrics_server_free(s);
    return -1;
}

void node_metrics_server_free(struct node_metrics_server *s)
{
    int i;
    if (!s)
        return;
    for (i = 0; i < s->n; i++)
        evhttp_free(s->http[i]);
    free(s);
}

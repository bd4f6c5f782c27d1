/* test_metrics — the Prometheus text of the server: etcd's metric names, cumulative
 * histogram buckets, and peer round-trip times labelled by peer id. */
#include "tests/lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "node/metrics.h"

static char *format(const struct node_metrics *m, const struct node_gauges *g)
{
    struct evbuffer *b = evbuffer_new();
    size_t len;
    char *s;
    node_metrics_format(b, m, g);
    len = evbuffer_get_length(b);
    s = calloc(1, len + 1);
    evbuffer_remove(b, s, len);
    evbuffer_free(b);
    return s;
}

static void names_and_values(void **state)
{
    struct node_metrics m;
    struct node_gauges g;
    char *s;
    (void)state;
    memset(&m, 0, sizeof m);
    memset(&g, 0, sizeof g);
    g.has_leader = true;
    g.term = 7;
    g.db_size = 65536;
    m.leader_changes = 3;
    m.proposals_failed = 2;
    s = format(&m, &g);
    assert_non_null(strstr(s, "\netcd_server_has_leader 1\n"));
    assert_non_null(strstr(s, "\netcd_server_leader_changes_seen_total 3\n"));
    assert_non_null(strstr(s, "\netcd_server_term 7\n"));
    assert_non_null(strstr(s, "\netcd_server_proposals_failed_total 2\n"));
    assert_non_null(strstr(s, "\netcd_mvcc_db_total_size_in_bytes 65536\n"));
    assert_non_null(strstr(s, "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n"));
    assert_null(strstr(s, "etcd_network_peer_round_trip_time_seconds{")); /* no peers */
    free(s);
}

static void histogram_is_cumulative(void **state)
{
    struct node_metrics m;
    struct node_gauges g;
    char *s;
    (void)state;
    memset(&m, 0, sizeof m);
    memset(&g, 0, sizeof g);
    node_hist_observe(&m.wal_fsync, 0.0005); /* <= 0.001 */
    node_hist_observe(&m.wal_fsync, 0.003);  /* <= 0.004 */
    node_hist_observe(&m.wal_fsync, 100.0);  /* only +Inf */
    s = format(&m, &g);
    assert_non_null(strstr(s, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(s, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1\n"));
    assert_non_null(strstr(s, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 2\n"));
    assert_non_null(strstr(s, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 2\n"));
    assert_non_null(strstr(s, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(s, "etcd_disk_wal_fsync_duration_seconds_count 3\n"));
    free(s);
}

static void peers_labelled(void **state)
{
    struct node_metrics m;
    struct node_gauges g;
    char *s;
    (void)state;
    memset(&m, 0, sizeof m);
    memset(&g, 0, sizeof g);
    g.n_peers = 2;
    g.peer_id[0] = 0xabc;
    g.peer_rtt_s[0] = 0.0005;
    g.peer_id[1] = 0xdef;
    g.peer_rtt_s[1] = -1; /* unknown yet: not printed */
    s = format(&m, &g);
    assert_non_null(strstr(s, "etcd_network_peer_round_trip_time_seconds{To=\"abc\"} 0.000500\n"));
    assert_null(strstr(s, "etcd_network_peer_round_trip_time_seconds{To=\"def\"}"));
    assert_non_null(strstr(s, "etcd_network_peer_sent_bytes_total{To=\"def\"} 0\n"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_values),
        cmocka_unit_test(histogram_is_cumulative),
        cmocka_unit_test(peers_labelled),
    };
    return PLINTH_RUN_TESTS("node_metrics", tests);
}

/* bench — shared state of plinth-bench: options, latency samples and report output. */
#ifndef PLINTH_BENCH_H
#define PLINTH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "net/grpc_client.h"
#include "rpc.pb-c.h"

/* Options shared by every workload (see usage() in main.c). */
struct bench_opts {
    const char *endpoints;
    const char *cacert, *cert, *key;
    int conns;              /* M connections */
    int clients;            /* N clients (requests kept in flight) */
    long total;             /* requests to issue; 0: bounded by duration only */
    double duration;        /* seconds; 0: bounded by total only */
    double max_time;        /* hard cap on any run, seconds */
    int key_size, val_size;
    long key_space;         /* distinct keys for random keys */
    int sequential;         /* 1: sequential keys, 0: random */
    const char *prefix;     /* key prefix */
    int serializable;       /* range */
    int range_prefix;       /* range over the prefix instead of one key */
    int watchers;           /* watch fan-out */
    int rounds;             /* failover */
    int use_stop;           /* failover: SIGSTOP instead of SIGKILL */
    const char *cluster_dir;/* failover: directory made by scripts/cluster.sh */
    int json;               /* -w json */
    int quiet;              /* no progress line */
    int timeout_ms;         /* per request */
};

/* Latency samples in microseconds, grown as needed. */
struct bench_lat {
    uint32_t *us;
    size_t n, cap;
};

void lat_add(struct bench_lat *l, double us);
/* q in [0,1]; sorts the samples on first use after an add. Returns ms. */
double lat_pct_ms(struct bench_lat *l, double q);
double lat_max_ms(struct bench_lat *l);
void lat_free(struct bench_lat *l);

/* Monotonic clock in microseconds. */
double now_us(void);

/* A report: ops, errors, elapsed, latencies; printed as text or one JSON object. */
struct bench_report {
    const char *workload;
    long ops, errors;
    double seconds;
    struct bench_lat *lat;
    const char *first_error; /* text of the first error, or NULL */
    const char *extra;       /* extra "name": value JSON members (already formatted), or NULL */
    const char *extra_text;  /* extra text line, or NULL */
};
void report_print(const struct bench_opts *o, const struct bench_report *r);

/* Makes M clients on base sharing one TLS context (ctx_out: caller frees with
 * net_tls_ctx_free after the clients). endpoints: borrowed. Returns 0 or prints an error
 * and returns -1. */
int make_clients(const struct bench_opts *o, const char *endpoints, struct event_base *base,
                 struct net_grpc_client **out, int m, SSL_CTX **ctx_out);

/* Progress on stderr at most once a second while a run lasts over 2 s. */
void progress(const struct bench_opts *o, const char *what, long done, long errors, double start_us);
void progress_end(const struct bench_opts *o);

/* Fills buf (key_size bytes, no NUL needed) with the i-th key under the prefix. */
void make_key(const struct bench_opts *o, long i, uint8_t *buf);

int run_load(const struct bench_opts *o, const char *workload);  /* put, range, txn-put */
int run_watch(const struct bench_opts *o);
int run_failover(const struct bench_opts *o);

#endif

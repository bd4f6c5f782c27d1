/* ctl — shared state of plinthctl: global flags, the client, flag parsing, output. */
#ifndef PLINTH_CTL_H
#define PLINTH_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "net/grpc_client.h"
#include "rpc.pb-c.h"

/* Exit codes, as etcdctl's: 1 a failed operation, 2 a usage error / bad connection. */
#define CTL_EXIT_ERR 1
#define CTL_EXIT_USAGE 2

enum ctl_out { OUT_SIMPLE, OUT_JSON, OUT_TABLE };

struct ctl {
    const char *endpoints;
    const char *cacert, *cert, *key;
    int dial_timeout_ms, command_timeout_ms;
    enum ctl_out out;
    int hex;
    int parse_stop_after; /* > 0: flags after this many positional arguments are arguments */
    struct net_grpc_client *client; /* made on first use by ctl_client() */
};

/* Flag kinds for ctl_parse. */
enum flag_kind { F_BOOL, F_STR, F_INT, F_DUR, F_HEX };

struct flag_spec {
    const char *name;  /* without dashes; "w" matches -w and --w */
    enum flag_kind kind;
    void *dst;         /* int* (F_BOOL), const char** (F_STR), int64_t* (F_INT, F_HEX),
                        * int* milliseconds (F_DUR) */
};

/* Parses args (the command's words already removed) against the command's specs and the
 * global flags; positional arguments go to pos (up to maxpos; NULL-terminated count in
 * *npos). "--" ends flags. Returns 0, or prints "Error: ..." and returns CTL_EXIT_USAGE. */
int ctl_parse(struct ctl *c, int argc, char **argv, const struct flag_spec *specs, char **pos,
              int maxpos, int *npos);

/* The client for c->endpoints, made on first use; NULL after printing an error. */
struct net_grpc_client *ctl_client(struct ctl *c);
/* A client for one endpoint URL (borrowed) with c's TLS files; NULL after printing. */
struct net_grpc_client *ctl_client_for(struct ctl *c, const char *url);

/* Unary call with the command timeout; prints "Error: <message>" on failure and returns
 * its exit code (0 on success, *resp then owned by the caller). */
int ctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp);

/* Prints "Error: <fmt>" on stderr; returns CTL_EXIT_ERR. */
int ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set by SIGINT/SIGTERM while a long command (watch, lock, elect, keep-alive) runs. */
extern volatile int ctl_interrupted;
void ctl_catch_signals(void);

/* --- output (print.c) --- */
/* One protobuf message as JSON in etcdctl's shape (proto field names, zero values left
 * out, bytes base64, 64-bit integers as numbers), followed by a newline. */
void print_json(const ProtobufCMessage *m);
void print_json_inline(const ProtobufCMessage *m); /* the same without the newline */
void print_kv(const struct ctl *c, const Mvccpb__KeyValue *kv, int value_only, int keys_only);
void print_range(const struct ctl *c, const Etcdserverpb__RangeResponse *r, int value_only,
                 int keys_only);
void print_txn(const struct ctl *c, const Etcdserverpb__TxnResponse *r);
/* A table with ncols columns; cells row-major (nrows rows after the header). */
void print_table(const char *const *hdr, int ncols, char **cells, int nrows);
/* "1.2 MB" style size as etcdctl prints it. */
void human_size(int64_t n, char *buf, size_t len);

/* --- commands --- */
int cmd_put(struct ctl *c, int argc, char **argv);
int cmd_get(struct ctl *c, int argc, char **argv);
int cmd_del(struct ctl *c, int argc, char **argv);
int cmd_txn(struct ctl *c, int argc, char **argv);
int cmd_compaction(struct ctl *c, int argc, char **argv);
int cmd_watch(struct ctl *c, int argc, char **argv);
int cmd_lease(struct ctl *c, const char *sub, int argc, char **argv);
int cmd_member(struct ctl *c, const char *sub, int argc, char **argv);
int cmd_endpoint(struct ctl *c, const char *sub, int argc, char **argv);
int cmd_snapshot(struct ctl *c, const char *sub, int argc, char **argv);
int cmd_elect(struct ctl *c, int argc, char **argv);
int cmd_alarm(struct ctl *c, const char *sub, int argc, char **argv);
int cmd_move_leader(struct ctl *c, int argc, char **argv);
int cmd_defrag(struct ctl *c, int argc, char **argv);
int member_update(struct ctl *c, char **pos, int np, const char *peer_urls);
int cmd_lock(struct ctl *c, int argc, char **argv);

/* --- helpers shared by the commands --- */
/* key + 1 at the last byte that can grow (etcd's prefix end); "\0" when none. Writes into
 * buf (len bytes) and returns the length. */
size_t prefix_end(const uint8_t *key, size_t klen, uint8_t *buf, size_t len);
/* Opens a watch stream on c's client for [key, end) from rev (0 = now); returns the
 * stream or NULL after printing an error. */
struct net_grpc_stream *watch_open(struct ctl *c, const uint8_t *key, size_t klen,
                                   const uint8_t *end, size_t elen, int64_t rev, int prev_kv);

#endif

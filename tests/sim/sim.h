/* sim.h — shared declarations of the deterministic Raft simulation. */
#ifndef PLINTH_SIM_H
#define PLINTH_SIM_H

#include "raft/raft.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_MAX_NODES 9

/* A persisted entry (the node's "disk"). */
struct sim_entry {
    raft_term_t term;
    raft_index_t index;
    enum raft_entry_type type;
    unsigned char *data;
    size_t len;
};

/* The state machine: a hash chain over applied normal entries. */
struct sim_sm {
    raft_index_t index;
    uint64_t hash;
};

struct sim_node {
    raft_id_t id;
    bool exists;    /* started at least once */
    bool persisted; /* wrote its first ready batch: restarts restore from disk */
    bool up;
    int incarnation;
    struct raft *r;
    /* disk */
    struct raft_hard_state hs;
    raft_index_t log_start;
    raft_term_t log_start_term;
    struct sim_entry *log;
    size_t n_log, cap_log;
    struct raft_conf_state conf;
    struct sim_sm sm; /* applied state, durable with the batch */
    /* volatile */
    bool has_pending_snap;
    struct sim_sm pending_snap;
    int tick_phase;
    uint64_t crash_at; /* a scheduled crash (0: none) */
};

/* checker (check.c) */
struct checker;
struct checker *check_new(void);
void check_free(struct checker *c);
void check_reset(struct checker *c);
/* Each returns 0, or prints what broke to stderr and returns -1. */
int check_new_entry(struct checker *c, raft_id_t node, const struct raft_entry *e,
                    raft_term_t prev_term);
int check_applied(struct checker *c, raft_id_t node, const struct raft_entry *e,
                  raft_term_t node_term);
int check_leader(struct checker *c, raft_id_t node, raft_term_t term);
int check_leader_complete(struct checker *c, const struct raft *r);
int check_read(struct checker *c, raft_id_t node, raft_index_t read_index,
               raft_index_t required);
raft_index_t check_max_committed(const struct checker *c);
uint64_t check_hash(const void *data, size_t len, uint64_t h);

#endif

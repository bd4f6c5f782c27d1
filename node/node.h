/* node — one plinth member: the Raft core, the LMDB store and the network wired into one
 * libevent loop (DESIGN.md "The server's loop"), serving etcd's v3 gRPC API. */
#ifndef PLINTH_NODE_H
#define PLINTH_NODE_H

#include <stddef.h>

#include <event2/event.h>

#include "node/config.h"

struct node;

/* Opens (or creates) the member's store in cfg->data_dir, builds TLS contexts, the Raft
 * core, the peer transport, the gRPC server and the metrics server, and starts listening.
 * cfg is copied; base is borrowed and must outlive the node (the caller runs it).
 * Returns 0 and *out, or -1 with a one-line reason in err ("open data dir x: ..."). */
int node_start(const struct node_config *cfg, struct event_base *base, struct node **out,
               char *err, size_t errlen);

/* Begins a graceful stop: a leader first hands leadership to the most up-to-date voter
 * (bounded by one election timeout), then the node stops serving and calls done(ud) from
 * the loop. Calling it twice is harmless. */
void node_stop(struct node *n, void (*done)(void *ud), void *ud);

/* Frees everything (closes listeners and the store). Not from inside a node callback. */
void node_free(struct node *n);

#endif

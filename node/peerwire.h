/* peerwire — encoding of Raft messages and plinth's other peer frames (proto/raftpb.proto)
 * to and from the bytes the peer transport carries. */
#ifndef PLINTH_NODE_PEERWIRE_H
#define PLINTH_NODE_PEERWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "raftpb.pb-c.h"

/* Fills a protobuf Message from m. The result points into m and into one scratch block
 * allocated here (*scratch; free() it after packing). Returns 0 or -1 (no memory). */
int peerwire_msg_from_raft(const struct raft_msg *m, Plinthraftpb__Message *out, void **scratch);

/* Encodes m as a PeerFrame into a malloc'd buffer (*out, *len); caller frees.
 * Returns 0 or -1 (no memory). */
int peerwire_encode_raft(const struct raft_msg *m, uint8_t **out, size_t *len);

/* A decoded raft message with its storage (the unpacked protobuf). */
struct peerwire_raft {
    struct raft_msg msg;
    struct raft_entry *entries;
    struct raft_snapshot_meta snap;
};

/* Builds pr->msg from a protobuf Message; pointers refer into pm (which must outlive the
 * use) and into pr->entries (free with peerwire_raft_release). Returns 0 or -1. */
int peerwire_msg_to_raft(const Plinthraftpb__Message *pm, struct peerwire_raft *pr);
void peerwire_raft_release(struct peerwire_raft *pr);

/* Packs any PeerFrame into a malloc'd buffer. Returns 0 or -1. */
int peerwire_pack(const Plinthraftpb__PeerFrame *f, uint8_t **out, size_t *len);

#endif

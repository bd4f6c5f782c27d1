/* peer_frame — the peer transport's wire format: frame headers and the hello frame.
 * Private to net/ (peer.c and the fuzz target). */
#ifndef PLINTH_NET_PEER_FRAME_H
#define PLINTH_NET_PEER_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* [1 byte type][4 bytes big-endian payload length][payload] */
#define PEER_FRAME_HDR 5

enum peer_frame_type {
    PEER_FRAME_HELLO = 1,   /* first frame each way: struct peer_hello */
    PEER_FRAME_MSG = 2,     /* opaque bytes for on_message */
};

/* Hello payload: "PLNP", version, cluster id, sender id, expected receiver id (0: any),
 * integers big-endian. */
#define PEER_HELLO_MAGIC "PLNP"
#define PEER_HELLO_VERSION 1
#define PEER_HELLO_LEN 29

struct peer_hello {
    uint8_t version;
    uint64_t cluster_id;
    uint64_t sender_id;
    uint64_t target_id;
};

/* A decoded frame; payload points into the caller's buffer. */
struct peer_frame {
    uint8_t type;
    uint32_t len;
    const uint8_t *payload;
    size_t total;           /* header + payload: bytes the frame occupies */
};

enum peer_decode {
    PEER_DECODE_ERR = -1,   /* unknown type, payload over max, or a hello of the wrong size */
    PEER_DECODE_MORE = 0,   /* not enough bytes yet (the header, if present, is valid) */
    PEER_DECODE_OK = 1,     /* *f holds a whole frame */
};

/* Decodes the frame at the start of buf (len bytes): the header is checked as soon as its
 * 5 bytes are there, so an oversized frame is refused before its payload is buffered.
 * max is the largest payload accepted. */
int peer_frame_decode(const uint8_t *buf, size_t len, size_t max, struct peer_frame *f);

/* Writes a frame header for a payload of len bytes. */
void peer_frame_header(uint8_t out[PEER_FRAME_HDR], uint8_t type, uint32_t len);

/* Encodes a hello payload (PEER_HELLO_LEN bytes). */
void peer_hello_encode(const struct peer_hello *h, uint8_t out[PEER_HELLO_LEN]);

/* Decodes a hello payload; returns 0, or -1 for a bad size, magic or version. */
int peer_hello_decode(const uint8_t *p, size_t len, struct peer_hello *h);

#endif

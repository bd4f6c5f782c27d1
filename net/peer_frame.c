/* peer_frame — encoding and decoding of the peer transport's frames and hello. */
#include <string.h>

#include "net/peer_frame.h"

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

int peer_frame_decode(const uint8_t *buf, size_t len, size_t max, struct peer_frame *f)
{
    if (len < PEER_FRAME_HDR)
        return PEER_DECODE_MORE;
    f->type = buf[0];
    f->len = get32(buf + 1);
    switch (f->type) {
    case PEER_FRAME_HELLO:
        if (f->len != PEER_HELLO_LEN)
            return PEER_DECODE_ERR;
        break;
    case PEER_FRAME_MSG:
        if (f->len > max)
            return PEER_DECODE_ERR;
        break;
    default:
        return PEER_DECODE_ERR;
    }
    f->total = PEER_FRAME_HDR + (size_t)f->len;
    if (len < f->total)
        return PEER_DECODE_MORE;
    f->payload = buf + PEER_FRAME_HDR;
    return PEER_DECODE_OK;
}

void peer_frame_header(uint8_t out[PEER_FRAME_HDR], uint8_t type, uint32_t len)
{
    out[0] = type;
    put32(out + 1, len);
}

void peer_hello_encode(const struct peer_hello *h, uint8_t out[PEER_HELLO_LEN])
{
    memcpy(out, PEER_HELLO_MAGIC, 4);
    out[4] = h->version;
    put64(out + 5, h->cluster_id);
    put64(out + 13, h->sender_id);
    put64(out + 21, h->target_id);
}

int peer_hello_decode(const uint8_t *p, size_t len, struct peer_hello *h)
{
    if (len != PEER_HELLO_LEN || memcmp(p, PEER_HELLO_MAGIC, 4) != 0 ||
        p[4] != PEER_HELLO_VERSION)
        return -1;
    h->version = p[4];
    h->cluster_id = get64(p + 5);
    h->sender_id = get64(p + 13);
    h->target_id = get64(p + 21);
    return 0;
}

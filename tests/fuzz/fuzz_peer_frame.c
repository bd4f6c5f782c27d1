/* fuzz_peer_frame — libFuzzer over the peer transport's frame decoder: any byte stream is
 * cut into frames (or refused) without reading past the input, and every frame it
 * accepts re-encodes to the same bytes. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "net/peer_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the first byte picks the payload limit, as max_frame would */
    size_t max = size ? (size_t)data[0] * 7 : 0;
    size_t off = size ? 1 : 0;
    while (off < size) {
        struct peer_frame f;
        int rv = peer_frame_decode(data + off, size - off, max, &f);
        if (rv != PEER_DECODE_OK)
            break;
        assert(f.total == PEER_FRAME_HDR + (size_t)f.len);
        assert(f.total <= size - off);
        assert(f.type == PEER_FRAME_HELLO || f.type == PEER_FRAME_MSG);
        assert(f.type == PEER_FRAME_HELLO ? f.len == PEER_HELLO_LEN : f.len <= max);
        uint8_t hdr[PEER_FRAME_HDR];
        peer_frame_header(hdr, f.type, f.len);
        assert(memcmp(hdr, data + off, PEER_FRAME_HDR) == 0);
        if (f.type == PEER_FRAME_HELLO) {
            struct peer_hello h;
            if (peer_hello_decode(f.payload, f.len, &h) == 0) {
                uint8_t again[PEER_HELLO_LEN];
                peer_hello_encode(&h, again);
                assert(memcmp(again, f.payload, PEER_HELLO_LEN) == 0);
            }
        }
        /* touch every payload byte so ASan sees any overread */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < f.len; i++)
            sum ^= f.payload[i];
        (void)sum;
        off += f.total;
    }
    return 0;
}

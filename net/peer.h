/* peer — plinth's Raft peer transport: mutually authenticated TLS connections between
 * members carrying length-prefixed frames of opaque bytes, with bounded queues,
 * reconnect with backoff and a prompt notice when a peer's connection is lost. */
#ifndef PLINTH_NET_PEER_H
#define PLINTH_NET_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "net/net.h"

/*
 * Model
 * -----
 * Each member listens on its peer URL and dials every other member it was told about.
 * The dialed (outbound) connection to peer P carries everything this member sends to P;
 * the connection P dialed to us (inbound) carries what P sends. So a pair of members
 * shares two TCP connections, one per direction, and Raft messages never wait for a
 * reply on the same connection.
 *
 * A connection opens with a hello frame each way naming the cluster id and the sender's
 * member id; a hello with another cluster id (or, to the dialer, from another member id
 * than the one it dialed) closes the connection. Messages from members not added here
 * are still delivered (a member joining the cluster dials before everyone has applied
 * its addition); the certificate is the gate. With TLS, both sides
 * must present a certificate signed by the trusted CA (the server context must require
 * client certificates: net_tls_server_opts.client_cert_auth = true), and the dialer
 * checks the acceptor's subjectAltName against the host of the peer URL.
 *
 * Frames: [1 byte type][4 bytes big-endian length][payload]; payloads up to
 * opts.max_frame bytes (16 MiB default), so snapshot chunks fit. The payload is opaque:
 * the node layer encodes Raft messages, the transport only moves bytes, in order, per
 * direction. A frame is delivered whole or not at all.
 *
 * Sending never blocks: net_peer_send copies the bytes into the peer's outgoing queue;
 * a frame is written to the socket at once unless another to the same peer was within
 * the last 200 us; such bursts are written in one batch per loop turn. A full queue (or
 * a peer that is not connected for long) drops new frames and counts them: Raft
 * retransmits.
 *
 * All callbacks run from the event loop; the transport must not be freed from inside
 * them (set a flag and free it after the loop turn). Not thread-safe.
 * net_peer_transport_new sets SIGPIPE to SIG_IGN if it is still at SIG_DFL.
 */

/* Bytes received from peer `from`; buf (len bytes) is borrowed for the callback only. */
typedef void (*net_peer_message_cb)(void *ud, uint64_t from, const uint8_t *buf, size_t len);

/* A connection to or from `peer` that had completed its hello closed (EOF, reset,
 * protocol error, TLS failure, removal, or the peer's id changed its URL). Fires once
 * per lost connection, so a single crash of a peer usually reports it twice (both
 * directions); the outbound side then reconnects on its own with backoff. */
typedef void (*net_peer_down_cb)(void *ud, uint64_t peer);

struct net_peer_opts {
    struct event_base *base;   /* required, borrowed, must outlive the transport */
    /* TLS contexts, borrowed (must outlive the transport). server_ctx serves https://
     * listen URLs and must require client certificates; client_ctx dials https:// peers
     * and must carry this member's certificate. NULL only for http:// URLs (tests). */
    SSL_CTX *server_ctx;
    SSL_CTX *client_ctx;
    uint64_t self_id;          /* this member's id, non-zero */
    uint64_t cluster_id;       /* both sides must agree; 0 is a valid value */
    net_peer_message_cb on_message;  /* required */
    net_peer_down_cb on_peer_down;   /* optional */
    void *ud;
    size_t max_frame;          /* largest payload sent or accepted; 0 means 16 MiB */
    size_t queue_max_bytes;    /* per-peer outgoing queue bound; 0 means 64 MiB */
    size_t queue_max_frames;   /* per-peer outgoing queue bound; 0 means 4096 */
    int backoff_min_ms;        /* first redial delay after a failure; 0 means 50 */
    int backoff_max_ms;        /* redial delay cap (doubles each failure); 0 means 1000 */
    int dial_timeout_ms;       /* TCP connect + TLS + hello budget; 0 means 2000 */
    /* Drop the queue of a peer whose connection has been down this long, so stale
     * messages are not sent late in a burst; 0 means 2000, < 0 never. */
    int stale_queue_ms;
    /* Optional: one line of text per connection event worth logging, with ud: a failed
     * dial or handshake ("peer: dial 8211f1d0f64f3269 at https://127.0.0.1:2380: tls:
     * certificate verify failed: ..."; repeated failures with the same text are logged
     * once), a refused inbound connection ("peer: inbound from 127.0.0.1:53122: hello:
     * cluster 0000000000000007, ours 000000000000002a"), a lost connection, and a
     * reconnect after failures. text is borrowed for the call. */
    void (*log)(void *ud, const char *text);
};

struct net_peer_transport;

/* Per-peer counters (since the peer was added). */
struct net_peer_stats {
    int connected;             /* 1 when the outbound connection has completed its hello */
    int inbound;               /* number of inbound connections from this peer with hello */
    uint64_t sent_frames;      /* frames fully handed to the socket */
    uint64_t sent_bytes;
    uint64_t recv_frames;      /* frames delivered to on_message from this peer */
    uint64_t recv_bytes;
    uint64_t dropped_frames;   /* refused by a full queue, or discarded while down */
    uint64_t dials;            /* connection attempts */
    size_t queued_frames;      /* currently waiting in the queue */
    size_t queued_bytes;       /* queued payload bytes plus bytes handed to the
                                * connection but not yet written to the socket */
};

/* Makes a transport (no sockets yet). Returns 0 and *out, or NET_EINVAL (no base, no
 * on_message, self_id 0) / NET_ENOMEM. opts is copied. */
int net_peer_transport_new(const struct net_peer_opts *opts, struct net_peer_transport **out);

/* Closes every connection and listener and frees the transport; queued frames are
 * dropped and no callback runs. NULL is ignored. Not from inside a callback. */
void net_peer_transport_free(struct net_peer_transport *t);

/* Listens on url ("https://127.0.0.1:2380", or "http://..." for tests without TLS;
 * port 0 picks a free port, see net_peer_listen_port). May be called more than once for
 * several addresses. Returns 0, NET_EINVAL (malformed URL, https:// without server_ctx),
 * NET_EADDRINUSE or NET_ESYS, with text in err (may be NULL; errlen bytes):
 * "peer: listen 127.0.0.1:2380: address already in use". */
int net_peer_listen(struct net_peer_transport *t, const char *url, char *err, size_t errlen);

/* The port the most recent successful net_peer_listen bound (useful with port 0), or 0. */
int net_peer_listen_port(const struct net_peer_transport *t);

/* Adds peer `id` reachable at url (copied), or updates its URL: a changed URL closes the
 * old outbound connection (on_peer_down fires if it was up) and redials. The dial starts
 * at once. Returns 0, NET_EINVAL (id 0 or self, bad URL, https:// without client_ctx)
 * or NET_ENOMEM. */
int net_peer_add(struct net_peer_transport *t, uint64_t id, const char *url);

/* Forgets peer id: closes its connections (on_peer_down fires for those that were up)
 * and drops its queue. Returns 0 or NET_ENOTFOUND. */
int net_peer_remove(struct net_peer_transport *t, uint64_t id);

/* Queues len bytes (copied) for peer `to`. Returns 0 when queued, NET_ENOTFOUND for an
 * unknown peer, NET_EINVAL when len is over max_frame, NET_EFULL when the queue is at
 * its bound, NET_EUNAVAIL when the peer has been unreachable for stale_queue_ms (its
 * queue is emptied), NET_ENOMEM. Frames refused with EFULL/EUNAVAIL are counted in
 * dropped_frames. A 0 return does not mean delivery: Raft treats the network as lossy. */
int net_peer_send(struct net_peer_transport *t, uint64_t to, const uint8_t *buf, size_t len);

/* Writes every connected peer's queued frames to its socket now, instead of at the loop's
 * next turn. Call it after sending a batch that the caller is about to block behind (e.g.
 * the appends a leader sends before its own fsync). net_peer_send already writes a
 * frame at once unless it follows another within 200 us; this covers those. Never blocks:
 * what the socket does not take stays buffered. Not from inside a transport callback of
 * the same connection. */
void net_peer_flush(struct net_peer_transport *t);

/* True (1) when the outbound connection to `id` has completed its hello. */
int net_peer_connected(const struct net_peer_transport *t, uint64_t id);

/* Copies the counters of peer id into *out. Returns 0 or NET_ENOTFOUND. */
int net_peer_stats(const struct net_peer_transport *t, uint64_t id, struct net_peer_stats *out);

#endif

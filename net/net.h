/* net — error codes shared by plinth's network layer (TLS, gRPC server and client, peers). */
#ifndef PLINTH_NET_H
#define PLINTH_NET_H

/* Every net_ function that can fail returns 0 or one of these (positive) codes.
 * Functions that can say more also fill a caller-provided error buffer with text
 * that reads like a path: "tls: key file k.pem: does not match certificate c.pem". */
enum net_err {
    NET_OK = 0,
    NET_ENOMEM,      /* allocation failed */
    NET_EINVAL,      /* bad argument (malformed URL, option out of range, wrong call state) */
    NET_ENOENT,      /* a named file does not exist or cannot be read */
    NET_ETLS,        /* OpenSSL refused: bad certificate/key, handshake or verification failure */
    NET_EADDRINUSE,  /* listen: the address is already in use */
    NET_ESYS,        /* another system call failed (socket, bind, connect, ...) */
    NET_ECLOSED,     /* the connection or stream is closed / finished */
    NET_ETIMEDOUT,   /* a deadline passed */
    NET_EPROTO,      /* the peer broke HTTP/2, gRPC or peer-frame framing */
    NET_EFULL,       /* a bounded queue is full (back-pressure; try again later) */
    NET_ENOTFOUND,   /* lookup failed (unknown method, no such peer) */
    NET_EUNAVAIL,    /* no endpoint or peer reachable */
    NET__ECOUNT
};

/* Static text for a code ("net: address in use"); never NULL. */
const char *net_strerror(int err);

#endif

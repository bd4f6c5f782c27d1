/* net — text for the network layer's error codes. */
#include "net/net.h"

static const char *const messages[NET__ECOUNT] = {
    [NET_OK] = "net: ok",
    [NET_ENOMEM] = "net: out of memory",
    [NET_EINVAL] = "net: invalid argument",
    [NET_ENOENT] = "net: file missing or unreadable",
    [NET_ETLS] = "net: TLS error",
    [NET_EADDRINUSE] = "net: address in use",
    [NET_ESYS] = "net: system call failed",
    [NET_ECLOSED] = "net: closed",
    [NET_ETIMEDOUT] = "net: timed out",
    [NET_EPROTO] = "net: protocol error",
    [NET_EFULL] = "net: queue full",
    [NET_ENOTFOUND] = "net: not found",
    [NET_EUNAVAIL] = "net: unavailable",
};

const char *net_strerror(int err)
{
    if (err < 0 || err >= NET__ECOUNT || !messages[err])
        return "net: unknown error";
    return messages[err];
}

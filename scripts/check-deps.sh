#!/bin/sh
# Dependencies point one way: cmd -> sched -> node -> net -> kv -> raft.
# Fails on an include that crosses a module boundary the wrong way.
rc=0
check() { # dir forbidden-pattern reason
    if grep -nE "$2" "$1"/*.[ch] 2>/dev/null; then echo "check-deps: $1/ $3" >&2; rc=1; fi
}
check raft '#include *[<"](lmdb|openssl|event2|nghttp2|protobuf-c|jansson|yaml|sys/socket|time|pthread)|#include *"(kv|net|node|sched|cmd)/' "must include libc and raft/ only"
check kv '#include *[<"](openssl|event2|nghttp2|sys/socket)|#include *"(net|node|sched|cmd)/' "must not reach the network, node or workload layers"
check net '#include *"(kv|node|sched|cmd|raft)/' "knows framing, not meaning"
check sched '#include *"(kv|node|raft|cmd)/' "reaches the store only through the gRPC client"
[ $rc = 0 ] && echo "check-deps: ok"
exit $rc

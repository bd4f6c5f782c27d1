#!/bin/bash
# test_badinput — a TLS member refuses malformed protobuf, oversized requests, oversized
# transactions, untrusted peers and certificate-less clients with clear errors, and keeps
# serving after each.
#
#   bash tests/cluster/test_badinput.sh          (PLINTH_BIN=/usr/bin/etcd runs it on etcd)
set -u
CL_HERE=$(dirname "$0"); [ -f "$CL_HERE/lib.sh" ] || CL_HERE=$CL_HERE/..   # also from wip/
. "$CL_HERE/lib.sh"

MAXREQ=65536
CL_EXTRA_FLAGS="--max-request-bytes $MAXREQ"
cl_init badinput 1 0 || { echo "# plinth-result: 0 passed, 1 failed"; exit 1; }
C=$CL_DIR/certs
[ -x "$PLINTH_BIN" ] || { cl_fail "server $PLINTH_BIN exists"; cl_finish; exit 1; }
command -v curl >/dev/null && command -v openssl >/dev/null ||
    { cl_fail "curl and openssl are installed"; cl_finish; exit 1; }
# etcd (grpc-go) answers some malformed input with INTERNAL where plinth's contract is
# INVALID_ARGUMENT; the checks below say which.
IS_ETCD=0; case $(basename "$PLINTH_BIN") in etcd*) IS_ETCD=1 ;; esac

cl_start_all
cl_check "the member starts and elects itself" eval 'L=$(cl_wait_leader 20)'

N=0
serves() { # a fresh put and a linearizable get through etcdctl
    N=$((N + 1))
    cl_ctl 1 put "bad/serves/$N" "v$N" >/dev/null 2>&1 &&
        [ "$(cl_get 1 "bad/serves/$N" 2>/dev/null)" = "v$N" ]
}
cl_check "it serves put and get" serves

grpc() { cl_grpc 1 "$@"; }
frame() { cl_frame "$@"; }
code_is() { # WANT_PLINTH WANT_ETCD
    if [ $IS_ETCD = 1 ]; then [ "$G_STATUS" = "$2" ]; else [ "$G_STATUS" = "$1" ]; fi
}

# ---- malformed protobuf ------------------------------------------------------------------
frame "$CL_DIR/good.bin" '\x0a\x08bad/good\x12\x02ok'
grpc /etcdserverpb.KV/Put "$CL_DIR/good.bin"
cl_check "a well-formed Put over raw h2 succeeds (grpc-status 0)" test "$G_STATUS" = 0

frame "$CL_DIR/garbage.bin" '\xff\xff\xff\xff\xff'
grpc /etcdserverpb.KV/Put "$CL_DIR/garbage.bin"
cl_check "garbage protobuf is refused with INVALID_ARGUMENT (etcd: INTERNAL) [${G_STATUS}]" code_is 3 13
cl_check "after garbage protobuf the member serves" serves

frame "$CL_DIR/overlen.bin" '\x0a\xff\xff\xff\xff\x0f'
grpc /etcdserverpb.KV/Put "$CL_DIR/overlen.bin"
cl_check "a field longer than its message is refused with INVALID_ARGUMENT (etcd: INTERNAL) [${G_STATUS}]" code_is 3 13
cl_check "after a field overrunning its message the member serves" serves

frame "$CL_DIR/wiretype.bin" '\x0f\x01\x02'
grpc /etcdserverpb.KV/Range "$CL_DIR/wiretype.bin"
cl_check "an invalid wire type is refused with INVALID_ARGUMENT (etcd: INTERNAL) [${G_STATUS}]" code_is 3 13

printf '\x00\x00\x00\x00\x64\x0a\x01' >"$CL_DIR/short.bin"
grpc /etcdserverpb.KV/Put "$CL_DIR/short.bin"
cl_check "a frame shorter than its length prefix fails, with a status [${G_STATUS}]" \
    eval '[ -n "$G_STATUS" ] && [ "$G_STATUS" != 0 ]'
cl_check "after a truncated frame the member serves" serves

printf '\x01\x00\x00\x00\x03\x0a\x01a' >"$CL_DIR/compressed.bin"
grpc /etcdserverpb.KV/Put "$CL_DIR/compressed.bin"
cl_check "a compressed message without an encoding is refused [${G_STATUS}]" \
    eval '[ -n "$G_STATUS" ] && [ "$G_STATUS" != 0 ]'

grpc /etcdserverpb.KV/NoSuchMethod "$CL_DIR/good.bin"
cl_check "an unknown method answers UNIMPLEMENTED [${G_STATUS}]" test "$G_STATUS" = 12
cl_check "after the unknown method the member serves" serves

# ---- oversized requests ------------------------------------------------------------------
# etcd answers a request between --max-request-bytes and that + 512 KiB with INVALID_ARGUMENT
# "etcdserver: request is too large" (clients match on the text), larger ones with gRPC's
# RESOURCE_EXHAUSTED "grpc: received message larger than max"; plinth does the same.
varint() { # N -> printf escapes of N as a protobuf varint
    local v=$1 out=""
    while [ "$v" -ge 128 ]; do out="$out\\x$(printf %02x $(( (v & 127) | 128 )))"; v=$((v >> 7)); done
    echo "$out\\x$(printf %02x "$v")"
}
n=$((MAXREQ + 4096))
frame "$CL_DIR/big.bin" "\\x0a\\x07bad/big\\x12$(varint $n)%s" "$(head -c $n /dev/zero | tr '\0' x)"
grpc /etcdserverpb.KV/Put "$CL_DIR/big.bin"
cl_check "a Put just over --max-request-bytes: INVALID_ARGUMENT 'etcdserver: request is too large' [${G_STATUS}]" \
    eval '[ "$G_STATUS" = 3 ] && [ "$G_MESSAGE" = "etcdserver: request is too large" ]'
# Bodies far over the limit go through etcdctl (grpc-go): curl 7.88 often loses a status that
# arrives while it is still uploading.
printf '\x00\x10\x00\x00\x00\x0a\x01a' >"$CL_DIR/claims.bin"
grpc /etcdserverpb.KV/Put "$CL_DIR/claims.bin"
cl_check "a length prefix of 256 MiB is refused at once with RESOURCE_EXHAUSTED [${G_STATUS}]" test "$G_STATUS" = 8
head -c $((MAXREQ + 4096)) /dev/zero | tr '\0' x >"$CL_DIR/value"
out=$(cl_ctl 1 put bad/big-ctl <"$CL_DIR/value" 2>&1)
echo "$out" | grep '^Error' | sed 's/^/# etcdctl: /'
cl_check "etcdctl put of a value just over the limit fails with etcd's error text" \
    eval 'echo "$out" | grep -qx "Error: etcdserver: request is too large"'
head -c $((MAXREQ + 700000)) /dev/zero | tr '\0' x >"$CL_DIR/value"
out=$(cl_ctl 1 put bad/huge-ctl <"$CL_DIR/value" 2>&1)
echo "$out" | grep '^Error' | sed 's/^/# etcdctl: /'
cl_check "etcdctl put of a value far over the limit fails with RESOURCE_EXHAUSTED" \
    eval 'echo "$out" | grep -qE "^Error: rpc error: code = ResourceExhausted desc = .*(request is too large|larger than max)"'
cl_check "the oversized keys were not written" \
    eval '[ -z "$(cl_get 1 bad/big-ctl)" ] && [ -z "$(cl_get 1 bad/huge-ctl)" ] && [ -z "$(cl_get 1 bad/big)" ]'
cl_check "after oversized requests the member serves" serves

# ---- too many operations in a transaction ------------------------------------------------
txn_of() { # N: etcdctl's interactive txn with N puts on success
    local i
    echo
    for i in $(seq 1 "$1"); do echo "put bad/txn/$i v$i"; done
    echo; echo
}
out=$(txn_of 129 | cl_ctl 1 txn 2>&1)
cl_check "a txn with 129 ops is refused: too many operations" \
    eval 'echo "$out" | grep -q "Error: etcdserver: too many operations in txn request"'
cl_check "none of its puts was applied" eval '[ -z "$(cl_get 1 bad/txn/1)" ]'
out=$(txn_of 128 | cl_ctl 1 txn 2>&1)
cl_check "a txn with 128 ops is applied" eval 'echo "$out" | grep -q SUCCESS && [ "$(cl_get 1 bad/txn/128)" = v128 ]'
cl_check "after the oversized txn the member serves" serves

# ---- certificates ------------------------------------------------------------------------
mkdir -p "$CL_DIR/intruder"
"$CL_ROOT/scripts/certs.sh" "$CL_DIR/intruder" m9 >/dev/null 2>&1   # another CA entirely
tls_probe() { # PORT ARGS...: TLS handshake, then 1 s of reading; echoes s_client's output
    local port=$1; shift
    sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$C/ca.pem" "$@" 2>&1
}
refused() { echo "$1" | grep -qiE 'alert|handshake failure|errno|connection reset'; }
out=$(tls_probe "${CL_PPORT[1]}" -cert "$C/client.pem" -key "$C/client-key.pem")
cl_check "a peer with a certificate from the cluster CA completes the handshake" cl_not refused "$out"
out=$(tls_probe "${CL_PPORT[1]}" -cert "$CL_DIR/intruder/m9.pem" -key "$CL_DIR/intruder/m9-key.pem")
cl_check "a peer with an untrusted certificate is refused" refused "$out"
echo "$out" | grep -iE 'alert' | head -2 | sed 's/^/# /'
out=$(tls_probe "${CL_PPORT[1]}")
cl_check "a peer without a certificate is refused" refused "$out"
head -c 4096 /dev/urandom | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/${CL_PPORT[1]}" 2>/dev/null
cl_check "after bad peers the member serves" serves

out=$(timeout 15 "$ETCDCTL" --endpoints="$(cl_curl 1)" --cacert="$C/ca.pem" \
    --dial-timeout=2s --command-timeout=3s put bad/nocert v 2>&1)
cl_check "a client without a certificate is refused" eval '! echo "$out" | grep -q "^OK"'
out=$(timeout 15 "$ETCDCTL" --endpoints="$(cl_curl 1)" --cacert="$C/ca.pem" \
    --cert="$CL_DIR/intruder/m9.pem" --key="$CL_DIR/intruder/m9-key.pem" \
    --dial-timeout=2s --command-timeout=3s put bad/nocert v 2>&1)
cl_check "a client with an untrusted certificate is refused" eval '! echo "$out" | grep -q "^OK"'
out=$(tls_probe "${CL_CPORT[1]}")
cl_check "the client port refuses a TLS handshake without a certificate" refused "$out"
cl_check "the refused clients wrote nothing" eval '[ -z "$(cl_get 1 bad/nocert)" ]'
head -c 4096 /dev/urandom | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/${CL_CPORT[1]}" 2>/dev/null
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/${CL_CPORT[1]}" 2>/dev/null
cl_check "after bad clients the member serves" serves
cl_check "the member is still running" cl_alive 1
cl_finish

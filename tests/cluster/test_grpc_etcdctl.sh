#!/bin/bash
# test_grpc_etcdctl — the real etcdctl against plinth's gRPC server (the canned-answer test
# server in tests/tools/grpc_canned_server): h2c, TLS, client certificates, the request size
# limit, watch headers. Proves the wire without Raft or storage.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SERVER=$BUILD/tests/tools/grpc_canned_server
ETCDCTL=${ETCDCTL:-etcdctl}
export ETCDCTL_API=3

PASS=0; FAIL=0; N=0
ok()   { N=$((N + 1)); PASS=$((PASS + 1)); echo "ok $N - $1"; }
fail() { N=$((N + 1)); FAIL=$((FAIL + 1)); echo "not ok $N - $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
finish() { echo "# plinth-result: $PASS passed, $FAIL failed"; [ "$FAIL" = 0 ]; }

if ! command -v "$ETCDCTL" >/dev/null || [ ! -x "$SERVER" ]; then
    echo "# missing etcdctl or $SERVER"
    fail "etcdctl and the test server exist"
    finish; exit 1
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/plinth-etcdctl-XXXXXX")
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/scripts/certs.sh" "$DIR/certs" server client >/dev/null 2>&1 &&
    "$ROOT/scripts/certs.sh" "$DIR/rogue" client >/dev/null 2>&1 ||
    { fail "certificates"; finish; exit 1; }
C=$DIR/certs

# start_server ARGS...: starts the server with port 0 URLs; sets HTTPS_PORT / HTTP_PORT.
start_server() {
    rm -f "$DIR/ports"
    "$SERVER" --port-file "$DIR/ports" "$@" 2>"$DIR/server.log" &
    PID=$!
    for _ in $(seq 1 100); do [ -s "$DIR/ports" ] && break; sleep 0.05; done
    HTTPS_PORT=$(sed -n 1p "$DIR/ports"); HTTP_PORT=$(sed -n 2p "$DIR/ports")
    [ -n "$HTTPS_PORT" ]
}
stop_server() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""; }

ctl() { timeout 20 "$ETCDCTL" --dial-timeout=3s --command-timeout=5s "$@"; }

check "server starts (TLS with client-cert-auth + h2c)" start_server \
    --listen https://127.0.0.1:0 --listen http://127.0.0.1:0 \
    --cert "$C/server.pem" --key "$C/server-key.pem" --ca "$C/ca.pem" --client-cert-auth

H="--endpoints=http://127.0.0.1:$HTTP_PORT"
T="--endpoints=https://127.0.0.1:$HTTPS_PORT --cacert $C/ca.pem"
TC="$T --cert $C/client.pem --key $C/client-key.pem"

# h2c with prior knowledge
check "h2c: put" test "$(ctl $H put greeting hello)" = "OK"
check "h2c: get returns the value" test "$(ctl $H get greeting | tr '\n' ' ')" = "greeting hello "
check "h2c: endpoint status (odd :authority)" bash -c "timeout 20 $ETCDCTL $H endpoint status | grep -q '3.5.0'"
check "h2c: endpoint health" bash -c "timeout 20 $ETCDCTL $H endpoint health 2>&1 | grep -q 'is healthy'"
check "h2c: del" test "$(ctl $H del greeting)" = "1"
check "h2c: get after del is empty" test -z "$(ctl $H get greeting)"

# TLS with a trusted client certificate
check "tls: put with client cert" test "$(ctl $TC put k1 v1)" = "OK"
check "tls: get with client cert" test "$(ctl $TC get k1 --print-value-only)" = "v1"
check "tls: json header carries our cluster id" bash -c \
    "timeout 20 $ETCDCTL $TC get k1 -w json | grep -q '\"cluster_id\":305441741'"

# watch (hasleader header, bidi stream): stays open until killed
ctl $TC watch k1 >"$DIR/watch.out" 2>&1 &
WPID=$!
sleep 1.5
if kill -0 $WPID 2>/dev/null; then ok "tls: watch stream stays open"; kill $WPID; else
    fail "tls: watch stream stays open"; cat "$DIR/watch.out"; fi
wait $WPID 2>/dev/null

# refused clients
check "tls: untrusted client certificate refused" bash -c \
    "! timeout 20 $ETCDCTL --dial-timeout=2s --command-timeout=3s $T --cert $DIR/rogue/client.pem --key $DIR/rogue/client-key.pem get k1 >/dev/null 2>&1"
check "tls: no client certificate refused" bash -c \
    "! timeout 20 $ETCDCTL --dial-timeout=2s --command-timeout=3s $T get k1 >/dev/null 2>&1"
check "server log names the verify failure" grep -q "certificate verify failed" "$DIR/server.log"
check "tls: client that does not trust our CA fails" bash -c \
    "! timeout 20 $ETCDCTL --dial-timeout=2s --command-timeout=3s --endpoints=https://127.0.0.1:$HTTPS_PORT --cacert $DIR/rogue/ca.pem --cert $C/client.pem --key $C/client-key.pem get k1 >/dev/null 2>&1"

# request size limit (default 1.5 MiB): near it works, over it is RESOURCE_EXHAUSTED
head -c 1500000 /dev/zero | tr '\0' 'v' >"$DIR/near"
head -c 1600000 /dev/zero | tr '\0' 'v' >"$DIR/over"
check "a 1.5 MB value is accepted" test "$(ctl $H put big <"$DIR/near")" = "OK"
check "the stored value has the full length" test "$(ctl $H get big --print-value-only | head -c 2000000 | wc -c)" -ge 1500000
ctl $H put big2 <"$DIR/over" >"$DIR/over.out" 2>&1
check "a 1.6 MB value is refused as too large" grep -qi "larger than max\|ResourceExhausted\|resource exhausted" "$DIR/over.out"
check "server survives and still answers" test "$(ctl $H put after ok)" = "OK"

# grpc C-core (python3-etcd3), when installed: one multiplexed channel, stricter ALPN checks
if /usr/bin/python3 -c 'import etcd3' 2>/dev/null; then
    cat >"$DIR/py.py" <<PY
import etcd3
h = etcd3.client(host='127.0.0.1', port=$HTTP_PORT)
h.put('pk', 'pv')
assert h.get('pk')[0] == b'pv'
t = etcd3.client(host='127.0.0.1', port=$HTTPS_PORT, ca_cert='$C/ca.pem',
                 cert_cert='$C/client.pem', cert_key='$C/client-key.pem')
for i in range(50):
    t.put('k%d' % i, 'v%d' % i)
assert t.get('k49')[0] == b'v49'
try:
    list(t.members)
    raise SystemExit('MemberList should be unimplemented here')
except etcd3.exceptions.Etcd3Exception as e:
    pass
except Exception as e:
    assert 'UNIMPLEMENTED' in str(e), str(e)
print('python ok')
PY
    check "python3-etcd3 (grpc C-core) over h2c and TLS" bash -c \
        "timeout 60 /usr/bin/python3 $DIR/py.py >$DIR/py.out 2>&1; tail -5 $DIR/py.out; grep -q 'python ok' $DIR/py.out"
else
    echo "# python3-etcd3 not installed: C-core interop skipped"
fi
stop_server

# plain TLS without client-cert-auth
check "server starts (TLS only)" start_server --listen https://127.0.0.1:0 \
    --cert "$C/server.pem" --key "$C/server-key.pem"
T="--endpoints=https://127.0.0.1:$HTTPS_PORT --cacert $C/ca.pem"
check "tls: put without client cert" test "$(ctl $T put k2 v2)" = "OK"
check "tls: get without client cert" test "$(ctl $T get k2 --print-value-only)" = "v2"
check "tls by name (localhost SAN)" test "$(ctl --endpoints=https://localhost:$HTTPS_PORT --cacert $C/ca.pem get k2 --print-value-only)" = "v2"
stop_server

check "server refuses a key that does not match" bash -c \
    "! $SERVER --listen https://127.0.0.1:0 --cert $C/server.pem --key $C/client-key.pem 2>$DIR/bad.log && grep -q 'does not match' $DIR/bad.log"

finish

#!/bin/bash
# test_cli.sh — drives plinthctl against a 3-member TLS cluster made by scripts/cluster.sh
# and checks its output against etcdctl's formats: put/get/del/txn, watch (live and from a
# past revision), leases (expiry too), members, endpoints, snapshot, compaction, lock, elect,
# and error handling. SERVER_BIN selects the server (default build/bin/plinth).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd); [ -d "$ROOT/scripts" ] || ROOT=$(cd "$ROOT/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SERVER_BIN=${SERVER_BIN:-$BUILD/bin/plinth}
CTL=$BUILD/bin/plinthctl
DIR=$(mktemp -d /tmp/plinth-test-cli.XXXXXX)
pass=0 fail=0

finish() {
    "$ROOT/scripts/cluster.sh" stop "$DIR" >/dev/null 2>&1
    echo "# plinth-result: $pass passed, $fail failed"
    if [ "$fail" = 0 ]; then rm -rf "$DIR"; else echo "# data and logs kept in $DIR"; fi
}
trap finish EXIT

check() { # name, then a command that must succeed
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name"; fi
}
same() { # name expected actual
    if [ "$2" = "$3" ]; then pass=$((pass + 1)); echo "ok   $1"
    else fail=$((fail + 1)); echo "FAIL $1"; echo "  expected: $(printf '%q' "$2")"; echo "  actual:   $(printf '%q' "$3")"; fi
}

[ -x "$CTL" ] || { echo "missing $CTL (run make)"; fail=1; exit 1; }
if ! "$ROOT/scripts/cluster.sh" start 3 "$DIR" --bin "$SERVER_BIN" >"$DIR.start.log" 2>&1; then
    cat "$DIR.start.log"; rm -f "$DIR.start.log"; fail=1; exit 1
fi
rm -f "$DIR.start.log"
EPS=$(cat "$DIR/endpoints")
TLS=(--cacert="$DIR/certs/ca.pem" --cert="$DIR/certs/client.pem" --key="$DIR/certs/client-key.pem")
ctl() { "$CTL" --endpoints="$EPS" "${TLS[@]}" "$@"; }
ectl() { ETCDCTL_API=3 etcdctl --endpoints="$EPS" "${TLS[@]}" "$@"; }
NL=$'\n'

# --- key/value
same "put prints OK" "OK" "$(ctl put foo bar)"
same "get prints key and value" "foo${NL}bar" "$(ctl get foo)"
same "get of a missing key prints nothing" "" "$(ctl get nosuchkey)"
for i in 1 2 3; do ctl put "dir/k$i" "v$i" >/dev/null; done
same "get --prefix" "dir/k1${NL}v1${NL}dir/k2${NL}v2${NL}dir/k3${NL}v3" "$(ctl get dir/ --prefix)"
same "get --prefix --keys-only (empty value lines, as etcdctl)" "dir/k1${NL}${NL}dir/k2${NL}${NL}dir/k3" "$(ctl get dir/ --prefix --keys-only)"
same "get --print-value-only" "v1${NL}v2${NL}v3" "$(ctl get dir/ --prefix --print-value-only)"
same "get --limit 2" "dir/k1${NL}dir/k2" "$(ctl get dir/ --prefix --limit 2 --keys-only | grep .)"
same "get --order DESCEND --sort-by KEY" "dir/k3${NL}dir/k2${NL}dir/k1" "$(ctl get dir/ --prefix --keys-only --order DESCEND --sort-by KEY | grep .)"
same "get --count-only" "3" "$(ctl get dir/ --prefix --count-only)"
same "get --from-key" "dir/k2${NL}dir/k3${NL}foo" "$(ctl get dir/k2 --from-key --keys-only | grep .)"
same "get KEY RANGE_END" "dir/k1${NL}dir/k2" "$(ctl get dir/k1 dir/k3 --keys-only | grep .)"
json=$(ctl get foo -w json)
check "get -w json carries the header, base64 key and value, count" \
    grep -q '"header":{"cluster_id":[0-9]*,"member_id":[0-9]*,"revision":[0-9]*,"raft_term":[0-9]*}.*"key":"Zm9v".*"value":"YmFy".*"count":1' <<<"$json"
rev1=$(grep -o '"mod_revision":[0-9]*' <<<"$json" | cut -d: -f2)
ctl put foo baz >/dev/null
same "get --rev reads an older revision" "bar" "$(ctl get foo --rev "$rev1" --print-value-only)"
same "put --prev-kv prints the previous pair" "OK${NL}foo${NL}baz" "$(ctl put foo qux --prev-kv)"
same "etcdctl reads what plinthctl wrote" "foo${NL}qux" "$(ectl get foo)"
ectl put fromectl 1 >/dev/null
same "plinthctl reads what etcdctl wrote" "1" "$(ctl get fromectl --print-value-only)"
same "del --prev-kv prints count and pair" "1${NL}dir/k3${NL}v3" "$(ctl del dir/k3 --prev-kv)"
same "del --prefix prints the count" "2" "$(ctl del dir/ --prefix)"
same "put value from stdin" "OK" "$(printf 'from stdin' | ctl put stdinkey)"
same "... and it is stored" "from stdin" "$(ctl get stdinkey --print-value-only)"

# --- txn (etcdctl's format on stdin)
out=$(printf 'val("foo") = "qux"\n\nput foo won\nget foo\n\nput foo lost\n\n' | ctl txn)
same "txn success branch" "SUCCESS${NL}${NL}OK${NL}${NL}foo${NL}won" "$out"
out=$(printf 'mod("foo") < "2"\n\nput foo nope\n\ndel fromectl\n\n' | ctl txn)
same "txn failure branch" "FAILURE${NL}${NL}1" "$out"
out=$(printf 'version("nokey") = "0"\ncreate("nokey") = "0"\n\nput nokey created\n\n\n' | ctl txn -w json)
check "txn -w json reports succeeded" grep -q '"succeeded":true' <<<"$out"
check "txn rejects a malformed compare" bash -c "printf 'bogus\n\n\n' | \"$CTL\" --endpoints=$EPS ${TLS[*]} txn 2>&1 | grep -q '^Error: malformed comparison'"

# --- watch
"$CTL" --endpoints="$EPS" "${TLS[@]}" watch wk --prefix --prev-kv >"$DIR/watch.out" 2>&1 &
wpid=$!
sleep 0.7
ctl put wk1 a >/dev/null; ctl put wk1 b >/dev/null; ctl del wk1 >/dev/null
for _ in $(seq 1 30); do [ "$(grep -c . "$DIR/watch.out")" -ge 12 ] && break; sleep 0.1; done
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
same "watch --prefix --prev-kv prints PUT/DELETE events" \
    "PUT${NL}wk1${NL}a${NL}PUT${NL}wk1${NL}a${NL}wk1${NL}b${NL}DELETE${NL}wk1${NL}b${NL}wk1" "$(grep -v '^$' "$DIR/watch.out" | head -12)"
rev=$(ctl get foo -w json | grep -o '"mod_revision":[0-9]*' | cut -d: -f2)
timeout 2 "$CTL" --endpoints="$EPS" "${TLS[@]}" watch foo --rev "$rev" >"$DIR/watch2.out" 2>&1
same "watch --rev replays a past event" "PUT${NL}foo${NL}won" "$(cat "$DIR/watch2.out")"

# --- leases
lid=$(ctl lease grant 60 | awk '/granted/ { print $2 }')
check "lease grant prints a 16-digit hex ID" grep -qE '^[0-9a-f]{16}$' <<<"$lid"
ctl put leased v --lease="$lid" >/dev/null
check "lease timetolive --keys lists the key" \
    grep -qE "^lease $lid granted with TTL\(60s\), remaining\([0-9]+s\), attached keys\(\[leased\]\)$" <<<"$(ctl lease timetolive "$lid" --keys)"
check "lease keep-alive --once" grep -q "^lease $lid keepalived with TTL(60)$" <<<"$(ctl lease keep-alive --once "$lid")"
check "lease list shows it" grep -q "^$lid$" <<<"$(ctl lease list)"
same "lease revoke" "lease $lid revoked" "$(ctl lease revoke "$lid")"
same "revoking deletes the attached key" "" "$(ctl get leased)"
same "timetolive of a revoked lease" "lease $lid already expired" "$(ctl lease timetolive "$lid")"
sid=$(ctl lease grant 2 | awk '/granted/ { print $2 }')
ctl put short v --lease="$sid" >/dev/null
same "key with a 2 s lease exists" "v" "$(ctl get short --print-value-only)"
sleep 3.5
same "key is gone after the lease expires" "" "$(ctl get short)"

# --- members and endpoints
ml=$(ctl member list)
same "member list has 3 started members" "3" "$(grep -c ', started, m[123], https://127.0.0.1:[0-9]*, https://127.0.0.1:[0-9]*, false$' <<<"$ml")"
check "member list -w table" grep -q '| *ID *| *STATUS *| *NAME *| *PEER ADDRS *| *CLIENT ADDRS *| *IS LEARNER *|' <<<"$(ctl member list -w table)"
same "endpoint health --cluster: 3 healthy" "3" "$(ctl endpoint health --cluster 2>&1 | grep -c 'is healthy: successfully committed proposal: took = ')"
same "endpoint status: exactly one leader" "1" "$(ctl endpoint status | awk -F', ' '$5 == "true"' | wc -l)"
check "endpoint status -w json" grep -q '"Endpoint":"https://127.0.0.1:[0-9]*","Status":{"header"' <<<"$(ctl endpoint status -w json)"
out=$(ctl member add m4 --peer-urls=https://127.0.0.1:9 --learner)
check "member add --learner prints etcd's env lines" grep -q '^ETCD_INITIAL_CLUSTER_STATE="existing"$' <<<"$out"
newid=$(awk '/^Member/ { print $2 }' <<<"$out")
check "the learner is listed" grep -q "^$newid, unstarted, , https://127.0.0.1:9, , true$" <<<"$(ctl member list)"
check "member update" grep -q "^Member *$newid updated in cluster" <<<"$(ctl member update "$newid" --peer-urls=https://127.0.0.1:10)"
check "... changes its peer URL" grep -q "^$newid, unstarted, , https://127.0.0.1:10, , true$" <<<"$(ctl member list)"
check "member remove" grep -q "^Member *$newid removed from cluster" <<<"$(ctl member remove "$newid")"
same "back to 3 members" "3" "$(ctl member list | wc -l)"

same "alarm list is empty" "" "$(ctl alarm list)"
same "defrag answers for every endpoint" "3" "$(ctl defrag | grep -c '^Finished defragmenting etcd member\[https://127.0.0.1:[0-9]*\]$')"
st=$(ctl endpoint status)
lid=$(awk -F', ' '$5 == "true" { print $2 }' <<<"$st")
fid=$(awk -F', ' '$5 == "false" { print $2 }' <<<"$st" | head -1)
same "move-leader to a follower" "Leadership transferred from $lid to $fid" "$(ctl move-leader "$fid")"
moved() { [ "$(ctl endpoint status | awk -F', ' '$5 == "true" { print $2 }')" = "$fid" ]; }
for _ in $(seq 1 30); do moved && break; sleep 0.1; done
check "... and the follower leads" moved

# --- snapshot and compaction
one=${EPS%%,*}
out=$("$CTL" --endpoints="$one" "${TLS[@]}" snapshot save "$DIR/snap.db")
same "snapshot save" "Snapshot saved at $DIR/snap.db" "$out"
check "snapshot file is not empty" test -s "$DIR/snap.db"
check "snapshot status: hash, revision, keys, size" grep -qE '^[0-9a-f]+, [1-9][0-9]*, [1-9][0-9]*, [0-9.]+ [kMG]?B$' <<<"$(ctl snapshot status "$DIR/snap.db" 2>&1)"
check "snapshot save refuses several endpoints" bash -c "! \"$CTL\" --endpoints=$EPS ${TLS[*]} snapshot save $DIR/x.db 2>/dev/null"
cur=$(ctl get foo -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
same "compaction" "compacted revision $cur" "$(ctl compaction "$cur")"
err=$(ctl get foo --rev "$rev1" 2>&1); rc=$?
same "reading a compacted revision fails with etcd's message" "Error: etcdserver: mvcc: required revision has been compacted" "$err"
check "... and a non-zero exit" test "$rc" != 0

# --- lock and elect (etcdctl's recipes)
out=$(ctl lock mylock sh -c 'echo "held $ETCD_LOCK_KEY"')
check "lock runs a command holding the lock" grep -qE '^held mylock/[0-9a-f]+$' <<<"$out"
"$CTL" --endpoints="$EPS" "${TLS[@]}" lock L >"$DIR/lock1.out" 2>&1 &
l1=$!
sleep 0.8
timeout 10 "$CTL" --endpoints="$EPS" "${TLS[@]}" lock L sh -c 'echo second' >"$DIR/lock2.out" 2>&1 &
l2=$!
sleep 0.8
same "a second locker waits" "" "$(cat "$DIR/lock2.out")"
kill "$l1"; wait "$l1" 2>/dev/null
wait "$l2"
same "... and gets the lock once the first lets go" "second" "$(cat "$DIR/lock2.out")"
"$CTL" --endpoints="$EPS" "${TLS[@]}" elect E alpha >"$DIR/elect1.out" 2>&1 &
e1=$!
sleep 0.8
timeout 2 "$CTL" --endpoints="$EPS" "${TLS[@]}" elect -l E >"$DIR/observe.out" 2>&1
check "elect: the candidate leads" grep -qx alpha "$DIR/elect1.out"
check "elect -l observes the leader's proposal" grep -qx alpha "$DIR/observe.out"
check "etcdctl elect -l sees the same leader" bash -c "timeout 2 env ETCDCTL_API=3 etcdctl --endpoints=$EPS ${TLS[*]} elect -l E | grep -qx alpha"
kill "$e1"; wait "$e1" 2>/dev/null
same "resigning deletes the election key" "0" "$(ctl get E/ --prefix --count-only)"

# --- errors: one line, non-zero exit
err=$("$CTL" --endpoints=https://127.0.0.1:1 "${TLS[@]}" --dial-timeout=1s get x 2>&1); rc=$?
check "unreachable endpoint: non-zero exit" test "$rc" != 0
same "unreachable endpoint: one Error line" "1" "$(grep -c '^Error: ' <<<"$err")"
err=$(ctl get 2>&1); rc=$?
check "missing argument: usage error" test "$rc" = 2
err=$(ctl put a b --bogus 2>&1); rc=$?
same "unknown flag" "Error: unknown flag: --bogus (see plinthctl --help)" "$err"
err=$("$CTL" --endpoints="$EPS" get x 2>&1); rc=$?
check "TLS endpoint without the CA: refused" test "$rc" != 0

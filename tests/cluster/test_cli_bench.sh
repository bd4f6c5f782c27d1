#!/bin/bash
# test_cli_bench.sh — plinth-bench against a 3-member plinth TLS cluster: every workload
# runs to its bound, reports sane figures in text and JSON, and failover kills the leader,
# measures, and brings the member back. Small counts: this checks the tool, not the speed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SERVER_BIN=${SERVER_BIN:-$BUILD/bin/plinth}
BENCH=$BUILD/bin/plinth-bench
DIR=$(mktemp -d /tmp/plinth-test-bench.XXXXXX)
pass=0 fail=0
finish() {
    "$ROOT/scripts/cluster.sh" stop "$DIR" >/dev/null 2>&1
    echo "# plinth-result: $pass passed, $fail failed"
    if [ "$fail" = 0 ]; then rm -rf "$DIR"; else echo "# data and logs kept in $DIR"; fi
}
trap finish EXIT
check() { local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi; }
num() { grep -o "\"$2\":[-0-9.]*" <<<"$1" | head -1 | cut -d: -f2; }
gt0() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }

[ -x "$BENCH" ] || { echo "missing $BENCH"; fail=1; exit 1; }
if ! "$ROOT/scripts/cluster.sh" start 3 "$DIR" --bin "$SERVER_BIN" >"$DIR.log" 2>&1; then
    cat "$DIR.log"; rm -f "$DIR.log"; fail=1; exit 1
fi
rm -f "$DIR.log"
T=(--endpoints "$(cat "$DIR/endpoints")" --cacert "$DIR/certs/ca.pem" --cert "$DIR/certs/client.pem"
   --key "$DIR/certs/client-key.pem")

out=$("$BENCH" put "${T[@]}" --clients 8 --conns 2 --total 500 -q); rc=$?
check "put: exits 0" test "$rc" = 0
check "put: text report" grep -qE '^put: 500 ops in [0-9.]+ s, [0-9.]+ ops/s, 0 errors$' <<<"$out"
check "put: latency line" grep -qE '^put: latency ms \(500 samples\): p50 [0-9.]+  p90 [0-9.]+  p99 [0-9.]+  max [0-9.]+$' <<<"$out"
j=$("$BENCH" put "${T[@]}" --clients 4 --total 0 --duration 1 --sequential-keys --key-size 16 --val-size 100 -q -w json)
check "put --duration: bounded by time, JSON" bash -c "awk -v s=$(num "$j" seconds) 'BEGIN { exit !(s >= 0.8 && s <= 3) }'"
check "put --duration: ops and p99 in JSON" bash -c "[ $(num "$j" ops) -gt 0 ] && awk -v v=$(num "$j" p99) 'BEGIN { exit !(v > 0) }'"
check "keys were written where asked" bash -c "ETCDCTL_API=3 etcdctl --endpoints=$(cat "$DIR/endpoints") --cacert=$DIR/certs/ca.pem --cert=$DIR/certs/client.pem --key=$DIR/certs/client-key.pem get bench/0000000000 --print-value-only | grep -qx '$(printf 'abcdefghijklmnopqrstuvwxyz%.0s' 1 2 3 4 | head -c 100)'"
for mode in l s; do
    j=$("$BENCH" range "${T[@]}" --clients 4 --total 300 --consistency $mode -q -w json); rc=$?
    check "range --consistency $mode" bash -c "[ $rc = 0 ] && [ $(num "$j" ops) = 300 ] && [ $(num "$j" errors) = 0 ]"
done
j=$("$BENCH" range "${T[@]}" --clients 2 --total 50 --prefix-range -q -w json)
check "range over a prefix" bash -c "[ $(num "$j" ops) = 50 ]"
j=$("$BENCH" txn-put "${T[@]}" --clients 4 --total 200 -q -w json); rc=$?
check "txn-put: all transactions answered" bash -c "[ $rc = 0 ] && [ $(num "$j" ops) = 200 ] && [ $(num "$j" errors) = 0 ]"
check "txn-put: only the first write per client fails its compare" bash -c "[ $(num "$j" conflicts) -le 4 ]"
j=$("$BENCH" watch "${T[@]}" --watchers 50 --conns 2 --total 100 -q -w json); rc=$?
check "watch: every event delivered to all 50 watchers" bash -c "[ $rc = 0 ] && [ $(num "$j" ops) = 5000 ] && [ $(num "$j" events_missing) = 0 ]"
check "watch: latency reported" gt0 "$(num "$j" p99)$(num "$j" max)"
err=$("$BENCH" put "${T[@]}" --total 0 2>&1); rc=$?
check "an unbounded run is refused" bash -c "[ $rc = 2 ] && grep -q 'must be bounded' <<<'$err'"
err=$("$BENCH" put --endpoints https://127.0.0.1:1 --cacert "$DIR/certs/ca.pem" --total 5 --timeout-ms 1000 -q 2>&1); rc=$?
check "an unreachable endpoint fails with the reason" bash -c "[ $rc != 0 ] && grep -q 'first error: UNAVAILABLE' <<<'$err'"

old_pids=$(cat "$DIR/pids")
j=$("$BENCH" failover --cluster "$DIR" --rounds 2 --max-time 60 -q -w json); rc=$?
check "failover: 2 rounds measured" bash -c "[ $rc = 0 ] && grep -q '\"rounds\":2' <<<'$j'"
check "failover: first write and new leader times" bash -c "gt() { awk -v v=\$1 'BEGIN { exit !(v > 0 && v < 30000) }'; }; gt $(grep -o '"first_write_ms":{"median":[0-9.]*' <<<"$j" | grep -o '[0-9.]*$') && gt $(grep -o '"new_leader_ms":{"median":[0-9.]*' <<<"$j" | grep -o '[0-9.]*$')"
check "failover: killed members were restarted (new pids recorded)" bash -c "[ \"$(cat "$DIR/pids")\" != \"$old_pids\" ]"
healthy() { ETCDCTL_API=3 etcdctl --endpoints="$(cat "$DIR/endpoints")" --cacert="$DIR/certs/ca.pem" \
    --cert="$DIR/certs/client.pem" --key="$DIR/certs/client-key.pem" endpoint health >/dev/null 2>&1; }
for _ in $(seq 1 50); do healthy && break; sleep 0.2; done
check "failover: all 3 members healthy afterwards" healthy
j=$("$BENCH" failover --cluster "$DIR" --rounds 1 --stop --max-time 60 -q -w json); rc=$?
check "failover --stop: SIGSTOP round measured" bash -c "[ $rc = 0 ] && grep -q '\"signal\":\"SIGSTOP\"' <<<'$j'"
stopped=0
while read -r name pid; do grep -q '^State:.*stopped' "/proc/$pid/status" 2>/dev/null && stopped=1; done <"$DIR/pids"
check "failover --stop: the stopped member was continued" test "$stopped" = 0

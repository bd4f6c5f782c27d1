#!/bin/bash
# test_demo.sh — `make demo` in its short mode runs to the end and leaves nothing running;
# interrupted with Ctrl-C (SIGINT) half way, it also cleans up after itself.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export BUILD
OUT=$(mktemp -d /tmp/plinth-test-demo.XXXXXX)
pass=0 fail=0
check() { local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi; }
finish() {
    echo "# plinth-result: $pass passed, $fail failed"
    if [ "$fail" = 0 ]; then rm -rf "$OUT"; else echo "# output kept in $OUT"; fi
}
trap finish EXIT

# nothing of demo run DIR (its data dir) and pid PID still running
nothing_left() { # dir pid
    [ -n "$1" ] || return 1
    ! pgrep -f -- "$1" >/dev/null && ! pgrep -f -x "sleep 3600.$2" >/dev/null
}

# --- 1. the whole demo, short mode
set -m   # the demo gets its own process group, so SIGINT reaches it as from a terminal
DEMO_SHORT=1 "$ROOT/scripts/demo.sh" >"$OUT/full.out" 2>&1 &
pid=$!
wait "$pid"; rc=$?
dir=$(grep -o '/[^ ]*/plinth-demo\.[A-Za-z0-9]*' "$OUT/full.out" | head -1)
check "demo exits 0" test "$rc" = 0
check "shows puts through etcdctl" grep -q '^/demo/greeting$' "$OUT/full.out"
check "shows watch events" grep -q '\[watch\].* DELETE' "$OUT/full.out"
check "shows the lease expiring" grep -q '/demo/session is gone' "$OUT/full.out"
check "shows the store failover time" grep -qE 'store: first acknowledged write [0-9]+ ms after the leader died' "$OUT/full.out"
check "shows the scheduler failover" grep -qE 'scheduler: scheduler-[12] took over [0-9]+ ms' "$OUT/full.out"
check "the pods kept running and new ones were placed" grep -qE '5 pods Running' "$OUT/full.out"
check "says where the data and logs are" grep -q 'data and logs are in ' "$OUT/full.out"
sleep 0.5
check "nothing left running after the demo" nothing_left "$dir" "$pid"
[ "$fail" = 0 ] && rm -rf "$dir"

# --- 2. Ctrl-C half way. A shell started in the background inherits SIGINT ignored, and
# bash cannot trap a signal ignored at entry; a terminal's Ctrl-C reaches a demo that
# does not ignore it, so give the demo SIGINT's default disposition as a terminal would.
dflt=()
env --default-signal=INT true 2>/dev/null && dflt=(env --default-signal=INT)
DEMO_SHORT=1 "${dflt[@]}" "$ROOT/scripts/demo.sh" >"$OUT/int.out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q '^== 5\.' "$OUT/int.out" && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid"; rc=$?
dir=$(grep -o '/[^ ]*/plinth-demo\.[A-Za-z0-9]*' "$OUT/int.out" | head -1)
check "interrupted demo reaches the workload step first" grep -q '^== 5\.' "$OUT/int.out"
check "interrupted demo exits 130" test "$rc" = 130
check "interrupted demo cleans up" grep -q 'cleaning up' "$OUT/int.out"
sleep 0.5
check "nothing left running after Ctrl-C" nothing_left "$dir" "$pid"
[ "$fail" = 0 ] && rm -rf "$dir"
[ "$fail" = 0 ]

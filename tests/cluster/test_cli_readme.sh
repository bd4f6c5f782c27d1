#!/bin/bash
# test_cli_readme.sh — the etcdctl example of README.md works as written. The example is
# the indented block between the markers <!-- example --> and <!-- /example --> in
# README.md; until README carries them, the example proposed for it (below) is run.
# The cluster directory it names (/tmp/pc) is replaced by a fresh temporary one.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DIR=$(mktemp -d /tmp/plinth-test-readme.XXXXXX)
pass=0 fail=0
finish() {
    [ -f "$DIR/c/pids" ] && "$ROOT/scripts/cluster.sh" stop "$DIR/c" >/dev/null 2>&1
    echo "# plinth-result: $pass passed, $fail failed"
    if [ "$fail" = 0 ]; then rm -rf "$DIR"; else echo "# output kept in $DIR"; fi
}
trap finish EXIT
check() { local name=$1; shift
    if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi; }

example=$(sed -n '/<!-- example -->/,/<!-- \/example -->/p' "$ROOT/README.md" | grep '^    ' | sed 's/^    //')
if [ -z "$example" ]; then
    echo "# README.md has no <!-- example --> block yet; running the proposed example"
    example='scripts/cluster.sh start 3 /tmp/pc        # 3 plinth members with TLS on 127.0.0.1
. /tmp/pc/env                             # ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ...
etcdctl put greeting hello                # any etcd v3 client works unchanged
etcdctl get greeting
etcdctl endpoint status -w table          # who leads, raft term and index
scripts/cluster.sh stop /tmp/pc'
fi
printf '%s\n' "$example" | sed "s|/tmp/pc|$DIR/c|g" >"$DIR/example.sh"
echo "# running:"; sed 's/^/#   /' "$DIR/example.sh"
(cd "$ROOT" && PLINTH_BIN="$BUILD/bin/plinth" PATH="$BUILD/bin:$PATH" bash -e "$DIR/example.sh") >"$DIR/out" 2>&1
rc=$?
check "every command of the example succeeds" test "$rc" = 0
check "the cluster formed with TLS" grep -q '^cluster: 3 members of plinth healthy' "$DIR/out"
if grep -q 'etcdctl put greeting hello' "$DIR/example.sh"; then
    check "etcdctl put answered OK" grep -qx OK "$DIR/out"
    check "etcdctl get printed the key and value" bash -c "grep -A1 -x greeting '$DIR/out' | grep -qx hello"
fi
if grep -q 'endpoint status -w table' "$DIR/example.sh"; then
    check "endpoint status shows one leader" bash -c "[ \$(grep -c '|  *true |  *false |' '$DIR/out') = 1 ]"
fi
nothing_left() { ! pgrep -f -- "$DIR/c/" >/dev/null; }
check "the example left nothing running" nothing_left
[ "$fail" = 0 ] || cat "$DIR/out"

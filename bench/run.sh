#!/bin/bash
# run.sh — `make bench`: plinth side by side with etcd (bench/compare.sh), then the
# micro-benchmark programs bench/bench_*.c when there are any. Options go to compare.sh.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
cd "$ROOT" || exit 1
echo "bench: plinth vs etcd (bench/compare.sh $*); about 15 minutes"
bench/compare.sh "$@"
rc=$?
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $b"
    timeout 300 "$b" || rc=1
done
exit $rc

#!/bin/bash
# Runs every test suite and prints one summary line "N passed, M failed".
# Each suite prints a last line "# plinth-result: P passed, F failed"; a suite that
# exits without it (a crash, a timeout) counts as one failure.
BUILD=${BUILD:-build}
export BUILD
SEEDS=${SEEDS:-2000}
total_p=0; total_f=0; failed_suites=()
logdir=$BUILD/test-logs; mkdir -p "$logdir"

run_suite() { # name timeout cmd...
    local name=$1 to=$2; shift 2
    local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local start=$(date +%s)
    timeout -k 10 "$to" "$@" >"$log" 2>&1
    local rc=$? line p f
    line=$(grep -E '^# plinth-result: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    else
        p=0; f=0
    fi
    if [ $rc != 0 ] && [ "$f" = 0 ]; then f=1; fi
    total_p=$((total_p + p)); total_f=$((total_f + f))
    local el=$(( $(date +%s) - start ))
    if [ "$f" != 0 ]; then
        failed_suites+=("$name")
        printf 'FAIL %-40s %4d passed %3d failed %4ds (rc=%d, log %s)\n' "$name" "$p" "$f" "$el" "$rc" "$log"
        tail -n 30 "$log" | sed 's/^/    | /'
    else
        printf 'ok   %-40s %4d passed %3d failed %4ds\n' "$name" "$p" "$f" "$el"
    fi
}

for t in $(find "$BUILD/tests/unit" -type f -perm -u+x 2>/dev/null | sort); do
    run_suite "unit/${t#$BUILD/tests/unit/}" 600 "$t"
done
if [ -x "$BUILD/tests/sim/sim" ]; then
    run_suite "sim ($SEEDS seeds)" 900 "$BUILD/tests/sim/sim" --seeds "$SEEDS"
fi
if [ -z "$PLINTH_ASAN" ]; then
    for f in $(find "$BUILD/fuzz" -type f -perm -u+x -name 'fuzz_*' 2>/dev/null | sort); do
        run_suite "fuzz/$(basename "$f") (20s)" 120 tests/fuzz/run-short.sh "$f" 20
    done
fi
for t in $(ls tests/cluster/test_*.sh 2>/dev/null | sort); do
    run_suite "cluster/$(basename "$t")" 900 bash "$t"
done

echo
if [ ${#failed_suites[@]} != 0 ]; then echo "failed suites: ${failed_suites[*]}"; fi
echo "$total_p passed, $total_f failed"
[ "$total_f" = 0 ]

#!/bin/bash
# compare.sh — runs the same workloads against a 3-member TLS cluster of plinth and then of
# etcd on loopback (equal settings: heartbeat 100 ms, election 1000 ms, fsync on), several
# rounds each, and prints one table of medians: figure | plinth | etcd | ratio.
#
#   bench/compare.sh [--rounds R] [--keys K] [--only plinth|etcd] [--no-check-perf] [--out DIR]
#
# Environment: PLINTH_BIN (default build/bin/plinth), ETCD_BIN (default: etcd on PATH),
# BENCH (default build/bin/plinth-bench). Everything it starts it stops (also on Ctrl-C).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PLINTH_BIN=${PLINTH_BIN:-$ROOT/build/bin/plinth}
ETCD_BIN=${ETCD_BIN:-$(command -v etcd || echo /usr/bin/etcd)}
BENCH=${BENCH:-$ROOT/build/bin/plinth-bench}
ROUNDS=3 KEYS=200000 ONLY="" CHECK_PERF=1 OUT=""
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --keys) KEYS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-check-perf) CHECK_PERF=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$BENCH" ] || { echo "compare: $BENCH is missing (run make)" >&2; exit 1; }
OUT=${OUT:-$(mktemp -d /tmp/plinth-bench.XXXXXX)}
mkdir -p "$OUT"
CLUSTER_DIR=""
cleanup() {
    [ -n "$CLUSTER_DIR" ] && "$ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1
    CLUSTER_DIR=""
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

log() { echo "compare: $*" >&2; }

# jnum FILE KEY: first number after "KEY": in a one-line JSON report
jnum() { grep -o "\"$2\":{\{0,1\}\"\{0,1\}[a-z]*\"\{0,1\}:\{0,1\}[-0-9.]*" "$1" | head -1 | grep -o '[-0-9.]*$'; }
# median of numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A RES

run_server() { # label binary
    local label=$1 bin=$2 dir="$OUT/$1" r
    CLUSTER_DIR=$dir
    log "== $label ($bin): starting a 3-member TLS cluster in $dir"
    if ! "$ROOT/scripts/cluster.sh" start 3 "$dir" --bin "$bin" --heartbeat 100 --election 1000 \
        >"$OUT/$label-cluster.log" 2>&1; then
        cat "$OUT/$label-cluster.log" >&2
        log "$label: cluster did not start"; CLUSTER_DIR=""; return 1
    fi
    local tls=(--endpoints "$(cat "$dir/endpoints")" --cacert "$dir/certs/ca.pem"
               --cert "$dir/certs/client.pem" --key "$dir/certs/client-key.pem")
    "$bin" --version 2>/dev/null | head -1 >"$OUT/$label-version.txt"

    for r in $(seq 1 "$ROUNDS"); do
        log "$label: round $r/$ROUNDS: put, 64 clients over 8 connections, 8 s"
        "$BENCH" put "${tls[@]}" --clients 64 --conns 8 --duration 8 --key-space 100000 -q -w json \
            >"$OUT/$label-put64-$r.json" 2>>"$OUT/$label-bench.err"
        log "$label: round $r/$ROUNDS: put, 16 clients over 4 connections, 6 s"
        "$BENCH" put "${tls[@]}" --clients 16 --conns 4 --duration 6 --key-space 100000 -q -w json \
            >"$OUT/$label-put16-$r.json" 2>>"$OUT/$label-bench.err"
        log "$label: round $r/$ROUNDS: watch, 100 watchers, 1000 puts"
        "$BENCH" watch "${tls[@]}" --watchers 100 --conns 2 --total 1000 -q -w json \
            >"$OUT/$label-watch-$r.json" 2>>"$OUT/$label-bench.err"
    done
    log "$label: watch fan-out: 10000 watchers on one key over 10 streams, 200 puts"
    "$BENCH" watch "${tls[@]}" --watchers 10000 --conns 10 --total 200 --max-time 120 -q -w json \
        >"$OUT/$label-fanout.json" 2>>"$OUT/$label-bench.err"
    log "$label: failover: SIGKILL of the leader, 10 rounds"
    "$BENCH" failover --cluster "$dir" --rounds 10 --max-time 300 -q -w json \
        >"$OUT/$label-failover.json" 2>>"$OUT/$label-bench.err"
    log "$label: failover: SIGSTOP of the leader, 5 rounds"
    "$BENCH" failover --cluster "$dir" --rounds 5 --stop --max-time 200 -q -w json \
        >"$OUT/$label-failover-stop.json" 2>>"$OUT/$label-bench.err"
    if [ "$CHECK_PERF" = 1 ]; then
        local load
        for load in m l; do
            log "$label: etcdctl check perf --load=$load (60 s)"
            ETCDCTL_API=3 timeout 150 etcdctl --endpoints="$(cat "$dir/endpoints")" \
                --cacert="$dir/certs/ca.pem" --cert="$dir/certs/client.pem" \
                --key="$dir/certs/client-key.pem" check perf --load="$load" \
                >"$OUT/$label-checkperf-$load.txt" 2>&1
        done
    fi
    # memory and disk on a fresh cluster, so earlier workloads do not count
    "$ROOT/scripts/cluster.sh" stop "$dir" >/dev/null 2>&1
    dir="$OUT/$label-mem"
    CLUSTER_DIR=$dir
    if ! "$ROOT/scripts/cluster.sh" start 3 "$dir" --bin "$bin" --heartbeat 100 --election 1000 \
        >"$OUT/$label-cluster-mem.log" 2>&1; then
        log "$label: the fresh cluster for the memory figure did not start"; CLUSTER_DIR=""; return 1
    fi
    tls=(--endpoints "$(cat "$dir/endpoints")" --cacert "$dir/certs/ca.pem"
         --cert "$dir/certs/client.pem" --key "$dir/certs/client-key.pem")
    log "$label: memory: $KEYS keys of 100 bytes into a fresh cluster, then resident memory and size on disk"
    "$BENCH" put "${tls[@]}" --clients 64 --conns 8 --sequential-keys --key-size 16 \
        --val-size 100 --total "$KEYS" --max-time 900 --prefix mem/ -q -w json \
        >"$OUT/$label-load.json" 2>>"$OUT/$label-bench.err"
    sleep 2
    local rss=0 anon=0 disk=0 name pid v
    while read -r name pid; do
        v=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        [ -n "$v" ] && [ "$v" -gt "$rss" ] && rss=$v
        v=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        [ -n "$v" ] && [ "$v" -gt "$anon" ] && anon=$v
        v=$(du -sk "$dir/$name" 2>/dev/null | cut -f1)
        [ -n "$v" ] && [ "$v" -gt "$disk" ] && disk=$v
    done <"$dir/pids"
    echo "$rss" >"$OUT/$label-rss-kb.txt"
    echo "$anon" >"$OUT/$label-anon-kb.txt"
    echo "$disk" >"$OUT/$label-disk-kb.txt"
    "$ROOT/scripts/cluster.sh" stop "$dir" >/dev/null 2>&1
    CLUSTER_DIR=""

    RES[$label,put64]=$(for r in $(seq 1 "$ROUNDS"); do jnum "$OUT/$label-put64-$r.json" ops_per_sec; done | median)
    RES[$label,put16p99]=$(for r in $(seq 1 "$ROUNDS"); do jnum "$OUT/$label-put16-$r.json" p99; done | median)
    RES[$label,put16]=$(for r in $(seq 1 "$ROUNDS"); do jnum "$OUT/$label-put16-$r.json" ops_per_sec; done | median)
    RES[$label,watchp99]=$(for r in $(seq 1 "$ROUNDS"); do jnum "$OUT/$label-watch-$r.json" p99; done | median)
    RES[$label,fanoutp99]=$(jnum "$OUT/$label-fanout.json" p99)
    RES[$label,fanoutputs]=$(jnum "$OUT/$label-fanout.json" put_ops_per_sec)
    RES[$label,fanoutmiss]=$(jnum "$OUT/$label-fanout.json" events_missing)
    RES[$label,fokill]=$(jnum "$OUT/$label-failover.json" first_write_ms)
    RES[$label,fokillmax]=$(grep -o '"first_write_ms":{[^}]*}' "$OUT/$label-failover.json" | grep -o '"max":[0-9.]*' | cut -d: -f2)
    RES[$label,fokillleader]=$(jnum "$OUT/$label-failover.json" new_leader_ms)
    RES[$label,fostop]=$(jnum "$OUT/$label-failover-stop.json" first_write_ms)
    RES[$label,rss]=$(awk '{ printf "%.1f", $1 / 1024 }' "$OUT/$label-rss-kb.txt")
    RES[$label,anon]=$(awk '{ printf "%.1f", $1 / 1024 }' "$OUT/$label-anon-kb.txt")
    RES[$label,disk]=$(awk '{ printf "%.1f", $1 / 1024 }' "$OUT/$label-disk-kb.txt")
    RES[$label,loadrate]=$(jnum "$OUT/$label-load.json" ops_per_sec)
    local f
    for load in m l; do
        f="$OUT/$label-checkperf-$load.txt"
        if [ -s "$f" ]; then
            RES[$label,perf$load]="$(grep -o 'PASS\|FAIL' "$f" | tail -1)"
            RES[$label,perf${load}tp]=$(grep -o '[0-9]* writes/s' "$f" | grep -o '^[0-9]*' | head -1)
        fi
    done
}

servers=()
[ "$ONLY" != etcd ] && servers+=(plinth)
[ "$ONLY" != plinth ] && servers+=(etcd)
for s in "${servers[@]}"; do
    if [ "$s" = plinth ]; then bin=$PLINTH_BIN; else bin=$ETCD_BIN; fi
    if [ ! -x "$bin" ]; then log "$s: $bin is missing; its column stays empty"; continue; fi
    run_server "$s" "$bin" || log "$s: run failed; see $OUT"
done

val() { local v=${RES[$1,$2]:-}; echo "${v:--}"; }
ratio() { # plinth etcd
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else if (a / b < 0.01) printf "%.3f", a / b; else printf "%.2f", a / b }'
}
row() { # label key unit
    local p e; p=$(val plinth "$2"); e=$(val etcd "$2")
    printf '| %s | %s | %s | %s |\n' "$1" "$p" "$e" "$(ratio "$p" "$e")"
}
{
    echo "| figure (median of $ROUNDS rounds unless noted) | plinth | etcd | ratio |"
    echo "| --- | --- | --- | --- |"
    row "put throughput, 64 clients (ops/s)" put64
    row "put throughput, 16 clients (ops/s)" put16
    row "put p99 latency, 16 clients (ms)" put16p99
    row "watch latency p99, ack to delivery, 100 watchers (ms)" watchp99
    row "watch fan-out: 10,000 watchers, latency p99 (ms, 1 run)" fanoutp99
    row "watch fan-out: puts/s while feeding 10,000 watchers (1 run)" fanoutputs
    row "watch fan-out: events missing (1 run)" fanoutmiss
    row "failover SIGKILL leader -> first write (ms, median of 10)" fokill
    row "failover SIGKILL leader -> first write, slowest of 10 (ms)" fokillmax
    row "failover SIGKILL leader -> new leader seen (ms, median of 10)" fokillleader
    row "failover SIGSTOP leader -> first write (ms, median of 5)" fostop
    row "bulk load rate, $KEYS keys of 100 B (ops/s)" loadrate
    row "resident memory after $KEYS keys, largest member (MB)" rss
    row "  of which anonymous (heap, not mapped file pages) (MB)" anon
    row "size on disk after $KEYS keys, largest member (MB)" disk
    if [ "$CHECK_PERF" = 1 ]; then
        printf '| etcdctl check perf --load=m | %s (%s w/s) | %s (%s w/s) | |\n' \
            "$(val plinth perfm)" "$(val plinth perfmtp)" "$(val etcd perfm)" "$(val etcd perfmtp)"
        printf '| etcdctl check perf --load=l | %s (%s w/s) | %s (%s w/s) | |\n' \
            "$(val plinth perfl)" "$(val plinth perfltp)" "$(val etcd perfl)" "$(val etcd perfltp)"
    fi
} | tee "$OUT/table.md"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem/ { print $2 }') GB RAM"
for s in "${servers[@]}"; do [ -f "$OUT/$s-version.txt" ] && echo "$s: $(cat "$OUT/$s-version.txt")"; done
echo "raw results: $OUT"

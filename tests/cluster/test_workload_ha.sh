#!/bin/bash
# test_workload_ha — the workload layer across store failures: a store member dies while
# pods are being created; the whole store restarts while a standby scheduler is paused and
# the history it missed is compacted, so it must relist before it can take over; a new
# leader then schedules without double binds or overcommit.
#
# PLINTH_WORKLOAD_SERVER=/usr/bin/etcd runs the same suite against etcd (same API).
# Ends with "# plinth-result: P passed, F failed".
set -u
ROOT=$(cd "$(dirname "$0")" && while [ ! -f Makefile ] && [ "$PWD" != / ]; do cd ..; done; pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
SERVER=${PLINTH_WORKLOAD_SERVER:-$B/bin/plinth}
KUBECTL=${PLINTH_KUBECTL:-$B/bin/plinthctl}
SBIN=${PLINTH_SCHED_BIN:-$B/bin}
TTL=2

D=$(mktemp -d "${TMPDIR:-/tmp}/plinth-workload-ha.XXXXXX")
PIDS=()
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish() {
    for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    "$ROOT/scripts/cluster.sh" stop "$D" >/dev/null 2>&1
    if [ "$failed" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$D"; else echo "# logs kept in $D"; fi
    echo "# plinth-result: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit $?
}
trap finish EXIT
trap 'exit 1' INT TERM

for f in "$SERVER" "$KUBECTL" "$SBIN/plinth-scheduler" "$SBIN/plinth-controller" "$SBIN/plinth-agent"; do
    [ -x "$f" ] || { not_ok "missing program $f (build with make)"; exit 1; }
done
if ! "$ROOT/scripts/cluster.sh" start 3 "$D" --bin "$SERVER" >"$D/cluster.log" 2>&1; then
    cat "$D/cluster.log"; not_ok "store cluster of 3 members starts"; exit 1
fi
ok "store cluster of 3 members starts ($(basename "$SERVER"), TLS)"
EP=$(cat "$D/endpoints")
TLS=(--endpoints "$EP" --cacert "$D/certs/ca.pem" --cert "$D/certs/client.pem" --key "$D/certs/client-key.pem")
kube() { "$KUBECTL" kube "${TLS[@]}" "$@"; }
etcdctl_() { ETCDCTL_API=3 etcdctl --endpoints "$EP" --cacert "$D/certs/ca.pem" --cert "$D/certs/client.pem" --key "$D/certs/client-key.pem" --command-timeout=5s "$@"; }
declare -A PID_OF
start() { local name=$1; shift; "$@" "${TLS[@]}" >"$D/$name.log" 2>&1 & PID_OF[$name]=$!; PIDS+=($!); }
wait_for() { local end=$((SECONDS + $1)); shift; while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done; "$@"; }
leader_of() { etcdctl_ get --prefix "/plinth/election/$1/" --sort-by=CREATE --order=ASCEND --print-value-only 2>/dev/null | head -1; }
running() { # selector count
    local t; t=$(kube get pods -l "$1" 2>/dev/null | awk 'NR > 1')
    [ "$(echo "$t" | awk '$2 == "1/1" && $3 == "Running"' | wc -l)" -eq "$2" ] && [ "$(echo "$t" | grep -c .)" -eq "$2" ]
}

start s1 "$SBIN/plinth-scheduler" --name s1 --lease-ttl $TTL -v
start s2 "$SBIN/plinth-scheduler" --name s2 --lease-ttl $TTL -v
start c1 "$SBIN/plinth-controller" --name c1 --lease-ttl $TTL
start n1 "$SBIN/plinth-agent" --node n1 --lease-ttl 5 --cpu 4 --memory 4Gi
start n2 "$SBIN/plinth-agent" --node n2 --lease-ttl 5 --cpu 4 --memory 4Gi
leaders() { [ -n "$(leader_of scheduler)" ] && [ -n "$(leader_of controller)" ]; }
check "a scheduler and a controller lead" wait_for 15 leaders
SL=$(leader_of scheduler)
if [ "$SL" = s1 ]; then SB=s2; else SB=s1; fi
echo "# acting scheduler $SL, standby $SB"

cat >"$D/app.yaml" <<'EOF'
kind: Deployment
metadata: {name: app}
spec:
  replicas: 4
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - {name: c, image: plinth/sleep, command: [sleep, "3600"], resources: {requests: {cpu: 100m, memory: 32Mi}}}
EOF
check "apply a Deployment of 4" kube apply -f "$D/app.yaml"
check "4 replicas Running" wait_for 30 running app=app 4

# --- a store member dies while work is in flight ----------------------------------------
"$ROOT/scripts/cluster.sh" kill "$D" m1 KILL >/dev/null 2>&1
check "scale to 8 while member m1 is down" kube scale deployment/app --replicas 8
check "8 replicas Running with one store member down" wait_for 40 running app=app 8
"$ROOT/scripts/cluster.sh" restart "$D" m1 >/dev/null 2>&1
member_back() { etcdctl_ endpoint health --cluster >/dev/null 2>&1; }
check "m1 rejoins" wait_for 30 member_back

# --- the whole store restarts while the standby is paused; its history is compacted -----
kill -STOP "${PID_OF[$SB]}"
for m in m1 m2 m3; do "$ROOT/scripts/cluster.sh" kill "$D" $m KILL >/dev/null 2>&1; done
sleep 1
for m in m1 m2 m3; do "$ROOT/scripts/cluster.sh" restart "$D" $m >/dev/null 2>&1; done
check "the store comes back after a full restart" wait_for 30 member_back
check "scale to 10 after the restart" wait_for 20 kube scale deployment/app --replicas 10
check "10 replicas Running (the leaders and the agents reconnected)" wait_for 40 running app=app 10
rev=$(etcdctl_ get /registry/deployments/default/app -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
check "compact the store at revision $rev" etcdctl_ compact "$rev"
# the checker starts now: it must see everything from here on
"$KUBECTL" kube check -w "${TLS[@]}" >"$D/checker.log" 2>&1 &
CHECKER=$!; PIDS+=($CHECKER)
kill -CONT "${PID_OF[$SB]}"
relisted() { grep -q "fell behind a compaction" "$D/$SB.log"; }
check "the resumed standby relists (its watch revision was compacted)" wait_for 20 relisted

# --- the standby takes over with its relisted cache -----------------------------------
kill -KILL "${PID_OF[$SL]}"
standby_leads() { [ "$(leader_of scheduler)" = "$SB" ]; }
check "the standby takes over after the acting scheduler is killed" wait_for 15 standby_leads
check "scale to 12" kube scale deployment/app --replicas 12
check "12 replicas Running" wait_for 30 running app=app 12
by_standby() { [ "$(kube get pods -o json | grep -c "\"scheduler.plinth.io/bound-by\": \"$SB\"")" -ge 2 ]; }
check "the former standby bound the new pods" by_standby
# --- store-side fencing: a deposed leader that does not notice is refused by the store ---
# sf runs with --no-local-expiry: after a pause it acts on its stale belief that it leads,
# so only the fence compare in each write can stop it. sg has a long lease so that it
# stays the leader while paused and sf cannot legitimately win again.
kill -TERM "${PID_OF[$SB]}"   # resigns at once
start sf "$SBIN/plinth-scheduler" --name sf --lease-ttl $TTL -v --no-local-expiry
sf_leads() { [ "$(leader_of scheduler)" = sf ]; }
check "sf (no local expiry) leads" wait_for 15 sf_leads
start sg "$SBIN/plinth-scheduler" --name sg --lease-ttl 30 -v
sleep 1
kill -STOP "${PID_OF[sf]}"
sg_leads() { [ "$(leader_of scheduler)" = sg ]; }
check "sg leads once the paused sf's lease expired" wait_for 15 sg_leads
kill -STOP "${PID_OF[sg]}"
for i in 1 2; do kube run "fenced$i" --image plinth/sleep --requests cpu=10m -- sleep 3600 >/dev/null; done
sleep 0.5
kill -CONT "${PID_OF[sf]}"
sleep 2
unbound() { [ "$(kube get pods | awk '/^fenced/ && $5 == "<none>"' | wc -l)" -eq 2 ]; }
check "the deposed sf bound nothing" unbound
refused() { grep -q 'leadership lost (election key' "$D/sf.log"; }
check "the store refused sf's binds (its election key was gone)" refused
kill -CONT "${PID_OF[sg]}"
fenced_bound() { [ "$(kube get pods | awk '/^fenced/ && $5 != "<none>"' | wc -l)" -eq 2 ]; }
check "sg binds them once resumed" wait_for 15 fenced_bound

fits() { kube check; }
check "no node is over capacity" fits
kill -TERM $CHECKER; wait $CHECKER; rc=$?
tail -2 "$D/checker.log" | sed 's/^/# /'
check "checker: no double bind, no overcommit after the takeover (exit $rc)" [ "$rc" = 0 ]

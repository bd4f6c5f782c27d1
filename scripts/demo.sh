#!/bin/bash
# demo.sh — `make demo`: plinth in a few minutes on one machine. Makes a throwaway CA,
# starts a 3-member TLS cluster on loopback, shows puts, a watch and a lease expiring,
# then runs two schedulers, two controllers and three agents, applies a Deployment, kills
# the store's leader and the acting scheduler, and shows the failover and the pods still
# running. Leaves nothing running when it ends, also on Ctrl-C.
#
#   scripts/demo.sh            (DEMO_SHORT=1: a quicker run without pauses, for CI)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
SHORT=${DEMO_SHORT:-0}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/plinth-demo.XXXXXX")
STORE=$DIR/store
LOGS=$DIR/logs
mkdir -p "$LOGS" "$DIR/pods"
declare -A PID=()
WATCH_PID=""
POD_CMD="3600.$$"   # pods run "sleep $POD_CMD": unique to this demo, so we can check they end

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' Y=$'\e[33m' R=$'\e[0m'; else B="" G="" Y="" R=""; fi
say() { echo; echo "${B}== $*${R}"; }
info() { echo "   $*"; }
run() { echo "${Y}\$ $*${R}"; "$@"; }
pause() { [ "$SHORT" = 1 ] || sleep "${1:-1.5}"; }
now_ms() { date +%s%3N; }
die() { echo "demo: $*" >&2; exit 1; }

cleaned=0
cleanup() {
    [ $cleaned = 1 ] && return
    cleaned=1
    echo
    echo "${B}== cleaning up${R}"
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null
    local n pids=()
    for n in "${!PID[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null && pids+=("${PID[$n]}"); done
    for _ in $(seq 1 50); do
        local alive=0 p
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -f "$STORE/pids" ] && "$ROOT/scripts/cluster.sh" stop "$STORE" >/dev/null 2>&1
    wait 2>/dev/null
    local left
    left=$(pgrep -f -x "sleep $POD_CMD" | wc -l)
    for _ in $(seq 1 30); do [ "$left" = 0 ] && break; sleep 0.1; left=$(pgrep -f -x "sleep $POD_CMD" | wc -l); done
    if [ "$left" = 0 ]; then info "stopped: 3 store members, the schedulers, controllers and agents (and their pods)"
    else info "warning: $left pod processes ('sleep $POD_CMD') are still running"; fi
    info "data and logs are in $DIR"
    info "  store members: $STORE/m1 .. m3 (data), $STORE/m*.log"
    info "  workload programs: $LOGS/*.log; pod output: $DIR/pods/"
    info "  remove them with: rm -rf $DIR"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

for p in plinth plinthctl; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing: run 'make' (or 'make demo') first"
done
command -v etcdctl >/dev/null || die "etcdctl is missing (Debian: apt-get install etcd-client)"

echo "${B}plinth demo${R}: a Raft-replicated store speaking etcd's v3 API, with a scheduler on top."
info "everything runs on 127.0.0.1 under $DIR and stops when the demo ends (Ctrl-C is fine)."

# --- 1. the store ----------------------------------------------------------------------
say "1. a 3-member TLS cluster (throwaway CA and certificates from scripts/certs.sh)"
run "$ROOT/scripts/cluster.sh" start 3 "$STORE" --bin "$BIN/plinth" || die "the cluster did not start"
EPS=$(cat "$STORE/endpoints")
TLS=(--cacert="$STORE/certs/ca.pem" --cert="$STORE/certs/client.pem" --key="$STORE/certs/client-key.pem")
TLSW=(--cacert "$STORE/certs/ca.pem" --cert "$STORE/certs/client.pem" --key "$STORE/certs/client-key.pem")
export ETCDCTL_API=3
ectl() { etcdctl --endpoints="$EPS" "${TLS[@]}" "$@"; }
pctl() { "$BIN/plinthctl" --endpoints="$EPS" "${TLS[@]}" "$@"; }
echo "${Y}\$ etcdctl member list -w table${R}"; ectl member list -w table
echo "${Y}\$ etcdctl endpoint status -w table${R}"; ectl endpoint status -w table
pause

# --- 2. keys, a watch, a lease -----------------------------------------------------------
say "2. puts and gets with the stock etcdctl, and a watch with plinthctl"
mkfifo "$DIR/watch.fifo"
sed -u "s/^/   ${G}[watch]${R} /" <"$DIR/watch.fifo" &
"$BIN/plinthctl" --endpoints="$EPS" "${TLS[@]}" watch /demo/ --prefix >"$DIR/watch.fifo" 2>&1 &
WATCH_PID=$!
sleep 0.5
echo "${Y}\$ etcdctl put /demo/greeting hello${R}"; ectl put /demo/greeting hello
echo "${Y}\$ etcdctl put /demo/color blue${R}"; ectl put /demo/color blue
sleep 0.3
echo "${Y}\$ etcdctl get /demo/ --prefix${R}"; ectl get /demo/ --prefix
echo "${Y}\$ plinthctl get /demo/greeting -w json${R}"; pctl get /demo/greeting -w json
pause

say "3. a lease: a key that disappears when its 3-second lease expires"
LEASE=$(ectl lease grant 3 | awk '/granted/ { print $2 }')
info "granted lease $LEASE"
echo "${Y}\$ etcdctl put /demo/session alive --lease=$LEASE${R}"; ectl put /demo/session alive --lease="$LEASE"
echo "${Y}\$ etcdctl lease timetolive $LEASE --keys${R}"; ectl lease timetolive "$LEASE" --keys
info "waiting for the lease to expire (the watch prints the DELETE)..."
t0=$(now_ms)
while [ -n "$(ectl get /demo/session --print-value-only 2>/dev/null)" ] && [ $(( $(now_ms) - t0 )) -lt 10000 ]; do sleep 0.2; done
sleep 0.3
info "/demo/session is gone $(( $(now_ms) - t0 )) ms later: '$(ectl get /demo/session)'"
kill "$WATCH_PID" 2>/dev/null; WATCH_PID=""
pause

# --- 3. the workload layer ------------------------------------------------------------------
for p in plinth-scheduler plinth-controller plinth-agent; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing: the workload half of the demo needs it (run 'make')"
done
say "4. two schedulers, two controllers and three agents (one scheduler and one controller lead)"
TTL=2
start() { # name program args...
    local n=$1; shift
    "$@" --endpoints "$EPS" "${TLSW[@]}" >"$LOGS/$n.log" 2>&1 &
    PID[$n]=$!
    info "started $n (pid ${PID[$n]}, log $LOGS/$n.log)"
}
for i in 1 2; do start "scheduler-$i" "$BIN/plinth-scheduler" --name "scheduler-$i" --lease-ttl $TTL; done
for i in 1 2; do start "controller-$i" "$BIN/plinth-controller" --name "controller-$i" --lease-ttl $TTL --eviction-timeout 10; done
for i in 1 2 3; do start "node-$i" "$BIN/plinth-agent" --node "node-$i" --lease-ttl $TTL --cpu 2 --memory 2Gi --log-dir "$DIR/pods"; done
kube() { "$BIN/plinthctl" --endpoints="$EPS" "${TLS[@]}" kube "$@"; }
leader_of() { ectl get --prefix "/plinth/election/$1/" --sort-by=CREATE --order=ASCEND --print-value-only 2>/dev/null | grep . | head -1; }
wait_for() { # seconds, command
    local until=$(( $(now_ms) + $1 * 1000 )); shift
    while [ "$(now_ms)" -lt $until ]; do "$@" && return 0; sleep 0.2; done
    return 1
}
nodes_ready() { [ "$(kube get nodes 2>/dev/null | awk '$2 == "Ready"' | wc -l)" -eq 3 ]; }
wait_for 20 nodes_ready || die "the 3 nodes did not become Ready (logs in $LOGS)"
wait_for 10 bash -c "[ -n \"\$(etcdctl --endpoints=$EPS ${TLS[*]} get --prefix /plinth/election/scheduler/ --keys-only 2>/dev/null)\" ]"
echo "${Y}\$ plinthctl kube get nodes${R}"; kube get nodes
info "acting scheduler: $(leader_of scheduler); acting controller: $(leader_of controller)"
pause

REPLICAS=6
[ "$SHORT" = 1 ] && REPLICAS=3
say "5. a Deployment of $REPLICAS replicas (each pod runs 'sleep $POD_CMD' as a local process)"
cat >"$DIR/web.yaml" <<EOF
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: demo/sleep:v1
        command: [sleep, "$POD_CMD"]
        resources: {requests: {cpu: 100m, memory: 32Mi}}
EOF
echo "${Y}\$ plinthctl kube apply -f $DIR/web.yaml${R}"; kube apply -f "$DIR/web.yaml" || die "apply failed"
running() { [ "$(kube get pods -l app=web 2>/dev/null | awk 'NR > 1 && $3 == "Running"' | wc -l)" -ge "$1" ]; }
wait_for 30 running "$REPLICAS" || die "the pods did not start (logs in $LOGS)"
echo "${Y}\$ plinthctl kube get pods -o wide${R}"; kube get pods -o wide
info "$(pgrep -f -x "sleep $POD_CMD" | wc -l) pod processes are running"
pause

# --- 4. failover -----------------------------------------------------------------------------
say "6. kill -9 the store's leader and the acting scheduler"
leader_name=""
while read -r name curl _; do
    if "$BIN/plinthctl" --endpoints="$curl" "${TLS[@]}" endpoint status 2>/dev/null | awk -F', ' '$5 == "true"' | grep -q .; then
        leader_name=$name; leader_url=$curl
    fi
done <"$STORE/members"
[ -n "$leader_name" ] || die "no store leader found"
sched=$(leader_of scheduler)
others=$(tr ',' '\n' <"$STORE/endpoints" | grep -v "^$leader_url$" | paste -sd, -)
info "store leader: $leader_name ($leader_url); acting scheduler: $sched (pid ${PID[$sched]:-?})"
t0=$(now_ms)
"$ROOT/scripts/cluster.sh" kill "$STORE" "$leader_name" KILL
{ kill -KILL "${PID[$sched]}"; wait "${PID[$sched]}"; } 2>/dev/null
unset "PID[$sched]"
info "killed both at t=0"
write_ms=""
while [ $(( $(now_ms) - t0 )) -lt 20000 ]; do
    if "$BIN/plinthctl" --endpoints="$others" "${TLS[@]}" --command-timeout=300ms put /demo/after-failover ok >/dev/null 2>&1; then
        write_ms=$(( $(now_ms) - t0 )); break
    fi
done
[ -n "$write_ms" ] && info "${G}store: first acknowledged write ${write_ms} ms after the leader died${R}" ||
    info "store: no write acknowledged within 20 s"
EPS=$others
new_sched=""
new_scheduler() { new_sched=$(leader_of scheduler); [ -n "$new_sched" ] && [ "$new_sched" != "$sched" ]; }
if wait_for 20 new_scheduler; then
    info "${G}scheduler: $new_sched took over $(( $(now_ms) - t0 )) ms after $sched died${R} (election lease TTL ${TTL} s)"
else
    info "scheduler: no new leader within 20 s"
fi
echo "${Y}\$ etcdctl endpoint status -w table${R}  (the survivors)"; ectl endpoint status -w table
say "7. the pods kept running, and the new scheduler places new ones"
info "$(pgrep -f -x "sleep $POD_CMD" | wc -l) pod processes are running"
NEW=$((REPLICAS + 2))
echo "${Y}\$ plinthctl kube scale deployment/web --replicas $NEW${R}"; kube scale deployment/web --replicas $NEW
if wait_for 30 running "$NEW"; then
    echo "${Y}\$ plinthctl kube get pods -o wide${R}"; kube get pods -o wide
    info "${G}$NEW pods Running, the 2 new ones placed by $new_sched on a store that lost its leader${R}"
else
    kube get pods -o wide
    die "the scaled-up pods did not start (logs in $LOGS)"
fi
say "8. the killed store member comes back and catches up"
"$ROOT/scripts/cluster.sh" restart "$STORE" "$leader_name"
EPS=$(cat "$STORE/endpoints")
rejoined() { ectl endpoint health >/dev/null 2>&1; }
wait_for 20 rejoined && info "all 3 members healthy again" || info "the restarted member is not healthy yet"
ectl endpoint status -w table
echo
echo "${B}done.${R} Try it yourself: scripts/cluster.sh start 3 DIR; . DIR/env; etcdctl put k v"

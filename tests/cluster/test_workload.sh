#!/bin/bash
# test_workload — the workload layer on a real cluster: 3 store members over TLS, 2
# schedulers, 2 controllers and 3 agents as processes on loopback. Checks spreading, node
# failure, scheduler/controller failover, a paused leader that must not write, a rolling
# update and undo within maxUnavailable, an unfittable pod, containers' exit codes, and a
# checker that watches every bind for double binds and overcommitted nodes.
#
# PLINTH_WORKLOAD_SERVER=/usr/bin/etcd runs the same suite against etcd (same API).
# Ends with "# plinth-result: P passed, F failed".
set -u
ROOT=$(cd "$(dirname "$0")" && while [ ! -f Makefile ] && [ "$PWD" != / ]; do cd ..; done; pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
SERVER=${PLINTH_WORKLOAD_SERVER:-$B/bin/plinth}
KUBECTL=${PLINTH_KUBECTL:-$B/bin/plinthctl}
SBIN=${PLINTH_SCHED_BIN:-$B/bin}   # where plinth-scheduler, -controller and -agent are
TTL=2            # election and node lease TTL (s)
EVICT=2          # eviction timeout (s)

D=$(mktemp -d "${TMPDIR:-/tmp}/plinth-workload.XXXXXX")
PIDS=()
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $*"; }
check() { # description command...
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
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
    cat "$D/cluster.log"
    not_ok "store cluster of 3 members starts"
    exit 1
fi
ok "store cluster of 3 members starts ($(basename "$SERVER"), TLS)"
EP=$(cat "$D/endpoints")
TLS=(--endpoints "$EP" --cacert "$D/certs/ca.pem" --cert "$D/certs/client.pem" --key "$D/certs/client-key.pem")
kube() { "$KUBECTL" kube "${TLS[@]}" "$@"; }
etcdctl_() { ETCDCTL_API=3 etcdctl --endpoints "$EP" --cacert "$D/certs/ca.pem" --cert "$D/certs/client.pem" --key "$D/certs/client-key.pem" "$@"; }

declare -A PID_OF
start() { # name program args...
    local name=$1; shift
    "$@" "${TLS[@]}" >"$D/$name.log" 2>&1 &
    PID_OF[$name]=$!
    PIDS+=($!)
}
start_scheduler() { start "$1" "$SBIN/plinth-scheduler" --name "$1" --lease-ttl $TTL -v; }
start_controller() { start "$1" "$SBIN/plinth-controller" --name "$1" --lease-ttl $TTL --eviction-timeout $EVICT; }
start_agent() { start "$1" "$SBIN/plinth-agent" --node "$1" --lease-ttl $TTL --cpu 2 --memory 2Gi --max-pods 20 --log-dir "$D/pods"; }

# wait_for SECONDS command...: retries every 0.2 s
wait_for() {
    local end=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done
    "$@"
}

# The acting leader of an election: the candidate with the lowest create revision.
leader_of() { etcdctl_ get --prefix "/plinth/election/$1/" --sort-by=CREATE --order=ASCEND --print-value-only 2>/dev/null | head -1; }

# "name node ready status" per pod of a label selector, from one consistent read
pods_table() { kube get pods -l "$1" 2>/dev/null | awk 'NR > 1 { print $1, $5, $2, $3 }'; }
running_on_live() { # selector count dead-node: count pods Running 1/1, none on dead-node
    local t; t=$(pods_table "$1")
    [ "$(echo "$t" | awk -v d="${3:-none}" '$3 == "1/1" && $4 == "Running" && $2 != d' | wc -l)" -eq "$2" ] &&
        [ "$(echo "$t" | grep -c .)" -eq "$2" ]
}

# the checker watches every change for double binds and overcommitted nodes
"$KUBECTL" kube check -w "${TLS[@]}" >"$D/checker.log" 2>&1 &
CHECKER=$!
PIDS+=($CHECKER)

start_scheduler s1; start_scheduler s2
start_controller c1; start_controller c2
start_agent n1; start_agent n2; start_agent n3

nodes_ready() { [ "$(kube get nodes 2>/dev/null | awk '$2 == "Ready"' | wc -l)" -eq 3 ]; }
check "3 agents register Ready nodes" wait_for 20 nodes_ready
leaders() { [ -n "$(leader_of scheduler)" ] && [ -n "$(leader_of controller)" ]; }
check "one scheduler and one controller lead" wait_for 10 leaders

# --- 0. manifests: invalid objects are refused naming the field; apply is idempotent ---
cat >"$D/bad.yaml" <<'EOF'
kind: Pod
metadata: {name: good}
spec: {containers: [{name: c, image: i, command: [sleep, "1"]}]}
---
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: c
    image: i
    resources: {requests: {memory: lots}}
EOF
kube apply -f "$D/bad.yaml" >"$D/bad.out" 2>&1; rc=$?
refused() { [ $rc != 0 ] && grep -q 'document 2: Pod default/bad: spec.containers\[0\].resources.requests.memory' "$D/bad.out"; }
check "an invalid manifest is refused with the field named" refused
none_created() { ! kube get pod good >/dev/null 2>&1; }
check "nothing of a refused file is created" none_created
cat >"$D/svc.json" <<'EOF'
{"kind": "Service", "metadata": {"name": "probe"}, "spec": {"selector": {"app": "probe"}, "port": 9000}}
EOF
check "create -f with a JSON document" kube create -f "$D/svc.json"
exists() { kube create -f "$D/svc.json" >"$D/exists.out" 2>&1; [ $? != 0 ] && grep -q 'already exists' "$D/exists.out"; }
check "create -f refuses an existing object" exists
unchanged() { kube apply -f "$D/svc.json" | grep -q 'services/probe unchanged'; }
check "apply of the same document reports unchanged" unchanged
kube get pods -w --timeout 4 >"$D/watch.out" 2>&1 &
WATCH=$!
sleep 0.5
kube run watched --image plinth/sleep --restart Never -- sleep 1 >/dev/null
wait $WATCH
watched() { grep -q '^watched ' "$D/watch.out"; }
check "get -w shows a new pod as it appears" watched
described() { kube describe service probe | grep -q 'Key:  /registry/services/default/probe'; }
check "describe shows the object and its key" described
kube delete service probe >/dev/null; kube delete pod watched >/dev/null

# --- 1. a Deployment of 6 replicas spreads over the nodes ---------------------------
cat >"$D/web.yaml" <<'EOF'
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: plinth/sleep:v1
        command: [sleep, "3600"]
        resources: {requests: {cpu: 200m, memory: 64Mi}}
---
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
EOF
check "apply a Deployment and a Service" kube apply -f "$D/web.yaml"
check "6 replicas Running" wait_for 30 running_on_live app=web 6
spread() { [ "$(pods_table app=web | awk '{ print $2 }' | sort | uniq -c | awk '$1 == 2' | wc -l)" -eq 3 ]; }
check "the 6 replicas spread 2/2/2 over the 3 nodes" spread
# containers are children of the agents (only ours: other suites may run at the same time)
agent_children() { local n=0 a; for a in n1 n2 n3; do n=$((n + $(pgrep -P "${PID_OF[$a]}" -f -x 'sleep 3600' | wc -l))); done; echo $n; }
processes() { [ "$(agent_children)" -eq 6 ]; }
check "containers run as local processes, children of their agents" processes
endpoints6() { [ "$(kube get endpoints web | awk 'NR == 2 { print $2 }' | tr ',' '\n' | grep -c ':8080')" -eq 6 ]; }
check "the Service's Endpoints list the 6 ready pods" wait_for 10 endpoints6

# --- 2. SIGKILL an agent: its pods come back on the others ---------------------------
victim=n3
kill -KILL "${PID_OF[$victim]}"
t0=$SECONDS
check "the pods of a killed agent come back on the other nodes" wait_for 40 running_on_live app=web 6 $victim
echo "# rescheduled after agent loss in $((SECONDS - t0)) s (lease ttl ${TTL}s + eviction ${EVICT}s)"
notready() { kube get nodes | awk -v n=$victim '$1 == n { print $2 }' | grep -q NotReady; }
check "the dead node is NotReady" notready

# --- 3. SIGKILL the acting scheduler and controller: the standbys take over ----------
sl=$(leader_of scheduler); cl=$(leader_of controller)
kill -KILL "${PID_OF[$sl]}" "${PID_OF[$cl]}"
t0=$SECONDS
check "scale to 8 after the leaders are killed" kube scale deployment/web --replicas 8
check "the standby controller and scheduler bring up 8 replicas" wait_for 30 running_on_live app=web 8 $victim
echo "# failover of both leaders and 2 new pods in $((SECONDS - t0)) s"
new_leaders() { [ -n "$(leader_of scheduler)" ] && [ "$(leader_of scheduler)" != "$sl" ] && [ "$(leader_of controller)" != "$cl" ]; }
check "new leaders are elected" new_leaders
# bring the pool back to two of each
start_scheduler s3; start_controller c3

# --- 4. a paused scheduler makes no write after losing its leadership ------------------
sleep 1
paused=$(leader_of scheduler)
binds_before=$(grep -c ': bound ' "$D/$paused.log")
kill -STOP "${PID_OF[$paused]}"
sleep $((TTL + 2))
for i in 1 2 3; do kube run "late$i" --image plinth/sleep --requests cpu=50m -- sleep 3600 >/dev/null; done
late_bound() { [ "$(kube get pods | awk '/^late/ && $5 != "<none>"' | wc -l)" -eq 3 ]; }
check "pods created while the leader is paused are bound by its successor" wait_for 20 late_bound
kill -CONT "${PID_OF[$paused]}"
sleep $((TTL + 1))
binds_after=$(grep -c ': bound ' "$D/$paused.log")
check "the resumed ex-leader bound nothing (binds $binds_before -> $binds_after)" [ "$binds_before" = "$binds_after" ]
bound_by_other() {
    local by
    for i in 1 2 3; do
        by=$(kube get pod "late$i" -o json | grep -o '"scheduler.plinth.io/bound-by": "[^"]*"' | cut -d'"' -f4)
        [ -n "$by" ] && [ "$by" != "$paused" ] || return 1
    done
}
check "every late pod records its binder, and it is not the paused one" bound_by_other
kube delete pod late1 late2 late3 >/dev/null

# --- 5. rolling update v1 -> v2 and undo, with maxUnavailable honoured ----------------
kube scale deployment/web --replicas 6 >/dev/null
wait_for 30 running_on_live app=web 6 $victim >/dev/null
monitor() { # samples until the flag file disappears; prints the least ready and most pods
    local min=99 max=0 t n all
    while [ -e "$D/monitoring" ]; do
        t=$(pods_table app=web)   # one consistent read
        n=$(echo "$t" | awk '$3 == "1/1" && $4 == "Running"' | wc -l)
        all=$(echo "$t" | grep -c .)
        [ "$n" -lt "$min" ] && min=$n
        [ "$all" -gt "$max" ] && max=$all
        sleep 0.05
    done
    echo "$min $max"
}
touch "$D/monitoring"
monitor >"$D/min_ready" &
MON=$!
sed -e 's#plinth/sleep:v1#plinth/sleep:v2#' "$D/web.yaml" >"$D/web2.yaml"
check "apply template v2" kube apply -f "$D/web2.yaml"
check "rollout to v2 completes" kube rollout status deployment/web --timeout 60
v2() { [ "$(kube get rs | awk '$2 == 6 && $4 == 6' | wc -l)" -eq 1 ] && kube get deployment web -o yaml | grep -q 'plinth/sleep:v2'; }
check "v2 ReplicaSet has 6 ready replicas" v2
check "rollout undo" kube rollout undo deployment/web
check "rollout back to v1 completes" kube rollout status deployment/web --timeout 60
rm -f "$D/monitoring"
wait $MON
read -r min max <"$D/min_ready"
check "ready replicas never fell below 6 - maxUnavailable(1) = 5 (minimum seen: $min)" [ "$min" -ge 5 ]
check "pods never exceeded 6 + maxSurge(1) = 7 (maximum seen: $max)" [ "$max" -le 7 ]
hist() { kube rollout history deployment/web | grep -q '^3 '; }
check "history shows revision 3 (v1 again)" hist
v1() { kube get deployment web -o yaml | grep -q 'plinth/sleep:v1'; }
check "the template is v1 again" v1

# --- 5b. revision history limit ---------------------------------------------------------
hist_yaml() { # version
    cat <<EOF
kind: Deployment
metadata: {name: hist}
spec:
  replicas: 1
  revisionHistoryLimit: 1
  selector: {matchLabels: {app: hist}}
  template:
    metadata: {labels: {app: hist}}
    spec: {containers: [{name: c, image: "plinth/sleep:$1", command: [sleep, "3600"]}]}
EOF
}
for v in 1 2 3 4; do
    hist_yaml $v >"$D/hist.yaml"
    kube apply -f "$D/hist.yaml" >/dev/null && kube rollout status deployment/hist --timeout 30 >/dev/null
done
two_rs() { [ "$(kube get rs | grep -c '^hist-')" -eq 2 ]; }
check "revisionHistoryLimit 1 keeps the current and one old ReplicaSet after 4 versions" wait_for 10 two_rs
last_two() { kube rollout history deployment/hist | awk 'NR > 2 { print $1 }' | tr '\n' ' ' | grep -qx '3 4 '; }
check "the history holds revisions 3 and 4" last_two
kube delete deployment hist >/dev/null

# --- 5c. Recreate strategy: old pods go before new ones start ---------------------------
rec_yaml() { # version
    cat <<EOF
kind: Deployment
metadata: {name: rec}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: rec}}
  template:
    metadata: {labels: {app: rec}}
    spec: {containers: [{name: c, image: "plinth/sleep:$1", command: [sleep, "3600"]}]}
EOF
}
rec_yaml 1 >"$D/rec.yaml"; kube apply -f "$D/rec.yaml" >/dev/null
check "Recreate deployment v1 rolls out" kube rollout status deployment/rec --timeout 30
rec_yaml 2 >"$D/rec.yaml"; kube apply -f "$D/rec.yaml" >/dev/null
rec_mixed=0
rec_watch() { # samples until v2 is out: a v1 and a v2 pod must never coexist
    local t; local end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        t=$(kube get pods -l app=rec -o yaml | grep -o 'plinth/sleep:[12]' | sort -u | wc -l)
        [ "$t" -gt 1 ] && rec_mixed=1
        kube rollout status deployment/rec --timeout 0.1 >/dev/null 2>&1 && return 0
    done
    return 1
}
check "Recreate deployment v2 rolls out" rec_watch
check "v1 and v2 pods of a Recreate deployment never ran together" [ "$rec_mixed" = 0 ]
kube delete deployment rec >/dev/null

# --- 6. a pod that fits nowhere stays Pending with its reason ------------------------
kube run huge --image plinth/sleep --requests cpu=64 -- sleep 3600 >/dev/null
unsched() { kube get pod huge -o yaml | grep -q 'Insufficient cpu'; }
check "an unfittable pod gets PodScheduled=False with the reason" wait_for 10 unsched
sleep 2
pending() { kube get pod huge -o yaml | grep -q 'phase: Pending' && kube get pod huge | grep -q '<none>'; }
check "it stays Pending and unbound" pending

# --- 6b. a cordoned node takes no new pods -------------------------------------------
check "cordon n1" kube cordon n1
cordoned() { kube get nodes | awk '$1 == "n1"' | grep -q SchedulingDisabled; }
check "n1 shows SchedulingDisabled" cordoned
kube run pinned --image plinth/sleep --requests cpu=50m -- sleep 3600 >/dev/null
on_n2() { kube get pod pinned | awk 'NR == 2 { print $5 }' | grep -qx n2; }
check "a new pod avoids the cordoned node (and the dead one)" wait_for 15 on_n2
check "uncordon n1" kube uncordon n1
kube delete pod pinned >/dev/null

# --- 6d. a NoExecute taint evicts the pods that do not tolerate it ---------------------
node_yaml() { # taints
    cat <<EOF
kind: Node
metadata: {name: n2}
spec: {taints: $1}
status: {capacity: {cpu: 2, memory: 2Gi, pods: 20}}
EOF
}
on_n2_before() { [ "$(pods_table app=web | awk '$2 == "n2"' | wc -l)" -gt 0 ]; }
check "n2 runs some of the replicas" on_n2_before
node_yaml '[{key: maintenance, value: "yes", effect: NoExecute}]' >"$D/taint.yaml"
check "taint n2 with NoExecute" kube apply -f "$D/taint.yaml"
off_n2() { [ "$(pods_table app=web | awk '$2 == "n2"' | wc -l)" -eq 0 ] && running_on_live app=web 6 $victim; }
check "the pods that do not tolerate it leave n2 and run elsewhere" wait_for 30 off_n2
node_yaml '[]' >"$D/untaint.yaml"
check "remove the taint" kube apply -f "$D/untaint.yaml"

# --- 6c. a pod bound to a node that does not exist is deleted after the eviction timeout
cat >"$D/ghost.yaml" <<'EOF'
kind: Pod
metadata: {name: ghost}
spec: {nodeName: nowhere, containers: [{name: c, image: i, command: [sleep, "1"]}]}
EOF
kube apply -f "$D/ghost.yaml" >/dev/null
ghost_gone() { ! kube get pod ghost >/dev/null 2>&1; }
check "a pod bound to a missing node is evicted" wait_for 15 ghost_gone

# --- 7. containers: exit codes and restart policies -----------------------------------
kube run fail3 --image plinth/sh --restart Never -- sh -c 'echo hello; exit 3' >/dev/null
failed3() { kube get pod fail3 -o json | grep -q '"exitCode": 3' && kube get pod fail3 | grep -q Failed; }
check "a container's exit code is reported (restartPolicy Never -> Failed, exit 3)" wait_for 15 failed3
kube run flaky --image plinth/sh --restart OnFailure -- sh -c 'exit 1' >/dev/null
restarted() { [ "$(kube get pod flaky | awk 'NR == 2 { print $4 }')" -ge 1 ] 2>/dev/null; }
check "restartPolicy OnFailure restarts a failing container" wait_for 15 restarted
kube delete deployment web >/dev/null
gone() { [ "$(pods_table app=web | grep -c .)" -eq 0 ] && [ "$(agent_children)" -eq 0 ]; }
check "deleting the Deployment stops its pods' processes" wait_for 20 gone

# --- the checker saw no double bind and no overcommit ---------------------------------
kill -TERM $CHECKER
wait $CHECKER
rc=$?
tail -3 "$D/checker.log" | sed 's/^/# /'
check "checker: no double bind, no overcommitted node (exit $rc)" [ "$rc" = 0 ]

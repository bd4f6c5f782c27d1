#!/bin/bash
# test_faults_churn — a 3-member TLS cluster under client load: the leader SIGKILLed five
# times in a row, a follower stopped long enough to need a snapshot, and a learner added,
# promoted and removed; the recorded history stays linearizable.
#
#   bash tests/cluster/test_faults_churn.sh      (PLINTH_BIN=/usr/bin/etcd runs it on etcd)
set -u
CL_HERE=$(dirname "$0"); [ -f "$CL_HERE/lib.sh" ] || CL_HERE=$CL_HERE/..   # also from wip/
. "$CL_HERE/lib.sh"

CL_EXTRA_FLAGS=${CL_EXTRA_FLAGS:-"--snapshot-count 200"}
cl_init churn 3 1 || { echo "# plinth-result: 0 passed, 1 failed"; exit 1; }
C=$CL_DIR/certs
START=$SECONDS
for t in histclient lincheck; do
    [ -x "$CL_TOOLS/$t" ] || { cl_fail "tool $t is built"; cl_finish; exit 1; }
done
[ -x "$PLINTH_BIN" ] || { cl_fail "server $PLINTH_BIN exists"; cl_finish; exit 1; }

cl_start_all
L=$(cl_wait_leader 30) || L=""
cl_check "a leader is elected" test -n "$L"
[ -n "$L" ] || { cl_finish; exit 1; }
others() { local i; for i in "${CL_MEMBERS[@]}"; do [[ " $* " == *" $i "* ]] || echo "$i"; done; }
wait_true() { local end=$((SECONDS + $1)); shift; while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.3; done; return 1; }

HIST=$CL_DIR/history
STOP=$CL_DIR/histclient.stop
"$CL_TOOLS/histclient" --endpoints-file "$CL_DIR/endpoints" --cacert "$C/ca.pem" \
    --cert "$C/client.pem" --key "$C/client-key.pem" --clients "${HC_CLIENTS:-5}" --keys 3 \
    --prefix "linc-" --duration 200 --max-ops 30000 --op-timeout 1500 --think "${HC_THINK:-20}" \
    --cas "${HC_CAS:-on}" --stop-file "$STOP" --tag hc --out "$HIST" >"$CL_DIR/histclient.out" 2>&1 &
HC_PID=$!
CL_PIDS+=("$HC_PID")
sleep 1

# ---- 1. the leader killed five times in a row ------------------------------------------------
for round in 1 2 3 4 5; do
    L=$(cl_wait_leader 20) || { cl_fail "round $round: a leader to kill"; continue; }
    cl_kill "$L"
    t0=$SECONDS
    NL=$(cl_wait_leader 15 "$L") || NL=""
    cl_check "round $round: SIGKILL of leader m$L, m${NL:-none} leads ($((SECONDS - t0))s)" test -n "$NL"
    cl_check "round $round: writes resume" cl_wait_put 10 "churn/round" "r$round" "${NL:-$(others "$L" | head -1)}"
    cl_start "$L" existing
    sleep 1
done
cl_check "every member has the last round's write" eval \
    'for i in "${CL_MEMBERS[@]}"; do cl_wait_value 20 "$i" churn/round r5 --consistency=s || exit 1; done'

# ---- 2. a follower stopped while the log moves past a snapshot --------------------------------
L=$(cl_wait_leader 20) || L=""
F=$(others "$L" | head -1)
cl_log "SIGSTOP follower m$F"
cl_signal "$F" STOP
bulk() { # 40 transactions of 10 puts each, well past --snapshot-count entries in all
    local i j n=0
    for i in $(seq 1 40); do
        { echo; for j in $(seq 1 10); do echo "put churn/bulk/$j b$i"; done; echo; echo; } |
            CL_CMD_TIMEOUT=5s cl_ctl "$L" txn 2>/dev/null | grep -q SUCCESS && n=$((n + 1))
    done
    echo "# $n of 40 transactions acknowledged"
    [ $n -ge 35 ]
}
cl_check "the majority takes 40 transactions while m$F is stopped" bulk
cl_check "the majority takes a marker write" cl_wait_put 10 churn/stopped v-stopped "$L"
sleep 1
cl_signal "$F" CONT
cl_check "the resumed m$F catches up" cl_wait_value 30 "$F" churn/stopped v-stopped --consistency=s
cl_check "the resumed m$F has the last transaction" cl_wait_value 10 "$F" churn/bulk/10 b40 --consistency=s

# ---- 3. a learner: add, catch up, promote, remove ------------------------------------------
NEW=$((CL_SIZE + 1))
learner_add() {
    local end=$((SECONDS + 20)) out
    while [ $SECONDS -lt $end ]; do
        out=$(cl_ctl_any member add "m$NEW" --learner --peer-urls="$(cl_purl "$NEW")" 2>&1)
        echo "$out" | grep -q "added" && return 0
        sleep 1
    done
    echo "# member add --learner: $out"; return 1
}
cl_check "member add --learner m$NEW is accepted" learner_add
CL_MEMBERS+=("$NEW")
cl_start "$NEW" existing
is_learner() { cl_ctl_any member list 2>/dev/null | grep ", m$NEW," | grep -q ", true$"; }
cl_check "member list shows m$NEW as a learner" wait_true 10 is_learner
cl_check "the learner m$NEW catches up" cl_wait_value 30 "$NEW" churn/stopped v-stopped --consistency=s
cl_check "with the learner the cluster commits writes" cl_wait_put 10 churn/learner v-learner
lid=$(cl_ctl_any member list 2>/dev/null | grep ", m$NEW," | cut -d, -f1)
promote() {
    local end=$((SECONDS + 30)) out
    while [ $SECONDS -lt $end ]; do
        out=$(cl_ctl_any member promote "$lid" 2>&1)
        echo "$out" | grep -q "promoted" && return 0
        sleep 1
    done
    echo "# member promote: $out"; return 1
}
cl_check "member promote m$NEW succeeds" promote
is_voter() { cl_ctl_any member list 2>/dev/null | grep ", m$NEW," | grep -q ", false$"; }
cl_check "member list shows m$NEW as a voter" wait_true 10 is_voter
cl_endpoints >/dev/null
cl_check "the promoted m$NEW serves linearizable reads" cl_wait_value 20 "$NEW" churn/learner v-learner
L=$(cl_wait_leader 20) || L=""
[ "$L" = "$NEW" ] && L=$(others "$NEW" | head -1)
cl_check "member remove m$NEW is accepted" eval 'cl_ctl "$L" member remove "$lid" >/dev/null 2>&1'
CL_MEMBERS=($(others "$NEW"))
cl_endpoints >/dev/null
cl_kill "$NEW"
cl_check "the three take writes after the removal" cl_wait_put 10 churn/after v-after

touch "$STOP"
end=$((SECONDS + 15))
while kill -0 "$HC_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
kill -0 "$HC_PID" 2>/dev/null && kill -KILL "$HC_PID"
{ wait "$HC_PID"; } 2>/dev/null
cat "$CL_DIR/histclient.out"
puts_ok=$(grep -c ' put .* ok$' "$HIST")
cl_check "the load made progress ($puts_ok puts acknowledged)" test "$puts_ok" -ge 50
cl_check "the history is linearizable" "$CL_TOOLS/lincheck" "$HIST"
cl_log "total $((SECONDS - START))s"
cl_finish

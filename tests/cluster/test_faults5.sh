#!/bin/bash
# test_faults5 — a 5-member TLS cluster under client load: a 2|3 partition with the leader in
# the minority, silent one-way partitions (the leader cannot be heard / cannot hear), two
# followers cut from each other, a bridge partition, flapping partitions, and two members
# killed at once; the history stays linearizable.
#
#   bash tests/cluster/test_faults5.sh           (PLINTH_BIN=/usr/bin/etcd runs it on etcd)
set -u
CL_HERE=$(dirname "$0"); [ -f "$CL_HERE/lib.sh" ] || CL_HERE=$CL_HERE/..   # also from wip/
. "$CL_HERE/lib.sh"

cl_init faults5 5 0 || { echo "# plinth-result: 0 passed, 1 failed"; exit 1; }
C=$CL_DIR/certs
START=$SECONDS
for t in histclient lincheck faultproxy; do
    [ -x "$CL_TOOLS/$t" ] || { cl_fail "tool $t is built"; cl_finish; exit 1; }
done
[ -x "$PLINTH_BIN" ] || { cl_fail "server $PLINTH_BIN exists"; cl_finish; exit 1; }

cl_check "fault proxy starts" cl_proxy_start
cl_start_all
L=$(cl_wait_leader 30) || L=""
cl_check "a leader is elected among 5" test -n "$L"
[ -n "$L" ] || { cl_finish; exit 1; }

others() { local i; for i in "${CL_MEMBERS[@]}"; do [[ " $* " == *" $i "* ]] || echo "$i"; done; }
# new_leader_among TIMEOUT OLD MEMBERS...: a leader other than OLD named by a majority of MEMBERS.
new_leader_among() {
    local to=$1 old=$2 end l; shift 2
    end=$((SECONDS + to))
    while [ $SECONDS -lt $end ]; do
        if l=$(cl_leader_once "$@") && [ "$l" != "$old" ]; then echo "$l"; return 0; fi
        sleep 0.2
    done
    return 1
}
put_refused() { ! cl_ctl "$1" put "$2" "$3" >/dev/null 2>&1; }

HIST=$CL_DIR/history
STOP=$CL_DIR/histclient.stop
"$CL_TOOLS/histclient" --endpoints-file "$CL_DIR/endpoints" --cacert "$C/ca.pem" \
    --cert "$C/client.pem" --key "$C/client-key.pem" --clients "${HC_CLIENTS:-6}" --keys 4 \
    --prefix "lin5-" --duration 200 --max-ops 30000 --op-timeout 1500 --think "${HC_THINK:-20}" \
    --cas "${HC_CAS:-on}" --stop-file "$STOP" --tag h5 --out "$HIST" >"$CL_DIR/histclient.out" 2>&1 &
HC_PID=$!
CL_PIDS+=("$HC_PID")
sleep 2

# ---- 1. 2|3 partition, the leader in the minority ------------------------------------------
F=$(others "$L" | head -1)
MAJ=($(others "$L" "$F"))
cl_log "partition {m$L m$F} | {${MAJ[*]/#/m}}"
rules=()
for i in "${MAJ[@]}"; do rules+=("drop m$L m$i" "drop m$F m$i"); done
cl_check "the proxy splits the cluster 2|3" cl_proxy_rules "${rules[@]}"
NL=$(new_leader_among 20 "$L" "${MAJ[@]}") || NL=""
cl_check "the majority of 3 elects a leader (m${NL:-none})" test -n "$NL"
cl_check "the majority commits" cl_wait_put 10 f5/split v-split "${NL:-${MAJ[0]}}"
sleep 2
cl_check "the old leader m$L in the minority acknowledges nothing" put_refused "$L" f5/minority a
cl_check "its minority follower m$F acknowledges nothing" put_refused "$F" f5/minority b
cl_check "the minority applied nothing of its own" \
    eval '[ -z "$(cl_get "$L" f5/minority --consistency=s 2>/dev/null)$(cl_get "$F" f5/minority --consistency=s 2>/dev/null)" ]'
cl_heal
cl_check "after healing m$L and m$F have the majority's write" \
    eval 'cl_wait_value 20 "$L" f5/split v-split --consistency=s && cl_wait_value 20 "$F" f5/split v-split --consistency=s'

# ---- 2. silent one-way partitions ----------------------------------------------------------
L=$(cl_wait_leader 20) || L=""
cl_log "stall everything m$L sends"
cl_check "the proxy holds every byte m$L sends" cl_proxy_rules "stall m$L *"
NL=$(new_leader_among 20 "$L" $(others "$L")) || NL=""
cl_check "the others elect a new leader when m$L goes silent (m${NL:-none})" test -n "$NL"
cl_check "writes resume without m$L" cl_wait_put 15 f5/mute v-mute "${NL:-$(others "$L" | head -1)}"
cl_heal
cl_check "after healing m$L follows and catches up" cl_wait_value 20 "$L" f5/mute v-mute --consistency=s

L=$(cl_wait_leader 20) || L=""
cl_log "stall everything m$L receives"
cl_check "the proxy holds every byte sent to m$L" cl_proxy_rules "stall * m$L"
# m$L keeps sending heartbeats but hears no acknowledgement: it must step down (check quorum)
# and the others must elect a leader, or the cluster is stuck.
t0=$SECONDS
cl_wait_put 25 f5/deaf v-deaf "$(others "$L" | head -1)"; rc=$?
cl_check "writes resume while m$L cannot hear (after $((SECONDS - t0))s)" test $rc = 0
NL=$(new_leader_among 10 "$L" $(others "$L")) || NL=""
cl_check "a leader other than the deaf m$L (m${NL:-none})" test -n "$NL"
cl_heal
cl_check "after healing m$L catches up" cl_wait_value 20 "$L" f5/deaf v-deaf --consistency=s

# ---- 2b. partitions that leave the leader connected -------------------------------------------
# Two followers that cannot reach each other but hear the leader must not disturb it.
L=$(cl_wait_leader 20) || L=""
read -r F1 F2 _ <<<"$(others "$L" | tr '\n' ' ')"
term_of() { cl_status "$1" | cut -d' ' -f3; }
term0=$(term_of "$L")
cl_log "cut m$F1 <-> m$F2 (leader m$L reaches both)"
cl_check "the proxy cuts the link between two followers" cl_proxy_rules "drop m$F1 m$F2"
cl_check "writes go on while two followers are cut from each other" cl_wait_put 10 f5/followers v-fol "$L"
sleep 3
L2=$(cl_leader_once) || L2=""
term1=$(term_of "$L")
cl_check "the leader m$L keeps leading, term unchanged (${term0:-?} -> ${term1:-?})" \
    eval '[ "$L2" = "$L" ] && [ -n "$term0" ] && [ "$term0" = "$term1" ]'
cl_heal

# A bridge: {a b} and {d e} cannot reach each other; c reaches everyone. A majority that
# includes c exists on both sides, so the cluster must stay available.
read -r A B Cm D E <<<"$(seq 1 5 | shuf --random-source=<(yes $$) | tr '\n' ' ')"
cl_log "bridge {m$A m$B} - m$Cm - {m$D m$E}"
cl_check "the proxy builds a bridge partition" cl_proxy_rules \
    "drop m$A m$D" "drop m$A m$E" "drop m$B m$D" "drop m$B m$E"
cl_check "writes go through across the bridge" cl_wait_put 20 f5/bridge v-bridge
sleep 2
BL=$(cl_wait_leader 20) || BL=""
cl_check "a leader during the bridge (m${BL:-none})" test -n "$BL"
cl_heal

# ---- 3. flapping partitions ------------------------------------------------------------------
cl_log "flapping partitions for ${FLAP_SECONDS:-12}s"
RANDOM=$$
end=$((SECONDS + ${FLAP_SECONDS:-12}))
while [ $SECONDS -lt $end ]; do
    a=$((RANDOM % 5 + 1)); b=$((RANDOM % 5 + 1))
    case $((RANDOM % 4)) in
        0) cl_proxy_rules "drop m$a *" ;;
        1) cl_proxy_rules "drop m$a m$b" "stall m$b *" ;;
        2) cl_proxy_rules "stall m$a *" "stall * m$b" ;;
        3) cl_proxy_rules ;;
    esac
    sleep 0.$((RANDOM % 9 + 1))
done
cl_heal
L=$(cl_wait_leader 30) || L=""
cl_check "one leader after the flapping stops (m${L:-none})" test -n "$L"
cl_check "writes go through after the flapping" cl_wait_put 15 f5/flap v-flap

# ---- 4. two members killed at once -----------------------------------------------------------
L=$(cl_wait_leader 20) || L=""
F=$(others "$L" | head -1)
cl_log "SIGKILL m$L (leader) and m$F"
cl_kill "$L"; cl_kill "$F"
NL=$(new_leader_among 20 "$L" $(others "$L" "$F")) || NL=""
cl_check "the remaining 3 elect a leader (m${NL:-none})" test -n "$NL"
cl_check "the remaining 3 take writes" cl_wait_put 10 f5/two-down v-two "${NL:-$(others "$L" "$F" | head -1)}"
cl_start "$L" existing; cl_start "$F" existing
cl_check "the killed members catch up after restart" \
    eval 'cl_wait_value 30 "$L" f5/two-down v-two --consistency=s && cl_wait_value 30 "$F" f5/two-down v-two --consistency=s'
sleep 1

touch "$STOP"
end=$((SECONDS + 15))
while kill -0 "$HC_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
kill -0 "$HC_PID" 2>/dev/null && kill -KILL "$HC_PID"
{ wait "$HC_PID"; } 2>/dev/null
cat "$CL_DIR/histclient.out"
puts_ok=$(grep -c ' put .* ok$' "$HIST")
gets_ok=$(grep ' get ' "$HIST" | grep -vc 'unknown$')
cl_check "the load made progress ($puts_ok puts, $gets_ok gets acknowledged)" \
    test "$puts_ok" -ge 50 -a "$gets_ok" -ge 50
cl_check "the history is linearizable" "$CL_TOOLS/lincheck" "$HIST"
cl_log "total $((SECONDS - START))s"
cl_finish

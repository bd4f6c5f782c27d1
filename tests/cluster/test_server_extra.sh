#!/bin/bash
# test_server_extra — a 3-member TLS cluster: read-only txns are answered without a Raft
# entry (and serializable ones even by a member with no leader); the v3lock and v3election
# services (raw gRPC over curl) interoperate with etcdctl's lock and elect recipes; a
# removed member's id is never admitted again; `plinth --restore-snapshot` builds a new
# cluster from an `etcdctl snapshot save` file (and refuses a damaged one).
#
#   bash tests/cluster/test_server_extra.sh            (BUILD=/tmp/x for another build dir)
set -u
CL_HERE=$(dirname "$0"); [ -f "$CL_HERE/lib.sh" ] || CL_HERE=$CL_HERE/..
. "$CL_HERE/lib.sh"

cl_init extra 3 1 || { echo "# plinth-result: 0 passed, 1 failed"; exit 1; }
C=$CL_DIR/certs
[ -x "$PLINTH_BIN" ] || { cl_fail "server $PLINTH_BIN exists"; cl_finish; exit 1; }
cl_start_all
L=$(cl_wait_leader 30) || L=""
cl_check "a leader is elected" test -n "$L"
[ -n "$L" ] || { cl_finish; exit 1; }
cl_log "leader m$L"

raft_index() { # I -> the member's raft index (endpoint status)
    CL_CMD_TIMEOUT=2s cl_ctl "$1" endpoint status -w json 2>/dev/null |
        grep -o '"raftIndex":[0-9]*' | cut -d: -f2
}

# grpc_body I PATH FILE OUT: like cl_grpc, and keeps the reply body in OUT.
grpc_body() {
    local i=$1 path=$2 file=$3 body=$4 out
    out=$(curl -sS --http2 --max-time 10 --cacert "$C/ca.pem" --cert "$C/client.pem" \
        --key "$C/client-key.pem" -X POST -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary "@$file" "$(cl_curl "$i")$path" -D - -o "$body" 2>/dev/null | tr -d '\r')
    G_STATUS=$(echo "$out" | grep -i '^grpc-status:' | tail -1 | sed 's/^[^:]*: *//')
    G_MESSAGE=$(echo "$out" | grep -i '^grpc-message:' | tail -1 | sed 's/^[^:]*: *//')
    echo "# m$i $path -> grpc-status '${G_STATUS}' grpc-message '${G_MESSAGE}'"
}

# ---- read-only txns ---------------------------------------------------------------------
cl_check "put ro-a" test "$(cl_ctl "$L" put ro-a value-of-ro-a 2>&1)" = OK
F=$((L % 3 + 1))   # a follower
sleep 0.3
i0=$(raft_index "$L")
out=$(printf 'value("ro-a") = "value-of-ro-a"\n\nget ro-a\n\nget ro-b\n\n' | cl_ctl "$F" txn 2>&1)
cl_check "read-only txn on a follower takes the success branch" \
    test "$(echo "$out" | tr -s '\n' ' ')" = "SUCCESS ro-a value-of-ro-a "
out=$(printf 'value("ro-a") = "other"\n\nget ro-a\n\nget ro-a --rev=1\n\n' | cl_ctl "$L" txn 2>&1)
cl_check "read-only txn on the leader takes the failure branch" \
    test "$(echo "$out" | head -1)" = "FAILURE"
i1=$(raft_index "$L")
cl_log "raft index before $i0, after $i1"
cl_check "read-only txns add no Raft entry" test -n "$i0" -a "$i0" = "$i1"
out=$(printf 'value("ro-a") = "value-of-ro-a"\n\nput ro-b written\n\n\n' | cl_ctl "$F" txn 2>&1)
cl_check "a txn that writes still works" test "$(echo "$out" | head -1)" = SUCCESS
i2=$(raft_index "$L")
cl_check "... and goes through Raft" test -n "$i2" -a "$i2" -gt "$i1"

# ---- v3lock and v3election served by a follower, interoperating with etcdctl's recipes --------
cl_frame "$CL_DIR/lock.bin" '\x0a\x05ilock'                        # LockRequest{name "ilock"}
grpc_body "$F" /v3lockpb.Lock/Lock "$CL_DIR/lock.bin" "$CL_DIR/lock.out"
cl_check "Lock on a follower" test "$G_STATUS" = 0
LKEY=$(cl_ctl "$L" get --prefix ilock/ --keys-only 2>/dev/null | head -1)
cl_check "the lock key is ilock/<lease in hex>" bash -c "echo '$LKEY' | grep -qE '^ilock/[0-9a-f]+$'"
cl_check "the reply carries the key" grep -q "$LKEY" "$CL_DIR/lock.out"
CL_CTL_TIMEOUT=20 CL_CMD_TIMEOUT=15s cl_ctl "$L" lock ilock -- echo etcdctl-got-the-lock \
    >"$CL_DIR/ctl_lock.out" 2>&1 &
CTLPID=$!
sleep 1.5
cl_check "etcdctl lock waits while the service holds it" cl_not grep -q etcdctl-got "$CL_DIR/ctl_lock.out"
cl_frame "$CL_DIR/unlock.bin" "\\x0a\\x$(printf %02x ${#LKEY})$LKEY"   # UnlockRequest{key}
grpc_body "$F" /v3lockpb.Lock/Unlock "$CL_DIR/unlock.bin" "$CL_DIR/unlock.out"
cl_check "Unlock" test "$G_STATUS" = 0
wait $CTLPID
cl_check "etcdctl lock gets it after Unlock" grep -q etcdctl-got-the-lock "$CL_DIR/ctl_lock.out"

cl_frame "$CL_DIR/camp.bin" '\x0a\x06ielect\x1a\x0cfirst-leader'   # CampaignRequest{name, value}
grpc_body "$F" /v3electionpb.Election/Campaign "$CL_DIR/camp.bin" "$CL_DIR/camp.out"
cl_check "Campaign on a follower" test "$G_STATUS" = 0
out=$(timeout 3 env ETCDCTL_API=3 "$ETCDCTL" --endpoints="$(cl_curl "$L")" --cacert="$C/ca.pem" \
    --cert="$C/client.pem" --key="$C/client-key.pem" elect -l ielect 2>&1)
cl_check "etcdctl elect -l sees the campaigned leader" bash -c "echo '$out' | grep -qx first-leader"
cl_frame "$CL_DIR/leader.bin" '\x0a\x06ielect'
grpc_body "$L" /v3electionpb.Election/Leader "$CL_DIR/leader.bin" "$CL_DIR/leader.out"
cl_check "Leader answers with the value" grep -q first-leader "$CL_DIR/leader.out"
cl_frame "$CL_DIR/leader2.bin" '\x0a\x07nobody!'
grpc_body "$L" /v3electionpb.Election/Leader "$CL_DIR/leader2.bin" "$CL_DIR/leader2.out"
cl_check "Leader of an empty election: election: no leader" \
    test "$G_STATUS" = 2 -a "$G_MESSAGE" = "election: no leader"

# ---- a removed member's id is never admitted again ----------------------------------------
add=$(cl_ctl "$L" member add m4 --peer-urls="$(cl_purl 4)" 2>&1)
cl_check "member add m4" bash -c "echo '$add' | grep -q 'added to cluster'"
M4ID=$(echo "$add" | awk '/added to cluster/ {print $2}')
cl_start 4 existing "$(cl_initial_cluster 1 2 3 4)"
cl_check "m4 catches up" cl_wait_value 20 4 ro-a value-of-ro-a --consistency=s
cl_check "member remove m4" bash -c "$(declare -f cl_ctl); ETCDCTL=$ETCDCTL CL_DIR=$CL_DIR; $(declare -p CL_CPORT); $(declare -f cl_curl); cl_ctl $L member remove $M4ID 2>&1 | grep -q removed"
for i in $(seq 1 50); do cl_alive 4 || break; sleep 0.1; done
cl_check "the removed member stops" cl_not cl_alive 4
cl_start 4 existing "$(cl_initial_cluster 1 2 3 4)"   # on its old data dir
sleep 2
if cl_alive 4; then
    cl_check "m4 on its old data dir is not served by the cluster" \
        bash -c "grep -q 'ignoring peer traffic from $M4ID' '$CL_DIR'/m[123].log"
    cl_kill 4
else
    cl_check "m4 on its old data dir refuses to start" grep -q 'was removed from the cluster' "$CL_DIR/m4.log"
fi
cl_check "member list still has 3 members" test "$(cl_ctl "$L" member list 2>/dev/null | wc -l)" = 3
cl_check "writes go on" test "$(cl_ctl "$L" put after-m4 1 2>&1)" = OK
out=$(cl_ctl "$L" member add m4 --peer-urls="$(cl_purl 4)" 2>&1)
echo "# $out"
cl_check "adding m4 again with the same peer URL is refused (its id was removed)" \
    bash -c "echo '$out' | grep -q 'was removed from the cluster and is never reused'"

# ---- snapshot for the restore below ------------------------------------------------------------
SNAP=$CL_DIR/snap.db
OLDCID=$(cl_ctl "$L" endpoint status -w json 2>/dev/null | grep -o '"cluster_id":[0-9]*')
cl_check "snapshot save" bash -c "$ETCDCTL --endpoints=$(cl_curl "$L") --cacert=$C/ca.pem --cert=$C/client.pem --key=$C/client-key.pem snapshot save $SNAP >/dev/null 2>&1 && [ -s $SNAP ]"

# A member alone (the two others killed) has no leader: a serializable read-only txn is
# still answered from its store, a linearizable one fails with "no leader".
# TxnRequest{success: [RequestOp{request_range: RangeRequest{key "ro-a", serializable}}]}
cl_frame "$CL_DIR/txn_s.bin" '\x12\x0a\x0a\x08\x0a\x04ro-a\x38\x01'
cl_frame "$CL_DIR/txn_l.bin" '\x12\x08\x0a\x06\x0a\x04ro-a'
for i in "${CL_MEMBERS[@]}"; do [ "$i" != "$F" ] && cl_kill "$i"; done
sleep 2.5
grpc_body "$F" /etcdserverpb.KV/Txn "$CL_DIR/txn_s.bin" "$CL_DIR/txn_s.out"
cl_check "serializable read-only txn without a leader answers" test "$G_STATUS" = 0
cl_check "... with the value" grep -q value-of-ro-a "$CL_DIR/txn_s.out"
grpc_body "$F" /etcdserverpb.KV/Txn "$CL_DIR/txn_l.bin" "$CL_DIR/txn_l.out"
cl_check "linearizable read-only txn without a leader fails" \
    test "$G_STATUS" = 14 -a "$G_MESSAGE" = "etcdserver: no leader"

# ---- plinth --restore-snapshot: a new cluster from the snapshot file --------------------------
cl_kill "$F"
for i in 1 2 3; do mv "$CL_DIR/m$i.data" "$CL_DIR/m$i.data.old"; mv "$CL_DIR/m$i.log" "$CL_DIR/m$i.log.old"; done
cp "$SNAP" "$CL_DIR/bad.db"
printf 'X' | dd of="$CL_DIR/bad.db" bs=1 seek=5000 conv=notrunc 2>/dev/null
CL_EXTRA_FLAGS="--restore-snapshot $CL_DIR/bad.db" cl_start 1 new
for i in $(seq 1 30); do cl_alive 1 || break; sleep 0.1; done
cl_check "a damaged snapshot is refused" grep -q "snapshot file integrity check failed" "$CL_DIR/m1.log"
cl_kill 1
rm -rf "$CL_DIR/m1.data"; mv "$CL_DIR/m1.log" "$CL_DIR/m1.log.bad"
CL_TOKEN="restored-$CL_TOKEN"
for i in 1 2 3; do CL_EXTRA_FLAGS="--restore-snapshot $SNAP" cl_start "$i" new; done
L2=$(cl_wait_leader 30) || L2=""
cl_check "the restored cluster elects a leader" test -n "$L2"
cl_check "it has the snapshot's data" cl_wait_value 10 "${L2:-1}" ro-a value-of-ro-a
cl_check "... on every member" bash -c "$(declare -f cl_ctl cl_get cl_curl); $(declare -p CL_CPORT); ETCDCTL=$ETCDCTL; CL_DIR=$CL_DIR; for i in 1 2 3; do [ \"\$(cl_get \$i ro-b)\" = written ] || exit 1; done"
cl_check "its member list is --initial-cluster" test "$(cl_ctl "${L2:-1}" member list 2>/dev/null | wc -l)" = 3
cl_check "writes work" test "$(cl_ctl "${L2:-1}" put after-restore 1 2>&1)" = OK
NEWCID=$(cl_ctl "${L2:-1}" endpoint status -w json 2>/dev/null | grep -o '"cluster_id":[0-9]*')
cl_log "cluster id before $OLDCID, after $NEWCID"
cl_check "the cluster id is new" test -n "$NEWCID" -a -n "$OLDCID" -a "$NEWCID" != "$OLDCID"
cl_stop 2
CL_EXTRA_FLAGS="--restore-snapshot $SNAP" cl_start 2 new
for i in $(seq 1 30); do cl_alive 2 || break; sleep 0.1; done
cl_check "restoring into a data dir in use is refused" grep -q "already holds a member" "$CL_DIR/m2.log"

# ---- members stop cleanly with a lock waiter and an observer open (make asan: no leak) -------
cl_frame "$CL_DIR/lock2.bin" '\x0a\x04shut'
cl_wait_put 15 before-shut 1 1   # m2 is stopped: m1 and m3 go on (a new leader if m2 led)
grpc_body 1 /v3lockpb.Lock/Lock "$CL_DIR/lock2.bin" "$CL_DIR/lock2.out"
cl_check "Lock shut" test "$G_STATUS" = 0
W=3
curl -sS --http2 --max-time 20 --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client-key.pem" \
    -X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary "@$CL_DIR/lock2.bin" \
    "$(cl_curl "$W")/v3lockpb.Lock/Lock" -o /dev/null 2>/dev/null &
CURL1=$!
cl_frame "$CL_DIR/obs.bin" '\x0a\x06ielect'
curl -sS --http2 --max-time 20 --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client-key.pem" \
    -X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary "@$CL_DIR/obs.bin" \
    "$(cl_curl "$W")/v3electionpb.Election/Observe" -o /dev/null 2>/dev/null &
CURL2=$!
sleep 1
for i in 1 3; do cl_stop "$i"; done
kill "$CURL1" "$CURL2" 2>/dev/null; wait "$CURL1" "$CURL2" 2>/dev/null
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$CL_DIR"/m*.log; then
    grep -hE -A12 'runtime error|AddressSanitizer|LeakSanitizer' "$CL_DIR"/m*.log | head -60
    cl_check "no sanitizer reports in member logs" false
else
    cl_check "no sanitizer reports in member logs" true
fi

cl_finish

# lib.sh — shared helpers for cluster suites: TLS members on random loopback ports, a
# fault proxy between peers, leader lookup, checks and the result line. Source it from bash.
#
#   . tests/cluster/lib.sh
#   cl_init faults 3          # temp dir, certs, ports for 3 members (+ spares), trap EXIT
#   cl_proxy_start            # optional: peers talk through faultproxy (before cl_start)
#   cl_start_all              # start m1..mN as a new cluster; cl_wait_leader 20
#   cl_check "what" cmd...    # one assertion: "ok N - what" / "not ok N - what"
#   cl_finish                 # prints "# plinth-result: P passed, F failed"; exit status
#
# Environment: PLINTH_BIN (server, default build/bin/plinth; /usr/bin/etcd works too),
# BUILD (build dir), ETCDCTL (default etcdctl), CL_HB / CL_ET (heartbeat and election ms),
# CL_KEEP=1 keeps the temp dir. Only processes started here are ever signalled.

CL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$CL_ROOT/$BUILD ;; esac
PLINTH_BIN=${PLINTH_BIN:-$BUILD/bin/plinth}
CL_TOOLS=$BUILD/tests/tools
ETCDCTL=${ETCDCTL:-etcdctl}
export ETCDCTL_API=3
CL_HB=${CL_HB:-100}
CL_ET=${CL_ET:-1000}

CL_PASS=0; CL_FAIL=0; CL_N=0
CL_PIDS=()            # every process started here (members, proxy, load)
CL_MEMBERS=()         # indices of the members currently in the cluster
declare -a CL_CPORT CL_PPORT CL_APORT CL_PID

cl_log() { echo "# $(date +%H:%M:%S.%N | cut -c1-12) $*"; }

cl_ok()   { CL_N=$((CL_N + 1)); CL_PASS=$((CL_PASS + 1)); echo "ok $CL_N - $1"; }
cl_fail() { CL_N=$((CL_N + 1)); CL_FAIL=$((CL_FAIL + 1)); echo "not ok $CL_N - $1"; }

# cl_check DESC CMD...: runs CMD; success is one passed check, failure one failed check.
cl_check() {
    local desc=$1; shift
    if "$@"; then cl_ok "$desc"; else cl_fail "$desc"; fi
}

cl_not() { ! "$@"; }

cl_finish() {
    echo "# plinth-result: $CL_PASS passed, $CL_FAIL failed"
    [ "$CL_FAIL" = 0 ]
}

cl_port_free() { # port -> 0 when nothing listens on it
    ! ss -Htln "sport = :$1" 2>/dev/null | grep -q . &&
        ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

# cl_pick_port: sets CL_PORT to a free port from the per-run random range (no subshell:
# the counter must advance in this shell).
CL_NEXT_PORT=0
cl_pick_port() {
    local p tries=0
    while [ $tries -lt 200 ]; do
        p=$((CL_PORT_BASE + CL_NEXT_PORT)); CL_NEXT_PORT=$((CL_NEXT_PORT + 1))
        if [ $p -gt 32700 ]; then CL_PORT_BASE=20000; CL_NEXT_PORT=$((RANDOM % 1000)); continue; fi
        if cl_port_free "$p"; then CL_PORT=$p; return 0; fi
        tries=$((tries + 1))
    done
    return 1
}

# cl_init TAG N [SPARES]: temp dir, certificates for m1..m(N+SPARES), ports, cleanup trap.
cl_init() {
    local tag=$1 n=$2 spares=${3:-1} i
    CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/plinth-$tag-XXXXXX")
    CL_SIZE=$n
    CL_MAX=$((n + spares))
    CL_TOKEN="$tag-$$-$RANDOM"
    # Below Linux's ephemeral range (32768+), where outgoing connections take ports.
    CL_PORT_BASE=$((20000 + ($$ * 37 + RANDOM) % 12000))
    trap cl_cleanup EXIT
    trap 'exit 130' INT TERM
    local names="client"
    for i in $(seq 1 $CL_MAX); do names="$names m$i"; done
    if ! "$CL_ROOT/scripts/certs.sh" "$CL_DIR/certs" $names untrusted-dummy >/dev/null 2>&1; then
        echo "cl_init: could not make certificates" >&2; return 1
    fi
    rm -f "$CL_DIR/certs/untrusted-dummy"*
    for i in $(seq 1 $CL_MAX); do
        cl_pick_port || return 1; CL_CPORT[$i]=$CL_PORT
        cl_pick_port || return 1; CL_PPORT[$i]=$CL_PORT
        CL_APORT[$i]=${CL_PPORT[$i]}
    done
    CL_MEMBERS=($(seq 1 $n))
    cl_log "dir $CL_DIR, server $PLINTH_BIN"
}

cl_cleanup() {
    local rc=$? p
    exec 2>/dev/null   # bash's "Killed" notices for our own children are noise
    for p in "${CL_PIDS[@]}"; do
        # Only our own children that are still the program we started (pids are reused).
        if kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$CL_DIR"; then
            kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null
        fi
    done
    for p in "${CL_PIDS[@]}"; do { wait "$p"; } 2>/dev/null; done
    if [ -n "${CL_DIR:-}" ] && [ -d "$CL_DIR" ]; then
        if [ "${CL_KEEP:-0}" = 1 ] || [ "$CL_FAIL" != 0 ] || [ $rc != 0 ]; then
            for p in "$CL_DIR"/m*.log; do
                [ -f "$p" ] || continue
                echo "# --- last lines of $p"; tail -n 15 "$p" | sed 's/^/#   /'
            done
            echo "# kept $CL_DIR"
        else
            rm -rf "$CL_DIR"
        fi
    fi
}

cl_curl() { echo "https://127.0.0.1:${CL_CPORT[$1]}"; }
cl_purl() { echo "https://127.0.0.1:${CL_APORT[$1]}"; }

cl_initial_cluster() { # indices... -> m1=https://..,m2=..
    local i s=""
    for i in "$@"; do s="$s${s:+,}m$i=$(cl_purl "$i")"; done
    echo "$s"
}

# Client URLs of the current members, comma separated (also written to $CL_DIR/endpoints).
cl_endpoints() {
    local i s=""
    for i in "${CL_MEMBERS[@]}"; do s="$s${s:+,}$(cl_curl "$i")"; done
    echo "$s" >"$CL_DIR/endpoints.tmp" && mv "$CL_DIR/endpoints.tmp" "$CL_DIR/endpoints"
    echo "$s"
}

# cl_start I STATE [INITIAL_CLUSTER]: starts member I (new or existing cluster).
cl_start() {
    local i=$1 state=${2:-new} ic=${3:-} extra=${CL_EXTRA_FLAGS:-}
    [ -n "$ic" ] || ic=$(cl_initial_cluster "${CL_MEMBERS[@]}")
    local c=$CL_DIR/certs
    echo "$PLINTH_BIN --name m$i --data-dir $CL_DIR/m$i.data ... (state $state)" >>"$CL_DIR/m$i.log"
    # shellcheck disable=SC2086
    "$PLINTH_BIN" --name "m$i" --data-dir "$CL_DIR/m$i.data" \
        --listen-client-urls "$(cl_curl "$i")" --advertise-client-urls "$(cl_curl "$i")" \
        --listen-peer-urls "https://127.0.0.1:${CL_PPORT[$i]}" \
        --initial-advertise-peer-urls "$(cl_purl "$i")" \
        --initial-cluster "$ic" --initial-cluster-state "$state" \
        --initial-cluster-token "$CL_TOKEN" \
        --heartbeat-interval "$CL_HB" --election-timeout "$CL_ET" \
        --cert-file "$c/m$i.pem" --key-file "$c/m$i-key.pem" --trusted-ca-file "$c/ca.pem" \
        --client-cert-auth \
        --peer-cert-file "$c/m$i.pem" --peer-key-file "$c/m$i-key.pem" \
        --peer-trusted-ca-file "$c/ca.pem" --peer-client-cert-auth \
        $extra >>"$CL_DIR/m$i.log" 2>&1 &
    CL_PID[$i]=$!
    CL_PIDS+=("${CL_PID[$i]}")
}

# cl_start_all: starts the initial members as a new cluster. If a port was taken meanwhile
# (EADDRINUSE), every member is stopped, given fresh ports and started again (3 tries).
cl_start_all() {
    local i try bad
    for try in 1 2 3; do
        for i in "${CL_MEMBERS[@]}"; do cl_start "$i" new; done
        cl_endpoints >/dev/null
        sleep 1
        bad=0
        for i in "${CL_MEMBERS[@]}"; do
            if ! cl_alive "$i" && grep -qi "address already in use" "$CL_DIR/m$i.log"; then bad=1; fi
        done
        [ $bad = 0 ] && return 0
        cl_log "a port was taken; starting the members again on new ports"
        for i in "${CL_MEMBERS[@]}"; do
            cl_kill "$i"
            rm -rf "$CL_DIR/m$i.data"
            mv "$CL_DIR/m$i.log" "$CL_DIR/m$i.log.try$try"
            cl_pick_port || return 1; CL_CPORT[$i]=$CL_PORT
            cl_pick_port || return 1; CL_PPORT[$i]=$CL_PORT
            if [ -n "${CL_FP_PID:-}" ]; then
                # The proxy forwards to the old peer ports: restart it on the new ones.
                kill -KILL "$CL_FP_PID" 2>/dev/null; { wait "$CL_FP_PID"; } 2>/dev/null
                CL_FP_RESTART=1
            else
                CL_APORT[$i]=${CL_PPORT[$i]}
            fi
        done
        if [ "${CL_FP_RESTART:-0}" = 1 ]; then CL_FP_RESTART=0; cl_proxy_start || return 1; fi
    done
    return 1
}

cl_alive() { [ -n "${CL_PID[$1]:-}" ] && kill -0 "${CL_PID[$1]}" 2>/dev/null; }

# cl_signal I SIG
cl_signal() { cl_alive "$1" && kill -"$2" "${CL_PID[$1]}"; }

# cl_kill I: SIGKILL and reap.
cl_kill() {
    cl_alive "$1" || return 0
    kill -KILL "${CL_PID[$1]}" 2>/dev/null
    { wait "${CL_PID[$1]}"; } 2>/dev/null
    return 0
}

# cl_stop I [TIMEOUT]: SIGTERM, wait, then SIGKILL.
cl_stop() {
    local i=$1 to=${2:-10} end
    cl_alive "$i" || return 0
    kill -TERM "${CL_PID[$i]}" 2>/dev/null
    end=$((SECONDS + to))
    while cl_alive "$i" && [ $SECONDS -lt $end ]; do sleep 0.1; done
    cl_kill "$i"
}

# cl_ctl I ARGS...: etcdctl against member I only, with TLS and short deadlines.
cl_ctl() {
    local i=$1; shift
    local c=$CL_DIR/certs
    timeout -k 2 "${CL_CTL_TIMEOUT:-15}" "$ETCDCTL" --endpoints="$(cl_curl "$i")" \
        --cacert="$c/ca.pem" --cert="$c/client.pem" --key="$c/client-key.pem" \
        --dial-timeout=2s --command-timeout="${CL_CMD_TIMEOUT:-5s}" "$@"
}

# cl_ctl_any ARGS...: etcdctl against every current member (the client fails over).
cl_ctl_any() {
    local c=$CL_DIR/certs
    timeout -k 2 "${CL_CTL_TIMEOUT:-15}" "$ETCDCTL" --endpoints="$(cl_endpoints)" \
        --cacert="$c/ca.pem" --cert="$c/client.pem" --key="$c/client-key.pem" \
        --dial-timeout=2s --command-timeout="${CL_CMD_TIMEOUT:-5s}" "$@"
}

# cl_status I: echoes "member_id leader_id raft_term" from member I (serializable status).
cl_status() {
    local js
    js=$(CL_CTL_TIMEOUT=5 CL_CMD_TIMEOUT=2s cl_ctl "$1" endpoint status -w json 2>/dev/null) || return 1
    local mid lid term
    mid=$(echo "$js" | grep -o '"member_id":[0-9]*' | head -1 | cut -d: -f2)
    lid=$(echo "$js" | grep -o '"leader":[0-9]*' | head -1 | cut -d: -f2)
    term=$(echo "$js" | grep -o '"raft_term":[0-9]*' | head -1 | cut -d: -f2)
    [ -n "$mid" ] || return 1
    echo "$mid ${lid:-0} ${term:-0}"
}

# cl_leader_once [INDICES...]: echoes the index of the member that a majority of the
# given members (default: all current ones) name as leader and that names itself.
cl_leader_once() {
    local set=("$@") i st mid lid votes=0 cand="" total
    [ ${#set[@]} -gt 0 ] || set=("${CL_MEMBERS[@]}")
    total=${#CL_MEMBERS[@]}
    declare -A id_of lead_of
    for i in "${set[@]}"; do
        cl_alive "$i" || continue
        st=$(cl_status "$i") || continue
        read -r mid lid _ <<<"$st"
        id_of[$i]=$mid; lead_of[$i]=$lid
    done
    for i in "${!id_of[@]}"; do
        if [ "${lead_of[$i]}" = "${id_of[$i]}" ]; then cand=$i; fi
    done
    [ -n "$cand" ] || return 1
    for i in "${!lead_of[@]}"; do
        [ "${lead_of[$i]}" = "${id_of[$cand]}" ] && votes=$((votes + 1))
    done
    [ $votes -gt $((total / 2)) ] || return 1
    echo "$cand"
}

# cl_wait_leader TIMEOUT [EXCLUDE]: echoes the leader's index once there is one (and it
# is not EXCLUDE); returns 1 on timeout.
cl_wait_leader() {
    local to=$1 not=${2:-} end=$((SECONDS + $1)) l
    while [ $SECONDS -lt $end ]; do
        if l=$(cl_leader_once) && [ "$l" != "$not" ]; then echo "$l"; return 0; fi
        sleep 0.2
    done
    return 1
}

# cl_wait_put TIMEOUT KEY VALUE [I]: retries a put (on member I, else any) until it is acknowledged.
cl_wait_put() {
    local to=$1 k=$2 v=$3 i=${4:-} end=$(($SECONDS + $1))
    while [ $SECONDS -lt $end ]; do
        if [ -n "$i" ]; then
            CL_CMD_TIMEOUT=2s cl_ctl "$i" put "$k" "$v" >/dev/null 2>&1 && return 0
        else
            CL_CMD_TIMEOUT=2s cl_ctl_any put "$k" "$v" >/dev/null 2>&1 && return 0
        fi
        sleep 0.2
    done
    return 1
}

# cl_get I KEY [--consistency=s]: echoes the value (empty when absent); fails on error.
cl_get() {
    local i=$1 k=$2; shift 2
    cl_ctl "$i" get "$k" --print-value-only "$@"
}

# cl_wait_value TIMEOUT I KEY VALUE [ARGS]: until member I returns VALUE for KEY.
cl_wait_value() {
    local to=$1 i=$2 k=$3 v=$4 end=$((SECONDS + $1)) got; shift 4
    while [ $SECONDS -lt $end ]; do
        got=$(CL_CMD_TIMEOUT=2s cl_get "$i" "$k" "$@" 2>/dev/null) && [ "$got" = "$v" ] && return 0
        sleep 0.2
    done
    return 1
}

# ---- fault proxy between peers -------------------------------------------------------
# Every member advertises a proxy port as its peer URL; the proxy forwards to the member's
# real peer port and can drop or stall the links between chosen members.
cl_proxy_start() {
    local i links=()
    [ -x "$CL_TOOLS/faultproxy" ] || { echo "cl_proxy_start: $CL_TOOLS/faultproxy missing" >&2; return 1; }
    for i in $(seq 1 $CL_MAX); do
        cl_pick_port || return 1; CL_APORT[$i]=$CL_PORT
        links+=(--link "m$i:${CL_APORT[$i]}:${CL_PPORT[$i]}")
    done
    CL_FP_GEN=0
    : >"$CL_DIR/fp.ctl"
    "$CL_TOOLS/faultproxy" --ctl "$CL_DIR/fp.ctl" "${links[@]}" --log "$CL_DIR/faultproxy.log" &
    CL_FP_PID=$!
    CL_PIDS+=("$CL_FP_PID")
    local end=$((SECONDS + 5))
    while [ $SECONDS -lt $end ]; do
        grep -q "ready" "$CL_DIR/faultproxy.log" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# cl_proxy_rules RULE...: replaces the proxy's rules ("drop m1 *", "stall m1 m2"; none
# heals) and waits until the proxy has applied them.
cl_proxy_rules() {
    local r end
    CL_FP_GEN=$((CL_FP_GEN + 1))
    { echo "gen $CL_FP_GEN"; for r in "$@"; do echo "$r"; done; } >"$CL_DIR/fp.ctl.tmp"
    mv "$CL_DIR/fp.ctl.tmp" "$CL_DIR/fp.ctl"
    end=$((SECONDS + 5))
    while [ $SECONDS -lt $end ]; do
        [ "$(cat "$CL_DIR/fp.ctl.ack" 2>/dev/null)" = "$CL_FP_GEN" ] && return 0
        sleep 0.02
    done
    return 1
}

# cl_isolate I: drop every link between member I and the others.
cl_isolate() { cl_proxy_rules "drop m$1 *"; }
cl_heal() { cl_proxy_rules; }

# ---- raw gRPC over h2 with curl ----------------------------------------------------------
# cl_grpc I PATH FILE: posts FILE (a framed gRPC message) to member I's PATH over TLS h2 with
# the client certificate; sets G_STATUS, G_MESSAGE (trailers, or headers for trailers-only
# replies) and G_MS (elapsed milliseconds).
cl_grpc() {
    local i=$1 path=$2 file=$3 out t0
    t0=$(date +%s%N)
    out=$(curl -sS --http2 --max-time 10 --cacert "$CL_DIR/certs/ca.pem" \
        --cert "$CL_DIR/certs/client.pem" --key "$CL_DIR/certs/client-key.pem" -X POST \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary "@$file" "$(cl_curl "$i")$path" -D - -o /dev/null 2>/dev/null | tr -d '\r')
    G_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    G_STATUS=$(echo "$out" | grep -i '^grpc-status:' | tail -1 | sed 's/^[^:]*: *//')
    G_MESSAGE=$(echo "$out" | grep -i '^grpc-message:' | tail -1 | sed 's/^[^:]*: *//')
    echo "# m$i $path -> grpc-status '${G_STATUS}' grpc-message '${G_MESSAGE}' (${G_MS} ms)"
}

# cl_frame FILE FORMAT [ARGS]: writes one uncompressed gRPC message whose body is
# printf FORMAT ARGS (escapes like \x0a allowed).
cl_frame() {
    local f=$1; shift
    local body n; body=$(mktemp)
    # shellcheck disable=SC2059
    printf "$@" >"$body"
    n=$(stat -c %s "$body")
    printf '\x00' >"$f"
    printf "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))" >>"$f"
    cat "$body" >>"$f"; rm -f "$body"
}

#!/bin/bash
# cluster.sh — forms, inspects and stops a local TLS cluster of plinth (or etcd) members
# on loopback, for people trying plinth and for the benchmark and cluster test scripts.
#
#   scripts/cluster.sh start 3|5 DIR [--bin PATH] [--heartbeat MS] [--election MS] [-- SERVER-FLAGS...]
#   scripts/cluster.sh stop DIR
#   scripts/cluster.sh status DIR
#   scripts/cluster.sh restart DIR NAME      (starts member NAME again from its saved command)
#   scripts/cluster.sh kill DIR NAME [SIG]   (signals member NAME, default KILL)
#
# What start leaves in DIR:
#   certs/           ca.pem, m1.pem.. (server + peer certificate per member), client.pem
#   mN/              data directory of member mN;  mN.log its log
#   mN.sh            the exact command that started mN (run it again to restart the member)
#   pids             "name pid" per line: the processes this script started (stop kills only these)
#   members          "name client-url peer-url metrics-url" per line
#   endpoints        the client URLs, comma separated
#   env              ETCDCTL_* variables: `. DIR/env; etcdctl member list`
# The server binary defaults to build/bin/plinth; --bin /usr/bin/etcd runs etcd with the
# same flags (plinth takes etcd's flag names).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CERTS_SH=${PLINTH_CERTS_SH:-$ROOT/scripts/certs.sh}

die() { echo "cluster: $*" >&2; exit 1; }

port_free() { # port -> 0 when nothing listens on 127.0.0.1:port
    ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

pid_alive() { # pid datadir -> 0 when pid is alive and is the member using datadir
    local pid=$1 dd=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dd"
}

# The etcdctl flags that reach this cluster.
ctl_flags() { # dir
    local d=$1
    echo "--endpoints=$(cat "$d/endpoints") --cacert=$d/certs/ca.pem --cert=$d/certs/client.pem --key=$d/certs/client-key.pem"
}

wait_health() { # dir timeout_s -> 0 when every member answers a linearizable read
    local d=$1 to=$2 end=$((SECONDS + $2)) ok
    while [ $SECONDS -lt $end ]; do
        ok=1
        for url in $(tr ',' ' ' <"$d/endpoints"); do
            ETCDCTL_API=3 etcdctl --endpoints="$url" --cacert="$d/certs/ca.pem" \
                --cert="$d/certs/client.pem" --key="$d/certs/client-key.pem" \
                --dial-timeout=1s --command-timeout=2s endpoint health >/dev/null 2>&1 || { ok=0; break; }
        done
        [ $ok = 1 ] && return 0
        # a member that exited will never become healthy
        while read -r name pid; do
            pid_alive "$pid" "$d/$name" || { echo "cluster: member $name exited; last lines of $d/$name.log:" >&2
                tail -n 15 "$d/$name.log" >&2; return 1; }
        done <"$d/pids"
        sleep 0.2
    done
    echo "cluster: not healthy after ${to}s (logs: $d/m*.log)" >&2
    return 1
}

launch() { # dir name -> starts the member from DIR/NAME.sh, records its pid
    local d=$1 n=$2 i
    rm -f "$d/$n.pid"
    setsid bash "$d/$n.sh" </dev/null >>"$d/$n.log" 2>&1 &
    for i in $(seq 1 100); do [ -s "$d/$n.pid" ] && break; sleep 0.02; done
    [ -s "$d/$n.pid" ] || die "member $n did not start (see $d/$n.log)"
    ( flock 9
      { grep -v "^$n " "$d/pids" 2>/dev/null; echo "$n $(cat "$d/$n.pid")"; } >"$d/pids.new"
      mv "$d/pids.new" "$d/pids" ) 9>"$d/pids.lock"
}

cmd_start() {
    local n=${1:-}; shift || true
    local d=${1:-}; shift || true
    [ "$n" = 3 ] || [ "$n" = 5 ] || [ "$n" = 1 ] || die "start: member count must be 1, 3 or 5 (got '$n')"
    [ -n "$d" ] || die "start: missing DIR"
    local bin=${PLINTH_BIN:-$ROOT/build/bin/plinth} hb=100 el=1000 extra=()
    while [ $# -gt 0 ]; do
        case $1 in
            --bin) bin=$2; shift 2 ;;
            --bin=*) bin=${1#--bin=}; shift ;;
            --heartbeat) hb=$2; shift 2 ;;
            --election) el=$2; shift 2 ;;
            --) shift; extra=("$@"); break ;;
            *) die "start: unknown option $1" ;;
        esac
    done
    [ -x "$bin" ] || bin=$(command -v "$bin" 2>/dev/null) || true
    [ -n "$bin" ] && [ -x "$bin" ] || die "start: server binary not found (build it with 'make', or pass --bin PATH)"
    [ -x "$CERTS_SH" ] || die "start: $CERTS_SH is missing"
    if [ -e "$d/pids" ]; then
        while read -r name pid; do
            pid_alive "$pid" "$d/$name" && die "start: $d already has running members; run: $0 stop $d"
        done <"$d/pids"
    fi
    mkdir -p "$d" || die "start: cannot create $d"
    d=$(cd "$d" && pwd)
    rm -rf "$d"/m[0-9]* "$d/pids" "$d/members" "$d/endpoints" "$d/env"

    local names=() i
    for i in $(seq 1 "$n"); do names+=("m$i"); done
    "$CERTS_SH" "$d/certs" "${names[@]}" client >"$d/certs.log" 2>&1 ||
        { cat "$d/certs.log" >&2; die "start: making certificates failed"; }

    # three ports per member from a random base; retry the base when one is taken, and
    # start over on new ports when another program grabs one before a member binds it
    local attempt
    for attempt in 1 2 3 4 5; do
        local base tries ok p
        for tries in $(seq 1 50); do
            base=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 40000))
            ok=1
            for p in $(seq "$base" $((base + 3 * n - 1))); do port_free "$p" || { ok=0; break; }; done
            [ $ok = 1 ] && break
        done
        [ $ok = 1 ] || die "start: no free ports found"

        local initial="" eps=""
        for i in $(seq 1 "$n"); do
            initial+="${initial:+,}m$i=https://127.0.0.1:$((base + 3 * (i - 1) + 1))"
            eps+="${eps:+,}https://127.0.0.1:$((base + 3 * (i - 1)))"
        done
        echo "$eps" >"$d/endpoints"
        : >"$d/members"
        local token="plinth-local-$base" c pp mp name
        for i in $(seq 1 "$n"); do
            name=m$i; c=$((base + 3 * (i - 1))); pp=$((c + 1)); mp=$((c + 2))
            echo "$name https://127.0.0.1:$c https://127.0.0.1:$pp http://127.0.0.1:$mp" >>"$d/members"
            local args=("$bin" --name "$name" --data-dir "$d/$name"
                --listen-client-urls "https://127.0.0.1:$c" --advertise-client-urls "https://127.0.0.1:$c"
                --listen-peer-urls "https://127.0.0.1:$pp" --initial-advertise-peer-urls "https://127.0.0.1:$pp"
                --listen-metrics-urls "http://127.0.0.1:$mp"
                --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "$token"
                --heartbeat-interval "$hb" --election-timeout "$el"
                --cert-file "$d/certs/$name.pem" --key-file "$d/certs/$name-key.pem"
                --trusted-ca-file "$d/certs/ca.pem" --client-cert-auth
                --peer-cert-file "$d/certs/$name.pem" --peer-key-file "$d/certs/$name-key.pem"
                --peer-trusted-ca-file "$d/certs/ca.pem" --peer-client-cert-auth
                "${extra[@]}")
            # Restarting from this file rejoins the cluster: the data dir is kept, and both
            # plinth and etcd ignore --initial-cluster-state once a data dir exists.
            { echo "#!/bin/bash"
              echo "# member $name of the local cluster in $d (started by scripts/cluster.sh)"
              echo "echo \$\$ >'$d/$name.pid'"
              printf 'exec'; printf " %q" "${args[@]}"; echo
            } >"$d/$name.sh"
            chmod +x "$d/$name.sh"
        done
        : >"$d/pids"
        for name in "${names[@]}"; do launch "$d" "$name"; done
        if wait_health "$d" 30 2>"$d/health.err"; then
            rm -f "$d/health.err"
            break
        fi
        cmd_stop "$d" >/dev/null
        if [ "$attempt" -lt 5 ] && grep -qiE 'address already in use|cannot bind|bind:' "$d"/m*.log; then
            echo "cluster: a port was taken meanwhile; trying other ports" >&2
            rm -rf "$d"/m[0-9]* "$d/pids"
            continue
        fi
        cat "$d/health.err" >&2
        exit 1
    done
    { echo "export ETCDCTL_API=3"
      echo "export ETCDCTL_ENDPOINTS=$eps"
      echo "export ETCDCTL_CACERT=$d/certs/ca.pem"
      echo "export ETCDCTL_CERT=$d/certs/client.pem"
      echo "export ETCDCTL_KEY=$d/certs/client-key.pem"
    } >"$d/env"
    echo "cluster: $n members of $(basename "$bin") healthy in $d"
    echo "cluster: data in $d/m*/, logs in $d/m*.log"
    echo "cluster: use it with:"
    echo "  etcdctl $(ctl_flags "$d") member list"
    echo "  (or: . $d/env; etcdctl member list)"
    echo "cluster: stop it with: $0 stop $d"
}

cmd_stop() {
    local d=${1:-}
    [ -n "$d" ] && [ -d "$d" ] || die "stop: no such cluster directory '$d'"
    d=$(cd "$d" && pwd)
    [ -f "$d/pids" ] || { echo "cluster: nothing started in $d"; return 0; }
    local name pid left=() i
    while read -r name pid; do
        if pid_alive "$pid" "$d/$name"; then
            kill -CONT "$pid" 2>/dev/null   # a stopped member cannot handle SIGTERM
            kill -TERM "$pid" 2>/dev/null && left+=("$name:$pid")
        fi
    done <"$d/pids"
    for i in $(seq 1 50); do
        local still=()
        for e in "${left[@]}"; do pid_alive "${e#*:}" "$d/${e%%:*}" && still+=("$e"); done
        left=("${still[@]}")
        [ ${#left[@]} = 0 ] && break
        sleep 0.1
    done
    for e in "${left[@]}"; do kill -KILL "${e#*:}" 2>/dev/null; done
    echo "cluster: stopped the members in $d (data and logs kept there)"
}

cmd_status() {
    local d=${1:-}
    [ -n "$d" ] && [ -f "$d/members" ] || die "status: no cluster in '$d'"
    d=$(cd "$d" && pwd)
    local name c p m pid st
    printf '%-4s %-8s %-8s %s\n' NAME PID STATE CLIENT-URL
    while read -r name c p m; do
        pid=$(awk -v n="$name" '$1 == n { print $2 }' "$d/pids" 2>/dev/null)
        if pid_alive "$pid" "$d/$name"; then
            st=running
            grep -q '^State:.*stopped' "/proc/$pid/status" 2>/dev/null && st=stopped
        else st=exited; fi
        printf '%-4s %-8s %-8s %s\n' "$name" "${pid:--}" "$st" "$c"
    done <"$d/members"
    ETCDCTL_API=3 etcdctl $(ctl_flags "$d") --dial-timeout=1s --command-timeout=2s \
        endpoint status -w table 2>&1 || true
}

cmd_restart() {
    local d=${1:-} n=${2:-}
    [ -n "$d" ] && [ -f "$d/$n.sh" ] || die "restart: no member '$n' in '$d'"
    d=$(cd "$d" && pwd)
    local pid; pid=$(awk -v n="$n" '$1 == n { print $2 }' "$d/pids")
    pid_alive "$pid" "$d/$n" && die "restart: member $n is still running (pid $pid)"
    launch "$d" "$n"
    echo "cluster: restarted $n (pid $(cat "$d/$n.pid"))"
}

cmd_kill() {
    local d=${1:-} n=${2:-} sig=${3:-KILL}
    [ -n "$d" ] && [ -f "$d/pids" ] || die "kill: no cluster in '$d'"
    d=$(cd "$d" && pwd)
    local pid; pid=$(awk -v n="$n" '$1 == n { print $2 }' "$d/pids")
    pid_alive "$pid" "$d/$n" || die "kill: member '$n' is not running"
    kill -"$sig" "$pid"
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    restart) shift; cmd_restart "$@" ;;
    kill) shift; cmd_kill "$@" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

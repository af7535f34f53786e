#!/usr/bin/env bash
# A local RabbitMQ node for development and tests. See --help.
set -euo pipefail

QTASKS_LOG_TAG=rabbitmq
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<EOF
Usage: deploy/rabbitmq.sh start|stop|status|wait|restart|ctl ARGS...

A local RabbitMQ node for development and tests, listening on 127.0.0.1 only.

  start    Start a node unless something already speaks AMQP on
           127.0.0.1:PORT (then that broker is reused and never stopped by
           this script). Waits until the node accepts AMQP connections.
  stop     Stop the node, but only if this script started it (by its recorded
           PID: SIGTERM, then SIGKILL of its process tree after ${STOP_GRACE}s),
           and epmd if starting the node started epmd.
  status   Print whether a broker answers on the port, and whether we started it.
           Exit status 0 when a broker answers, 3 otherwise.
  wait     Wait until 127.0.0.1:PORT accepts AMQP connections.
  restart  Stop and start again (only a node this script started). Durable
           queues and persistent messages survive.
  ctl ARGS Run rabbitmqctl ARGS against the node this script started, e.g.
           deploy/rabbitmq.sh ctl list_queues name messages consumers

Environment:
  QTASKS_RABBITMQ_PORT   AMQP port (default 5672). Erlang distribution port is
                         PORT+20000; node name qtasks-PORT@localhost.
  QTASKS_WAIT_TIMEOUT    seconds to wait for the broker (default 60).
  QTASKS_STOP_GRACE      seconds between SIGTERM and SIGKILL on stop (default 30).
  QTASKS_RABBITMQ_MANAGEMENT_PORT  when set, the node starts with the
                         management plugin (HTTP API and UI) on 127.0.0.1:THIS
                         PORT, e.g. 15672; default: no management plugin.
  QTASKS_RABBITMQ_TLS_PORT  when set, the node also listens for AMQP over TLS
                         (amqps) on 127.0.0.1:THIS PORT, with the test
                         certificates of deploy/tls-certs.sh (generated if
                         missing): server.pem for localhost/127.0.0.1, client
                         certificates verified against ca.pem when sent
                         (verify_peer, fail_if_no_peer_cert false), and SASL
                         EXTERNAL (rabbitmq_auth_mechanism_ssl, user name =
                         the certificate's CN). Default: no TLS listener.
  QTASKS_TLS_DIR         where the certificates are (default .run/tls).
  QTASKS_RABBITMQ_EXTRA_CONF  lines added to the node's rabbitmq.conf on start
                         (rabbitmq-cluster.sh sets cluster_partition_handling).
  QTASKS_RABBITMQ_COOKIE Erlang cookie written to the node's HOME on start
                         (nodes of a cluster share it; see rabbitmq-cluster.sh).

Files (under ${QTASKS_RUN_DIR}):
  rabbitmq-PORT/started.pid  PID of the server this script started
  rabbitmq-PORT/{data,log,etc,home}/  node files, owned by user rabbitmq.
      If user rabbitmq cannot traverse the repo's parent directories, these go
      to /var/tmp/qtasks-<hash of repo path>/rabbitmq-PORT/ instead
      (permissions outside the repo are never changed).
  epmd.pid  epmd, if one of our starts launched it; the last of our nodes
      to stop ends it.
URL: amqp://guest:guest@127.0.0.1:PORT/%2F
EOF
}

STOP_GRACE=${QTASKS_STOP_GRACE:-30}
PORT=${QTASKS_RABBITMQ_PORT:-5672}
WAIT_TIMEOUT=${QTASKS_WAIT_TIMEOUT:-60}
MGMT_PORT=${QTASKS_RABBITMQ_MANAGEMENT_PORT:-}
TLS_PORT=${QTASKS_RABBITMQ_TLS_PORT:-}
RMQ_USER=rabbitmq
RMQ_SBIN=/usr/lib/rabbitmq/bin
EPMD_PORT=4369

cmd=${1:-}
case $cmd in
    -h|--help|help) usage; exit 0 ;;
    start|stop|status|wait|restart|ctl) ;;
    "") usage >&2; exit 2 ;;
    *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac

validate_port QTASKS_RABBITMQ_PORT "$PORT" 45535
[[ $WAIT_TIMEOUT =~ ^[0-9]+$ ]] || die "QTASKS_WAIT_TIMEOUT must be a number of seconds"
[[ -z $MGMT_PORT ]] || validate_port QTASKS_RABBITMQ_MANAGEMENT_PORT "$MGMT_PORT"
[[ -z $TLS_PORT ]] || validate_port QTASKS_RABBITMQ_TLS_PORT "$TLS_PORT"
[[ -z $TLS_PORT || $TLS_PORT != "$PORT" ]] || die "QTASKS_RABBITMQ_TLS_PORT must differ from QTASKS_RABBITMQ_PORT"
DIST_PORT=$((PORT + 20000))
NODE="qtasks-${PORT}@localhost"
URL="amqp://guest:guest@127.0.0.1:${PORT}/%2F"
SVC_DIR="${QTASKS_RUN_DIR}/rabbitmq-${PORT}"
PID_FILE="${SVC_DIR}/started.pid"
# epmd is shared by every Erlang node on the host: one file for the repo,
# written by whichever of our starts found no epmd; the last of our nodes to
# stop ends it (only when no node at all is registered with it any more).
EPMD_PID_FILE="${QTASKS_RUN_DIR}/epmd.pid"
DATA_DIR_FILE="${SVC_DIR}/datadir"

# amqp_ready: 127.0.0.1:PORT answers the AMQP 0-9-1 protocol header with a
# Connection.Start frame (type 1, channel 0, class 10, method 10). RabbitMQ
# opens its listener last during boot, so this means "ready for clients".
amqp_ready() {
    local out
    local -a b
    # shellcheck disable=SC2016  # $1 expands in the inner bash
    out=$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3
        head -c 11 <&3 | od -An -tx1' _ "$PORT" 2>/dev/null) || return 1
    read -r -a b <<<"$out"
    [[ ${#b[@]} -eq 11 && "${b[*]:0:3}" == "01 00 00" && "${b[*]:7:4}" == "00 0a 00 0a" ]]
}

# our_pid: prints the recorded PID if the process is alive and really is
# the node we started (its environment names our node); else prints nothing.
our_pid() {
    [[ -f $PID_FILE ]] || return 0
    local pid
    pid=$(<"$PID_FILE")
    if pid_alive "$pid" && pid_environ_has "$pid" "RABBITMQ_NODENAME=$NODE"; then
        echo "$pid"
    fi
}

log_tail() {
    local dir
    dir=$(cat "$DATA_DIR_FILE" 2>/dev/null || true)
    [[ -n $dir ]] || return 0
    local f
    for f in "$dir/log/startup.log" "$dir/log/$NODE.log"; do
        [[ -f $f ]] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 40 "$f" >&2
    done
}

wait_ready() {
    # wait_ready TIMEOUT [PID]: poll until AMQP answers; fail early if PID dies.
    local timeout=$1 pid=${2:-} deadline=$((SECONDS + $1))
    until amqp_ready; do
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            warn "rabbitmq-server (pid $pid) exited during startup"
            return 1
        fi
        if (( SECONDS >= deadline )); then
            warn "no AMQP answer on 127.0.0.1:$PORT after ${timeout}s"
            return 1
        fi
        sleep 0.5
    done
}

prepare_dirs() {
    id "$RMQ_USER" >/dev/null 2>&1 \
        || die "user '$RMQ_USER' does not exist: is rabbitmq-server installed? Run deploy/install-deps.sh"
    [[ -x $RMQ_SBIN/rabbitmq-server ]] \
        || die "$RMQ_SBIN/rabbitmq-server not found: run deploy/install-deps.sh"
    mkdir -p "$SVC_DIR"
    chmod 755 "$SVC_DIR"
    DATA=$(service_data_dir "$RMQ_USER" "$SVC_DIR")
    if [[ $DATA != "$SVC_DIR" ]]; then
        log "user $RMQ_USER cannot traverse $QTASKS_REPO_ROOT; node data goes to $DATA"
        mkdir -p "$DATA"
        chmod 755 "$(dirname "$DATA")" "$DATA"
    fi
    echo "$DATA" > "$DATA_DIR_FILE"
    mkdir -p "$DATA/data" "$DATA/log" "$DATA/etc" "$DATA/home"
    cat > "$DATA/etc/rabbitmq.conf" <<EOF
# Written by deploy/rabbitmq.sh: local node for development and tests.
listeners.tcp.default = 127.0.0.1:${PORT}
# guest/guest works because clients connect from 127.0.0.1.
log.file.level = info
log.console = false
${QTASKS_RABBITMQ_EXTRA_CONF:-}
EOF
    local plugins=()
    if [[ -n $TLS_PORT ]]; then
        # The node's own copy of the test certificates, readable by user
        # rabbitmq whatever the permissions of the repo's .run/tls.
        "$(dirname "${BASH_SOURCE[0]}")/tls-certs.sh" generate
        local tls_src=${QTASKS_TLS_DIR:-$QTASKS_RUN_DIR/tls}
        mkdir -p "$DATA/etc/tls"
        cp "$tls_src/ca.pem" "$tls_src/server.pem" "$tls_src/server.key" "$DATA/etc/tls/"
        chmod 700 "$DATA/etc/tls"
        chmod 600 "$DATA/etc/tls/"*
        # RabbitMQ's TLS guide: listeners.ssl.* and ssl_options.*; a client
        # certificate is optional, but when one is sent it must verify.
        # EXTERNAL after PLAIN and AMQPLAIN, so password logins still work.
        cat >> "$DATA/etc/rabbitmq.conf" <<EOF
listeners.ssl.default = 127.0.0.1:${TLS_PORT}
ssl_options.cacertfile = $DATA/etc/tls/ca.pem
ssl_options.certfile = $DATA/etc/tls/server.pem
ssl_options.keyfile = $DATA/etc/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
EOF
        plugins+=(rabbitmq_auth_mechanism_ssl)
    fi
    if [[ -n $MGMT_PORT ]]; then
        # The management API (and UI), for `qtasks inspect --management-url`;
        # statistics every second rather than every 5 s, so that its
        # unacked counts follow a test's run closely.
        cat >> "$DATA/etc/rabbitmq.conf" <<EOF
management.tcp.ip = 127.0.0.1
management.tcp.port = ${MGMT_PORT}
collect_statistics_interval = 1000
EOF
        plugins+=(rabbitmq_management)
    fi
    local IFS=,
    echo "[${plugins[*]}]." > "$DATA/etc/enabled_plugins"
    unset IFS
    # Nodes of one cluster (deploy/rabbitmq-cluster.sh) must share the
    # Erlang cookie; rabbitmqctl (ctl) reads it from the same HOME.
    if [[ -n ${QTASKS_RABBITMQ_COOKIE:-} ]]; then
        [[ $QTASKS_RABBITMQ_COOKIE =~ ^[A-Za-z0-9]{16,255}$ ]] \
            || die "QTASKS_RABBITMQ_COOKIE must be 16-255 letters and digits"
        rm -f "$DATA/home/.erlang.cookie"
        printf '%s' "$QTASKS_RABBITMQ_COOKIE" > "$DATA/home/.erlang.cookie"
        chmod 400 "$DATA/home/.erlang.cookie"
    fi
    : > "$DATA/etc/rabbitmq-env.conf"   # keep /etc/rabbitmq/rabbitmq-env.conf out
    chown -R "$RMQ_USER:" "$DATA/data" "$DATA/log" "$DATA/etc" "$DATA/home"
    chmod 750 "$DATA/data" "$DATA/home"
}

start() {
    local pid
    pid=$(our_pid)
    if [[ -n $pid ]]; then
        if amqp_ready; then
            log "already running (started by this script, pid $pid) on 127.0.0.1:$PORT"
            check_tls_listener
            return 0
        fi
        log "node started by this script (pid $pid) is still booting; waiting"
        wait_ready "$WAIT_TIMEOUT" "$pid" || { log_tail; exit 1; }
        [[ -z $TLS_PORT ]] || wait_tls 30 || { log_tail; exit 1; }
        log "ready: $URL"
        return 0
    fi
    if amqp_ready; then
        log "reusing broker already listening on 127.0.0.1:$PORT (not started by this script; stop will leave it running)"
        rm -f "$PID_FILE"   # stale, if any: that PID is not our node
        check_tls_listener
        return 0
    fi
    if tcp_open "$PORT"; then
        die "127.0.0.1:$PORT accepts connections but does not speak AMQP; pick another QTASKS_RABBITMQ_PORT"
    fi
    [[ $EUID -eq 0 ]] || die "starting a node needs root (it runs as user $RMQ_USER)"
    if [[ -f $PID_FILE ]]; then
        log "removing stale pid file (pid $(<"$PID_FILE") is gone)"
        rm -f "$PID_FILE"
    fi
    if [[ -n $TLS_PORT ]] && tcp_open "$TLS_PORT"; then
        die "TLS port 127.0.0.1:$TLS_PORT (QTASKS_RABBITMQ_TLS_PORT) is already in use"
    fi
    if tcp_open "$DIST_PORT"; then
        die "Erlang distribution port 127.0.0.1:$DIST_PORT (PORT+20000) is already in use"
    fi

    local epmd_was_running=0
    tcp_open "$EPMD_PORT" && epmd_was_running=1

    prepare_dirs
    local logdir="$DATA/log"
    log "starting node $NODE on 127.0.0.1:$PORT (data: $DATA)"
    local t0=$SECONDS
    local -a AS_USER
    as_user "$RMQ_USER"
    # setsid: own session, so Ctrl-C in the calling terminal does not reach
    # the node; `env -i`: a clean, explicit environment. The recorded PID is
    # the rabbitmq-server shell wrapper, which turns SIGTERM into a graceful
    # shutdown of the Erlang VM (its child).
    (
        cd "$DATA/home"
        exec setsid "${AS_USER[@]}" env -i \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C.UTF-8 LC_ALL=C.UTF-8 \
            HOME="$DATA/home" \
            RABBITMQ_NODENAME="$NODE" \
            RABBITMQ_USE_LONGNAME=false \
            RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT="$PORT" \
            RABBITMQ_DIST_PORT="$DIST_PORT" \
            ERL_EPMD_ADDRESS=127.0.0.1 \
            ERL_EPMD_PORT="$EPMD_PORT" \
            RABBITMQ_MNESIA_BASE="$DATA/data" \
            RABBITMQ_LOG_BASE="$logdir" \
            RABBITMQ_PID_FILE="$DATA/data/$NODE.pid" \
            RABBITMQ_CONFIG_FILE="$DATA/etc/rabbitmq.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE="$DATA/etc/advanced.config" \
            RABBITMQ_CONF_ENV_FILE="$DATA/etc/rabbitmq-env.conf" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$DATA/etc/enabled_plugins" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
            "$RMQ_SBIN/rabbitmq-server"
    ) > "$logdir/startup.log" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$PID_FILE"

    if ! wait_ready "$WAIT_TIMEOUT" "$pid"; then
        log_tail
        pid_alive "$pid" && stop_pid_tree "rabbitmq-server" "$pid" 10
        rm -f "$PID_FILE"
        stop_epmd_if_ours_new "$epmd_was_running"
        exit 1
    fi
    if (( epmd_was_running == 0 )); then
        local epid
        epid=$(listener_pid "$EPMD_PORT")
        if [[ -n $epid && $(pid_comm "$epid") == epmd ]]; then
            echo "$epid" > "$EPMD_PID_FILE"
            log "epmd was started by the node (pid $epid); the last stop will end it"
        fi
    fi
    if [[ -n $TLS_PORT ]] && ! wait_tls 30; then
        log_tail
        stop_pid_tree "rabbitmq-server" "$pid" 10
        rm -f "$PID_FILE"
        exit 1
    fi
    log "ready in $((SECONDS - t0))s: pid $pid, $URL${TLS_PORT:+, amqps://guest:guest@localhost:$TLS_PORT/%2F}"
}

# wait_tls TIMEOUT: the TLS listener opens with the others; a short wait
# covers a loaded machine.
wait_tls() {
    local deadline=$((SECONDS + $1))
    until tcp_open "$TLS_PORT"; do
        if (( SECONDS >= deadline )); then
            warn "no TLS listener on 127.0.0.1:$TLS_PORT after ${1}s"
            return 1
        fi
        sleep 0.5
    done
}

# check_tls_listener: for a node that was already running, say whether it
# has the TLS listener that was asked for (a running node cannot gain one
# without a restart).
check_tls_listener() {
    [[ -n $TLS_PORT ]] || return 0
    if tcp_open "$TLS_PORT"; then
        log "TLS listener on 127.0.0.1:$TLS_PORT"
    else
        warn "the running broker on 127.0.0.1:$PORT has no TLS listener on 127.0.0.1:$TLS_PORT (restart it with QTASKS_RABBITMQ_TLS_PORT set, if this script started it)"
    fi
}

# Used on a failed start: an epmd that appeared during that start is ours.
stop_epmd_if_ours_new() {
    (( $1 == 0 )) || return 0
    local epid
    epid=$(listener_pid "$EPMD_PORT")
    [[ -n $epid && $(pid_comm "$epid") == epmd ]] || return 0
    echo "$epid" > "$EPMD_PID_FILE"
    stop_epmd
}

stop_epmd() {
    [[ -f $EPMD_PID_FILE ]] || return 0
    local epid names
    epid=$(epmd_ours) || return 0
    # Another Erlang node (say, a second port's broker) may use the same epmd.
    names=$(ERL_EPMD_ADDRESS=127.0.0.1 epmd -names 2>/dev/null | grep '^name ' || true)
    if [[ -n $names ]]; then
        log "leaving epmd (pid $epid) running: still used by: $(echo "$names" | awk '{print $2}' | xargs)"
        return 0
    fi
    stop_pid_tree epmd "$epid" 5
    rm -f "$EPMD_PID_FILE"
}

# Keep epmd.pid only while it names a live epmd.
epmd_ours() {
    [[ -f $EPMD_PID_FILE ]] || return 1
    local epid
    epid=$(<"$EPMD_PID_FILE")
    if pid_alive "$epid" && [[ $(pid_comm "$epid") == epmd ]]; then
        echo "$epid"
        return 0
    fi
    rm -f "$EPMD_PID_FILE"
    return 1
}

stop() {
    if [[ ! -f $PID_FILE ]]; then
        if amqp_ready; then
            log "not started by this script; leaving it running (127.0.0.1:$PORT)"
        else
            log "not running (nothing started by this script on port $PORT)"
        fi
        stop_epmd   # a leftover epmd of ours with no node left on it
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "stopping the node needs root"
    local pid recorded
    recorded=$(<"$PID_FILE")
    pid=$(our_pid)
    if [[ -z $pid ]]; then
        log "recorded pid $recorded is gone; cleaning up pid file"
    else
        stop_pid_tree "rabbitmq-server ($NODE)" "$pid" "$STOP_GRACE"
    fi
    rm -f "$PID_FILE"
    stop_epmd
}

status() {
    local pid ready=0
    pid=$(our_pid)
    amqp_ready && ready=1
    if (( ready )); then
        echo "rabbitmq: running on 127.0.0.1:$PORT"
    elif [[ -n $pid ]]; then
        echo "rabbitmq: starting (not accepting AMQP yet) on 127.0.0.1:$PORT"
    else
        echo "rabbitmq: not running on 127.0.0.1:$PORT"
    fi
    if [[ -n $pid ]]; then
        echo "  started by this script: yes, pid $pid, node $NODE"
        echo "  data: $(cat "$DATA_DIR_FILE" 2>/dev/null || echo '?')"
        local epid
        epid=$(epmd_ours) && echo "  epmd started by this script: pid $epid"
    elif (( ready )); then
        echo "  started by this script: no (listener pid: $(listener_pid "$PORT" || true))"
    fi
    if (( ready )); then
        echo "  url: $URL"
        local data
        data=$(cat "$DATA_DIR_FILE" 2>/dev/null || true)
        if [[ -n $pid && -f $data/etc/rabbitmq.conf ]] && grep -q '^management.tcp.port' "$data/etc/rabbitmq.conf"; then
            echo "  management: http://guest:guest@127.0.0.1:$(sed -n 's/^management.tcp.port = //p' "$data/etc/rabbitmq.conf")"
        fi
        if [[ -n $pid && -f $data/etc/rabbitmq.conf ]] && grep -q '^listeners.ssl.default' "$data/etc/rabbitmq.conf"; then
            echo "  tls: amqps://guest:guest@localhost:$(sed -n 's/^listeners.ssl.default = 127.0.0.1://p' "$data/etc/rabbitmq.conf")/%2F"
        fi
        return 0
    fi
    [[ -n $pid ]] && return 0
    return 3
}

ctl() {
    [[ -n $(our_pid) ]] || die "no node started by this script on port $PORT (ctl only talks to our own node)"
    local data
    data=$(<"$DATA_DIR_FILE")
    local -a AS_USER
    as_user "$RMQ_USER"
    # From a directory user rabbitmq can read: the Erlang VM of rabbitmqctl
    # looks up modules in its working directory first, and a checkout it
    # cannot traverse (mktemp -d makes 0700 ones) makes it fail with eacces.
    (
        cd "$data/home"
        "${AS_USER[@]}" env HOME="$data/home" ERL_EPMD_ADDRESS=127.0.0.1 \
            RABBITMQ_CONF_ENV_FILE="$data/etc/rabbitmq-env.conf" \
            "$RMQ_SBIN/rabbitmqctl" -n "$NODE" "$@"
    )
}

case $cmd in
    ctl) shift; ctl "$@" ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    wait)
        log "waiting up to ${WAIT_TIMEOUT}s for AMQP on 127.0.0.1:$PORT"
        wait_ready "$WAIT_TIMEOUT" || exit 1
        log "ready: $URL"
        ;;
    restart)
        if [[ -z $(our_pid) ]] && amqp_ready; then
            die "the broker on 127.0.0.1:$PORT was not started by this script; refusing to restart it"
        fi
        stop
        start
        ;;
esac

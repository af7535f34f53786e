#!/usr/bin/env bash
# A local Redis for development and tests (State backend). See --help.
set -euo pipefail

QTASKS_LOG_TAG=redis
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

STOP_GRACE=${QTASKS_STOP_GRACE:-30}
PORT=${QTASKS_REDIS_PORT:-6379}
WAIT_TIMEOUT=${QTASKS_WAIT_TIMEOUT:-60}
REDIS_USER=redis

usage() {
    cat <<EOF
Usage: deploy/redis.sh start|stop|status|wait

A local Redis for development and tests, listening on 127.0.0.1 only, with
persistence on (appendonly yes).

  start   Start redis-server unless something on 127.0.0.1:PORT already answers
          PING with PONG (then it is reused and never stopped by this script).
  stop    Stop the server, but only if this script started it (by its recorded
          PID: SIGTERM, then SIGKILL after QTASKS_STOP_GRACE seconds).
  status  Print whether Redis answers and whether we started it. Exit status
          0 when it answers, 3 otherwise.
  wait    Wait until 127.0.0.1:PORT answers PING.

Environment:
  QTASKS_REDIS_PORT    port (default 6379)
  QTASKS_WAIT_TIMEOUT  seconds to wait for the server (default 60)
  QTASKS_STOP_GRACE    seconds between SIGTERM and SIGKILL (default 30)

Files (under ${QTASKS_RUN_DIR}):
  redis-PORT/started.pid  PID of the server this script started
  redis-PORT/data/        appendonly files, dump.rdb, redis.log, owned by user
      redis (or /var/tmp/qtasks-<hash of repo path>/redis-PORT/data/ when user
      redis cannot traverse the repo's parent directories).
URL: redis://127.0.0.1:PORT/0
EOF
}

cmd=${1:-}
case $cmd in
    -h|--help|help) usage; exit 0 ;;
    start|stop|status|wait) ;;
    "") usage >&2; exit 2 ;;
    *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac

validate_port QTASKS_REDIS_PORT "$PORT"
[[ $WAIT_TIMEOUT =~ ^[0-9]+$ ]] || die "QTASKS_WAIT_TIMEOUT must be a number of seconds"
[[ $STOP_GRACE =~ ^[0-9]+$ ]] || die "QTASKS_STOP_GRACE must be a number of seconds"
URL="redis://127.0.0.1:${PORT}/0"
SVC_DIR="${QTASKS_RUN_DIR}/redis-${PORT}"
PID_FILE="${SVC_DIR}/started.pid"
DATA_DIR_FILE="${SVC_DIR}/datadir"

# redis_ready: PING answers +PONG. Plain bash, so it needs no redis-cli.
redis_ready() {
    local out
    # shellcheck disable=SC2016  # $1 expands in the inner bash
    out=$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r line <&3
        printf "%s" "$line"' _ "$PORT" 2>/dev/null) || return 1
    [[ ${out%$'\r'} == "+PONG" ]]
}

# our_pid: the recorded PID, if that process is alive and is a redis-server
# serving our port (guards against a recycled PID).
our_pid() {
    [[ -f $PID_FILE ]] || return 0
    local pid
    pid=$(<"$PID_FILE")
    if pid_alive "$pid" && [[ $(pid_comm "$pid") == redis-server* ]] \
        && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "127.0.0.1:$PORT"; then
        echo "$pid"
    fi
}

log_tail() {
    local dir f
    dir=$(cat "$DATA_DIR_FILE" 2>/dev/null || true)
    for f in "$dir/redis.log" "$SVC_DIR/startup.log"; do
        [[ -n $dir && -f $f ]] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 30 "$f" >&2
    done
}

wait_ready() {
    local timeout=$1 deadline=$((SECONDS + $1))
    until redis_ready; do
        if (( SECONDS >= deadline )); then
            warn "no PONG from 127.0.0.1:$PORT after ${timeout}s"
            return 1
        fi
        sleep 0.2
    done
}

start() {
    local pid
    pid=$(our_pid)
    if [[ -n $pid ]] && redis_ready; then
        log "already running (started by this script, pid $pid) on 127.0.0.1:$PORT"
        return 0
    fi
    if [[ -z $pid ]] && redis_ready; then
        log "reusing redis already listening on 127.0.0.1:$PORT (not started by this script; stop will leave it running)"
        rm -f "$PID_FILE"
        return 0
    fi
    if [[ -n $pid ]]; then
        log "redis started by this script (pid $pid) does not answer yet; waiting"
        wait_ready "$WAIT_TIMEOUT" || { log_tail; exit 1; }
        log "ready: $URL"
        return 0
    fi
    if tcp_open "$PORT"; then
        die "127.0.0.1:$PORT accepts connections but does not answer PING; pick another QTASKS_REDIS_PORT"
    fi
    [[ $EUID -eq 0 ]] || die "starting redis needs root (it runs as user $REDIS_USER)"
    command -v redis-server >/dev/null || die "redis-server not found: run deploy/install-deps.sh"
    id "$REDIS_USER" >/dev/null 2>&1 || die "user '$REDIS_USER' does not exist: run deploy/install-deps.sh"
    if [[ -f $PID_FILE ]]; then
        log "removing stale pid file (pid $(<"$PID_FILE") is gone)"
        rm -f "$PID_FILE"
    fi

    mkdir -p "$SVC_DIR"
    chmod 755 "$SVC_DIR"
    local base data
    base=$(service_data_dir "$REDIS_USER" "$SVC_DIR")
    if [[ $base != "$SVC_DIR" ]]; then
        log "user $REDIS_USER cannot traverse $QTASKS_REPO_ROOT; data goes to $base"
        mkdir -p "$base"
        chmod 755 "$(dirname "$base")" "$base"
    fi
    data="$base/data"
    echo "$data" > "$DATA_DIR_FILE"
    mkdir -p "$data"
    chown "$REDIS_USER:" "$data"
    chmod 750 "$data"
    rm -f "$data/redis.pid"   # stale after a crash; we wait for the new one

    local -a AS_USER
    as_user "$REDIS_USER"
    local t0=$SECONDS
    log "starting redis-server on 127.0.0.1:$PORT (data: $data)"
    # daemonize: redis forks into the background, and writes the daemon's
    # PID to pidfile, which we record. --save keeps RDB snapshots besides
    # the append-only file (appendfsync everysec, the default).
    if ! (cd "$data" && "${AS_USER[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            redis-server \
            --bind 127.0.0.1 \
            --port "$PORT" \
            --protected-mode yes \
            --daemonize yes \
            --supervised no \
            --pidfile "$data/redis.pid" \
            --logfile "$data/redis.log" \
            --dir "$data" \
            --appendonly yes \
            --appendfsync everysec) > "$SVC_DIR/startup.log" 2>&1 < /dev/null; then
        log_tail
        die "redis-server failed to start"
    fi
    # The pidfile appears right after the fork.
    local deadline=$((SECONDS + 10))
    until [[ -s $data/redis.pid ]]; do
        (( SECONDS < deadline )) || { log_tail; die "redis-server wrote no pidfile"; }
        sleep 0.1
    done
    pid=$(<"$data/redis.pid")
    echo "$pid" > "$PID_FILE"
    if ! wait_ready "$WAIT_TIMEOUT"; then
        log_tail
        pid_alive "$pid" && stop_pid_tree redis-server "$pid" 5
        rm -f "$PID_FILE"
        exit 1
    fi
    log "ready in $((SECONDS - t0))s: pid $pid, $URL"
}

stop() {
    if [[ ! -f $PID_FILE ]]; then
        if redis_ready; then
            log "not started by this script; leaving it running (127.0.0.1:$PORT)"
        else
            log "not running (nothing started by this script on port $PORT)"
        fi
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "stopping redis needs root"
    local pid
    pid=$(our_pid)
    if [[ -z $pid ]]; then
        log "recorded pid $(<"$PID_FILE") is gone; cleaning up pid file"
    else
        # SIGTERM: redis flushes the append-only file and exits.
        stop_pid_tree "redis-server" "$pid" "$STOP_GRACE"
    fi
    rm -f "$PID_FILE"
}

status() {
    local pid ready=0
    pid=$(our_pid)
    redis_ready && ready=1
    if (( ready )); then
        echo "redis: running on 127.0.0.1:$PORT"
    elif [[ -n $pid ]]; then
        echo "redis: process $pid alive but not answering PING on 127.0.0.1:$PORT"
    else
        echo "redis: not running on 127.0.0.1:$PORT"
    fi
    if [[ -n $pid ]]; then
        echo "  started by this script: yes, pid $pid"
        echo "  data: $(cat "$DATA_DIR_FILE" 2>/dev/null || echo '?')"
    elif (( ready )); then
        echo "  started by this script: no (listener pid: $(listener_pid "$PORT"))"
    fi
    if (( ready )); then
        echo "  url: $URL"
        return 0
    fi
    return 3
}

case $cmd in
    start) start ;;
    stop) stop ;;
    status) status ;;
    wait)
        log "waiting up to ${WAIT_TIMEOUT}s for PONG on 127.0.0.1:$PORT"
        wait_ready "$WAIT_TIMEOUT" || exit 1
        log "ready: $URL"
        ;;
esac

#!/usr/bin/env bash
# The test command of swift-qtasks. See --help.
set -euo pipefail

QTASKS_LOG_TAG="test"
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<EOF
Usage: deploy/test.sh [swift test arguments...]

Runs the whole test suite against local servers:
  1. deploy/install-deps.sh          (skipped when QTASKS_SKIP_INSTALL=1)
  2. deploy/rabbitmq.sh start, deploy/redis.sh start
     (servers already running on the ports are reused, not restarted)
  3. swift build --build-tests
  4. swift test "\$@"                  e.g. deploy/test.sh --filter AMQPTests
On exit (success, failure, Ctrl-C) it stops only the servers this run
started, and exits with swift test's exit status (or the build's, if the
build failed).

Exported to the tests:
  QTASKS_URL        amqp://guest:guest@127.0.0.1:\$QTASKS_RABBITMQ_PORT/%2F
  QTASKS_REDIS_URL  redis://127.0.0.1:\$QTASKS_REDIS_PORT/0
  QTASKS_VENV       ${QTASKS_RUN_DIR}/venv (Python with pika, Celery and QTasks, when present)
  QTASKS_MANAGEMENT_URL  http://guest:guest@127.0.0.1:\$((QTASKS_RABBITMQ_PORT + 10000)),
                    the broker's management API (started with the plugin)
  QTASKS_TEST_TLS_URL  amqps://guest:guest@localhost:\$QTASKS_RABBITMQ_TLS_PORT/%2F,
                    the TLS listener of the broker this run starts (the TLS
                    suites are mandatory here); its certificates come from
                    deploy/tls-certs.sh
  QTASKS_TEST_TLS_DIR  the certificates (ca.pem, client.pem, expired.pem, ...)
  QTASKS_TEST_TLS_NODE_PORT  the plain AMQP port of the node with that TLS
                    listener (its rabbitmqctl, and the port mix-up tests)
  QTASKS_REQUIRE_BROWSER=1  when deploy/install-deps.sh ran: the browser
                    tests (headless chromium) fail instead of skipping
                    when chromium or chromedriver is missing

Environment:
  QTASKS_RABBITMQ_PORT  (default 5672)   QTASKS_REDIS_PORT (default 6379)
  QTASKS_RABBITMQ_TLS_PORT  the broker's TLS port (default: broker port + 1).
                        When the broker is reused and has no TLS listener
                        there, a second node of this run's own serves it,
                        on AMQP port broker port + 2.
  QTASKS_SKIP_INSTALL=1 do not run deploy/install-deps.sh
  QTASKS_SCRATCH_PATH   passed to swift as --scratch-path (default: .build)
  QTASKS_TEST_PARALLEL=1  run tests in parallel (default: one at a time)
  (exported) QTASKS_PRIVATE_RABBITMQ_PORT  the first port of the private
                        nodes fault tests start: broker port + 21 (uses +0..+3)
  (exported) QTASKS_CLUSTER_RABBITMQ_PORT  node 1 of the 3-node cluster the
                        failover test starts (deploy/rabbitmq-cluster.sh):
                        broker port + 41 (uses +0..+2)
  QTASKS_SWIFT          the swift executable (default: swift)
EOF
}

case ${1:-} in
    -h|--help) usage; exit 0 ;;
esac

cd "$QTASKS_REPO_ROOT"
DEPLOY="$QTASKS_REPO_ROOT/deploy"
export QTASKS_RABBITMQ_PORT=${QTASKS_RABBITMQ_PORT:-5672}
export QTASKS_REDIS_PORT=${QTASKS_REDIS_PORT:-6379}
validate_port QTASKS_RABBITMQ_PORT "$QTASKS_RABBITMQ_PORT" 45492  # private nodes +21..+24, cluster +41..+43
validate_port QTASKS_REDIS_PORT "$QTASKS_REDIS_PORT"
# Private nodes that fault tests start and restart: ports derived from this
# run's broker port, so that checkouts testing on other ports never meet.
export QTASKS_PRIVATE_RABBITMQ_PORT=$((QTASKS_RABBITMQ_PORT + 21))
# +41, not the cluster script's default (5703): a developer's own cluster
# on the default ports is never the one the failover test stops.
export QTASKS_CLUSTER_RABBITMQ_PORT=$((QTASKS_RABBITMQ_PORT + 41))
TLS_PORT=${QTASKS_RABBITMQ_TLS_PORT:-$((QTASKS_RABBITMQ_PORT + 1))}
validate_port QTASKS_RABBITMQ_TLS_PORT "$TLS_PORT"
# Not inherited: the private and cluster nodes the tests start must not ask
# for the same TLS port.
unset QTASKS_RABBITMQ_TLS_PORT
# The node that serves TLS when the reused broker does not.
TLS_NODE_PORT=$((QTASKS_RABBITMQ_PORT + 2))
SWIFT=${QTASKS_SWIFT:-swift}
swift_opts=()
[[ -n ${QTASKS_SCRATCH_PATH:-} ]] && swift_opts+=(--scratch-path "$QTASKS_SCRATCH_PATH")

# Which servers this run started: a service counts as ours when its
# started.pid changed while we ran its start (a server that was already
# running, ours from an earlier `start` or anyone else's, is left alone).
# Recorded before each start so an interrupted start is cleaned up too.
declare -A pid_before=()
attempted=()
pidfile_of() {
    case $1 in
        rabbitmq) echo "$QTASKS_RUN_DIR/rabbitmq-$QTASKS_RABBITMQ_PORT/started.pid" ;;
        rabbitmq-tls) echo "$QTASKS_RUN_DIR/rabbitmq-$TLS_NODE_PORT/started.pid" ;;
        redis) echo "$QTASKS_RUN_DIR/redis-$QTASKS_REDIS_PORT/started.pid" ;;
    esac
}
current_pid() {
    if [[ $1 == rabbitmq-cluster ]]; then
        # Any of its three nodes: the test may have stopped node 1 itself.
        local n
        for n in 0 1 2; do
            cat "$QTASKS_RUN_DIR/rabbitmq-$((QTASKS_CLUSTER_RABBITMQ_PORT + n))/started.pid" 2>/dev/null || true
        done | xargs
        # An explicit status: a bare `return` in the EXIT trap would return
        # the failing status the trap was entered with, and `set -e` would
        # end the cleanup there.
        return 0
    fi
    cat "$(pidfile_of "$1")" 2>/dev/null || true
    return 0
}

# service_script SVC: the script (and environment) that runs SVC.
service_script() {
    case $1 in
        rabbitmq-tls) echo env "QTASKS_RABBITMQ_PORT=$TLS_NODE_PORT" "QTASKS_RABBITMQ_TLS_PORT=$TLS_PORT" "$DEPLOY/rabbitmq.sh" ;;
        *) echo "$DEPLOY/$1.sh" ;;
    esac
}

start_service() {
    local svc=$1
    shift
    pid_before[$svc]=$(current_pid "$svc")
    attempted+=("$svc")
    local -a script
    read -r -a script <<<"$(service_script "$svc")"
    env "$@" "${script[@]}" start
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM   # let the cleanup finish on a second Ctrl-C
    local i svc now stopped=()
    for (( i=${#attempted[@]}-1; i>=0; i-- )); do
        svc=${attempted[i]}
        now=$(current_pid "$svc") || now=
        if [[ -n $now && $now != "${pid_before[$svc]}" ]]; then
            local -a script
            read -r -a script <<<"$(service_script "$svc")"
            "${script[@]}" stop || warn "stopping $svc failed"
            stopped+=("$svc")
        fi
    done
    if (( ${#stopped[@]} )); then
        log "stopped the servers this run started: ${stopped[*]}"
    elif (( ${#attempted[@]} )); then
        log "left running the servers this run did not start: ${attempted[*]}"
    fi
    log "exit status $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${QTASKS_SKIP_INSTALL:-0} == 1 ]]; then
    log "QTASKS_SKIP_INSTALL=1: not running deploy/install-deps.sh"
else
    "$DEPLOY/install-deps.sh"
    # It installed chromium and chromium-driver: a browser test that finds
    # them missing must fail, not skip.
    export QTASKS_REQUIRE_BROWSER=1
fi

# The shared broker with the management plugin (HTTP API on PORT+10000) for
# the inspect tests; only this node: the private and cluster nodes the tests
# start must not compete for that port.
management_port=$((QTASKS_RABBITMQ_PORT + 10000))
# The throwaway CA and certificates of the TLS tests (idempotent).
"$DEPLOY/tls-certs.sh" generate
tls_env=(QTASKS_RABBITMQ_TLS_PORT="$TLS_PORT")
# A port already taken (by a broker we reuse, or by anything else) is not
# asked for: the node would fail to boot.
tcp_open "$TLS_PORT" && tls_env=()
if tcp_open "$management_port"; then
    start_service rabbitmq "${tls_env[@]}"
else
    start_service rabbitmq QTASKS_RABBITMQ_MANAGEMENT_PORT="$management_port" "${tls_env[@]}"
fi
tls_node_port=$QTASKS_RABBITMQ_PORT
if ! tcp_open "$TLS_PORT"; then
    # The reused broker has no TLS listener: a node of this run's own.
    log "the broker on $QTASKS_RABBITMQ_PORT has no TLS listener on $TLS_PORT: starting a TLS node on $TLS_NODE_PORT"
    start_service rabbitmq-tls
    tls_node_port=$TLS_NODE_PORT
fi
start_service redis
if tcp_open "$management_port" && curl -fsS -o /dev/null -u guest:guest "http://127.0.0.1:${management_port}/api/overview" 2>/dev/null; then
    export QTASKS_MANAGEMENT_URL="http://guest:guest@127.0.0.1:${management_port}"
else
    log "no management API on 127.0.0.1:$management_port (a broker this run did not start?): its inspect test is skipped"
fi
# The failover test starts and stops the cluster itself; registered here so
# that a test run killed half-way does not leave its nodes behind (they are
# stopped only if they were not running before this run).
pid_before[rabbitmq-cluster]=$(current_pid rabbitmq-cluster)
attempted+=(rabbitmq-cluster)

export QTASKS_URL="amqp://guest:guest@127.0.0.1:${QTASKS_RABBITMQ_PORT}/%2F"
export QTASKS_REDIS_URL="redis://127.0.0.1:${QTASKS_REDIS_PORT}/0"
export QTASKS_TEST_TLS_URL="amqps://guest:guest@localhost:${TLS_PORT}/%2F"
QTASKS_TEST_TLS_DIR=$("$DEPLOY/tls-certs.sh" path)
export QTASKS_TEST_TLS_DIR
export QTASKS_TEST_TLS_NODE_PORT=$tls_node_port
[[ -x $QTASKS_RUN_DIR/venv/bin/python ]] && export QTASKS_VENV="$QTASKS_RUN_DIR/venv"
log "QTASKS_URL=$QTASKS_URL QTASKS_REDIS_URL=$QTASKS_REDIS_URL QTASKS_TEST_TLS_URL=$QTASKS_TEST_TLS_URL (node $QTASKS_TEST_TLS_NODE_PORT)"

command -v "$SWIFT" >/dev/null || die "$SWIFT not found on PATH"
log "$SWIFT build --build-tests ${swift_opts[*]}"
set +e
"$SWIFT" build --build-tests "${swift_opts[@]}"
rc=$?
set -e
if (( rc != 0 )); then
    log "swift build failed (exit $rc)"
    exit "$rc"
fi

# One test at a time by default: the integration and fault suites start
# worker processes, private broker nodes and 2,000-task runs, and on a 2-core
# machine running them side by side turns their deadlines into noise. The
# whole suite takes a few minutes this way. QTASKS_TEST_PARALLEL=1 runs them
# in parallel.
test_opts=()
[[ ${QTASKS_TEST_PARALLEL:-} == 1 ]] || test_opts+=(--no-parallel)
log "$SWIFT test ${swift_opts[*]} ${test_opts[*]} $*"
set +e
"$SWIFT" test "${swift_opts[@]}" "${test_opts[@]}" "$@"
rc=$?
set -e
log "swift test exited with $rc"
exit "$rc"

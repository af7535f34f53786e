#!/usr/bin/env bash
# The main job of swift-qtasks: a real worker on a real local RabbitMQ doing
# real tasks, sent with the qtasks CLI. See --help.
set -euo pipefail

QTASKS_LOG_TAG="demo"
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<EOF
Usage: deploy/demo.sh

  1. deploy/install-deps.sh           (skipped when QTASKS_SKIP_INSTALL=1)
  2. deploy/rabbitmq.sh start         (reuses a broker already on the port)
  3. swift build                      (the qtasks CLI and the qtasks-example worker)
  4. starts qtasks-example on queue "demo" in the background, recording
     every task in an SQLite result store (.run/demo-results.db), and the
     dashboard on it (\`qtasks dashboard\`, http://127.0.0.1:8089/, or a free
     port when 8089 is taken), printing its address
  5. sends tasks with \`qtasks send\` and prints each result, and two
     workflows with \`qtasks workflow send\` (printing their trees); sends one
     without waiting and reads its result back from the store
     (\`qtasks result\`), then lists the recorded tasks and the live worker
     (\`qtasks tasks\`, \`qtasks workers\`)
  6. when run from a terminal, keeps the worker and the dashboard running
     until Ctrl-C, so that the dashboard shows the tasks just run; otherwise
     prints what the dashboard's API says and goes on
  7. stops the dashboard and the worker with SIGTERM (graceful), then the
     broker if this run started it

Environment: QTASKS_RABBITMQ_PORT (default 5672), QTASKS_DASHBOARD_PORT
(default 8089), QTASKS_DEMO_WAIT=0 (do not wait for Ctrl-C), QTASKS_SKIP_INSTALL=1,
QTASKS_SCRATCH_PATH (swift --scratch-path). The worker's log is kept in
.run/demo-worker.log.
EOF
}
case ${1:-} in -h|--help) usage; exit 0 ;; esac

cd "$QTASKS_REPO_ROOT"
DEPLOY="$QTASKS_REPO_ROOT/deploy"
export QTASKS_RABBITMQ_PORT=${QTASKS_RABBITMQ_PORT:-5672}
validate_port QTASKS_RABBITMQ_PORT "$QTASKS_RABBITMQ_PORT" 45535
export QTASKS_URL="amqp://guest:guest@127.0.0.1:${QTASKS_RABBITMQ_PORT}/%2F"
swift_opts=()
[[ -n ${QTASKS_SCRATCH_PATH:-} ]] && swift_opts+=(--scratch-path "$QTASKS_SCRATCH_PATH")

broker_pidfile="$QTASKS_RUN_DIR/rabbitmq-$QTASKS_RABBITMQ_PORT/started.pid"
broker_pid_before=$(cat "$broker_pidfile" 2>/dev/null || true)
worker_pid=""
dashboard_pid=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -n $dashboard_pid ]] && pid_alive "$dashboard_pid"; then
        kill -TERM "$dashboard_pid" 2>/dev/null || true
        wait "$dashboard_pid" 2>/dev/null || true
    fi
    if [[ -n $worker_pid ]] && pid_alive "$worker_pid"; then
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    local now
    now=$(cat "$broker_pidfile" 2>/dev/null || true)
    if [[ -n $now && $now != "$broker_pid_before" ]]; then
        "$DEPLOY/rabbitmq.sh" stop || warn "stopping RabbitMQ failed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${QTASKS_SKIP_INSTALL:-} != 1 ]]; then "$DEPLOY/install-deps.sh" --no-venv --no-browser; fi
"$DEPLOY/rabbitmq.sh" start

log "building the qtasks CLI and the qtasks-example worker (the first build compiles the dependencies: a few minutes)"
swift build "${swift_opts[@]}" --product qtasks-example
swift build "${swift_opts[@]}" --product qtasks
bin=$(swift build "${swift_opts[@]}" --show-bin-path)

mkdir -p "$QTASKS_RUN_DIR"
worker_log="$QTASKS_RUN_DIR/demo-worker.log"
results="sqlite://$QTASKS_RUN_DIR/demo-results.db"
rm -f "$QTASKS_RUN_DIR/demo-results.db" "$QTASKS_RUN_DIR/demo-results.db-wal" "$QTASKS_RUN_DIR/demo-results.db-shm"
log "starting the worker: qtasks-example --queue demo --concurrency 4 --result-store $results (log: $worker_log)"
"$bin/qtasks-example" --queue demo --concurrency 4 --result-store "$results" --heartbeat-interval 1 >"$worker_log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 100); do
    grep -q "worker started" "$worker_log" 2>/dev/null && break
    pid_alive "$worker_pid" || { cat "$worker_log" >&2; die "the worker exited"; }
    sleep 0.1
done
grep -q "worker started" "$worker_log" || { cat "$worker_log" >&2; die "the worker did not start in 10 s"; }

# The dashboard on the same store; a free port when the usual one is taken.
dashboard_port=${QTASKS_DASHBOARD_PORT:-8089}
validate_port QTASKS_DASHBOARD_PORT "$dashboard_port" 65535
if (exec 3<>"/dev/tcp/127.0.0.1/$dashboard_port") 2>/dev/null; then
    warn "port $dashboard_port is taken: the dashboard takes a free one"
    dashboard_port=0
fi
dashboard_log="$QTASKS_RUN_DIR/demo-dashboard.log"
dashboard_out="$QTASKS_RUN_DIR/demo-dashboard.out"
"$bin/qtasks" dashboard --result-store "$results" --queue demo --port "$dashboard_port" >"$dashboard_out" 2>"$dashboard_log" &
dashboard_pid=$!
dashboard_url=""
for _ in $(seq 1 100); do
    dashboard_url=$(sed -n 's/^qtasks dashboard: //p' "$dashboard_out" 2>/dev/null | head -n 1)
    [[ -n $dashboard_url ]] && break
    pid_alive "$dashboard_pid" || { cat "$dashboard_log" >&2; die "the dashboard exited"; }
    sleep 0.1
done
[[ -n $dashboard_url ]] || { cat "$dashboard_log" >&2; die "the dashboard did not start in 10 s"; }
printf '\n== the dashboard: %s  (open it now to watch the tasks arrive)\n' "$dashboard_url"

send() {
    local title=$1; shift
    printf '\n== %s\n$ qtasks send --queue demo' "$title"; printf ' %q' "$@"; printf '\n'
    local rc=0
    "$bin/qtasks" send --queue demo "$@" || rc=$?
    [[ $rc == 0 ]] || printf '(exit status %s)\n' "$rc"
}

send "add two numbers" add 2 3
send "keyword arguments" add --kwargs '{"a": 1.5, "b": 2.25}'
send "echo returns its arguments as received" echo "Введите телефон" 42 '{"nested": [true, null]}' --kwargs '{"lang": "ru"}'
send "word counts of a text" word_count "Depends for resources, State for the data between the steps of a workflow. Вместе они позволяют строить гибкие пайплайны, гибкие и надёжные." --kwargs '{"top": 3}'
send "a task that sleeps" sleep 0.5
send "a task that fails: error result, message dead-lettered to demo.dlq" fail "failed on purpose"
send "an unknown task: bad input, error result, dead-lettered" no_such_task

workflow() {
    local title=$1 json=$2
    local file="$QTASKS_RUN_DIR/demo-workflow.json" errors="$QTASKS_RUN_DIR/demo-workflow.err"
    printf '%s\n' "$json" >"$file"
    printf '\n== %s\n$ qtasks workflow send --queue demo FILE   # %s\n' "$title" "$json"
    local rc=0
    "$bin/qtasks" workflow send --queue demo "$file" 2>"$errors" || rc=$?
    cat "$errors" >&2
    [[ $rc == 0 ]] || printf '(exit status %s)\n' "$rc"
    local id
    id=$(sed -n 's/^qtasks: workflow \([0-9a-f-]*\) sent$/\1/p' "$errors")
    if [[ -n $id ]]; then
        printf '$ qtasks workflow %s\n' "$id"
        # The worker writes each step's record a moment after its ack.
        local shown=""
        for _ in $(seq 1 20); do
            shown=$("$bin/qtasks" workflow "$id" --result-store "$results" 2>&1) || true
            grep -q "no record yet" <<<"$shown" || break
            sleep 0.2
        done
        printf '%s\n' "$shown"
    fi
}

workflow "a workflow: the registration form, one task per step, State carrying the form, the chain carrying the steps" \
    '{"chain": [{"task": "register_ask", "args": ["alice"]}, {"task": "register_phone", "args": ["+7 912 345-67-89"]}, {"task": "register_confirm"}]}'
workflow "a chord: two adds in parallel, then echo with the list of their results" \
    '{"chain": [{"group": [{"task": "add", "args": [1, 2]}, {"task": "add", "args": [3, 4]}]}, {"task": "echo"}]}'

printf '\n== fire and forget, then the result from the store\n$ qtasks send --queue demo add 40 2 --wait 0 --result-store %s\n' "$results"
uuid=$("$bin/qtasks" send --queue demo add 40 2 --wait 0 --result-store "$results")
printf '%s\n$ qtasks result %s --wait 10\n' "$uuid" "$uuid"
"$bin/qtasks" result "$uuid" --wait 10 --result-store "$results"
printf '\n== the recorded tasks, failures with their tracebacks\n$ qtasks tasks --limit 10\n'
"$bin/qtasks" tasks --limit 10 --result-store "$results"
printf '\n== the live workers, from their heartbeats\n$ qtasks workers\n'
"$bin/qtasks" workers --result-store "$results"

printf '\n== the dashboard answers: %s\n$ curl -s %sapi/overview   (queues, workers and the last hour, which follows the heartbeats: a second behind)\n' "$dashboard_url" "$dashboard_url"
overview=$(curl -s --max-time 10 "${dashboard_url}api/overview" || true)
[[ -n $overview ]] || warn "the dashboard did not answer"
for key in queues workers last_hour; do
    grep -o "\"$key\":[[{][^]}]*[]}]" <<<"$overview" || true
done
if [[ -t 0 && ${QTASKS_DEMO_WAIT:-1} != 0 ]]; then
    printf '\nThe worker and the dashboard keep running: open %s\nPress Ctrl-C to stop them.\n' "$dashboard_url"
    trap 'printf "\n"; log "stopping"' INT
    wait "$dashboard_pid" || true
    trap 'exit 130' INT
fi
if pid_alive "$dashboard_pid"; then kill -TERM "$dashboard_pid"; fi
dashboard_status=0
wait "$dashboard_pid" || dashboard_status=$?
dashboard_pid=""
log "dashboard exited with status $dashboard_status"

log "stopping the worker (SIGTERM: in-flight tasks finish, then it exits 0)"
kill -TERM "$worker_pid"
status=0
wait "$worker_pid" || status=$?
worker_pid=""
printf '\n== the worker log\n'
cat "$worker_log"
log "worker exited with status $status"
[[ $status == 0 ]]

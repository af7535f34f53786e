#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, for failover tests. See --help.
set -euo pipefail

QTASKS_LOG_TAG=rabbitmq-cluster
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

NODES=3
BASE=${QTASKS_CLUSTER_RABBITMQ_PORT:-5703}

usage() {
    cat <<EOF
Usage: deploy/rabbitmq-cluster.sh start|stop|status|urls|stop-node N|start-node N|ctl N ARGS...

A RabbitMQ cluster of $NODES nodes on one machine, listening on 127.0.0.1
only: node N (1..$NODES) is qtasks-PORT@localhost on AMQP port BASE+N-1
(Erlang distribution port +20000). Each node is run by deploy/rabbitmq.sh,
so everything it says about ownership holds: only nodes this script started
are ever stopped, by their recorded PID.

  start         Start the nodes that are not running (all at once: a node
                of a cluster that restarts waits for its peers), then join
                nodes 2..$NODES to node 1 unless they already are members.
                Idempotent. When no node runs, a new, empty cluster is made
                (earlier data is deleted). Fails if a port is held by a
                broker this script did not start.
  stop          Stop every node this script started and delete the data of
                all $NODES nodes (also of one stopped with stop-node): the
                next start makes a new, empty cluster (this is a cluster for
                development and tests).
  status        Each node's state and the cluster's running members.
  urls          The AMQP URLs of the nodes, joined by ';' (the failover
                list of --url and QTASKS_URL).
  stop-node N   Stop node N only (graceful: SIGTERM, as rabbitmq.sh stop).
                Its data is kept; start-node N brings it back as a member.
  start-node N  Start node N again (after stop-node).
  ctl N ARGS    rabbitmqctl ARGS against node N.

Quorum queues (x-queue-type: quorum) get a replica on every node, so the
cluster keeps serving them with any one node down.

Environment:
  QTASKS_CLUSTER_RABBITMQ_PORT  AMQP port of node 1 (default 5703);
                                nodes use BASE, BASE+1, BASE+2.
  QTASKS_WAIT_TIMEOUT, QTASKS_STOP_GRACE  as for deploy/rabbitmq.sh.
Files: ${QTASKS_RUN_DIR}/rabbitmq-cluster-BASE/cookie (the shared Erlang
cookie) and each node's files as deploy/rabbitmq.sh describes them.
EOF
}

cmd=${1:-}
case $cmd in
    -h|--help|help) usage; exit 0 ;;
    start|stop|status|urls|stop-node|start-node|ctl) ;;
    "") usage >&2; exit 2 ;;
    *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac

validate_port QTASKS_CLUSTER_RABBITMQ_PORT "$BASE" $((45535 - NODES + 1))
NODE_SCRIPT="$(dirname "${BASH_SOURCE[0]}")/rabbitmq.sh"
CLUSTER_DIR="${QTASKS_RUN_DIR}/rabbitmq-cluster-${BASE}"

port_of() { echo $((BASE + $1 - 1)); }
node_name() { echo "qtasks-$(port_of "$1")@localhost"; }
url_of() { echo "amqp://guest:guest@127.0.0.1:$(port_of "$1")/%2F"; }

node_index() {
    if ! [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || (( $1 > NODES )); then
        die "node must be 1..$NODES, not '${1:-}'"
    fi
}

# node CMD N ARGS...: deploy/rabbitmq.sh CMD for node N, with the cookie.
# pause_minority: after a partition, the side without a majority pauses
# and rejoins by itself when it heals (RabbitMQ's advice for 3+ nodes).
node() {
    local what=$1 n=$2
    shift 2
    QTASKS_RABBITMQ_PORT=$(port_of "$n") QTASKS_RABBITMQ_COOKIE=$(cookie) \
        QTASKS_RABBITMQ_EXTRA_CONF="cluster_partition_handling = pause_minority" \
        "$NODE_SCRIPT" "$what" "$@"
}

cookie() {
    local file="$CLUSTER_DIR/cookie"
    if [[ ! -s $file ]]; then
        mkdir -p "$CLUSTER_DIR"
        # head reads a fixed count: no writer is cut off by SIGPIPE, which
        # pipefail would turn into a failed start.
        (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
    fi
    cat "$file"
}

# ours N: node N is running and was started by rabbitmq.sh.
# (The output is read whole: grep -q would stop reading early, and with
# pipefail the writer's SIGPIPE would make the answer "no".)
ours() {
    local out
    out=$(node status "$1" 2>/dev/null) || return 1
    [[ $out == *"started by this script: yes"* ]]
}

# cluster_field KEY: a list of node names from node 1's cluster_status
# (running_nodes: those up now; disk_nodes: every member).
cluster_field() {
    node ctl 1 cluster_status --formatter json 2>/dev/null \
        | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin).get(sys.argv[1], [])))' "$1" 2>/dev/null || true
}
members_of_node1() { cluster_field running_nodes; }

start() {
    [[ $EUID -eq 0 ]] || die "starting nodes needs root (they run as user rabbitmq)"
    cookie > /dev/null
    local n pids=() failed=0 running=0
    for (( n=1; n<=NODES; n++ )); do
        if ours "$n"; then running=$((running + 1)); fi
    done
    if (( running == 0 )); then
        # A new cluster: no node may bring back the membership or queues of
        # an earlier one (say, one left behind by a killed test run).
        for (( n=1; n<=NODES; n++ )); do
            tcp_open "$(port_of "$n")" || forget_data "$n"
        done
    fi
    # Every port checked before any node starts: a conflict on node 3 must
    # not leave nodes 1 and 2 booting behind the error.
    for (( n=1; n<=NODES; n++ )); do
        if ! ours "$n" && tcp_open "$(port_of "$n")"; then
            die "127.0.0.1:$(port_of "$n") is in use by something this script did not start; pick another QTASKS_CLUSTER_RABBITMQ_PORT"
        fi
    done
    for (( n=1; n<=NODES; n++ )); do
        if ours "$n"; then continue; fi
        node start "$n" 2>&1 | sed "s/^/[node $n] /" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    for (( n=1; n<=NODES; n++ )); do
        ours "$n" || { warn "node $n did not start"; failed=1; }
    done
    (( failed == 0 )) || die "the cluster did not start (see above); deploy/rabbitmq-cluster.sh stop cleans up"
    local members
    # Members, running or not: a member that is only cut off (a partition)
    # must not be reset and joined again, which drops its clients.
    members=$(cluster_field disk_nodes)
    for (( n=2; n<=NODES; n++ )); do
        if [[ " $members " == *" $(node_name "$n") "* ]]; then continue; fi
        log "joining $(node_name "$n") to $(node_name 1)"
        node ctl "$n" stop_app >/dev/null
        node ctl "$n" join_cluster "$(node_name 1)" >/dev/null
        node ctl "$n" start_app >/dev/null
    done
    for (( n=1; n<=NODES; n++ )); do
        QTASKS_RABBITMQ_PORT=$(port_of "$n") "$NODE_SCRIPT" wait >/dev/null
    done
    members=$(members_of_node1)
    local count
    count=$(wc -w <<<"$members")
    (( count == NODES )) || die "the cluster has $count running nodes, not $NODES: $members"
    log "ready: $NODES nodes ($members)"
    log "urls: $(urls)"
}

# forget_data N: delete node N's data (its queues, messages, cluster
# membership), if deploy/rabbitmq.sh made it for this port.
forget_data() {
    local data
    data=$(cat "$QTASKS_RUN_DIR/rabbitmq-$(port_of "$1")/datadir" 2>/dev/null || true)
    if [[ -n $data && -d $data/data ]]; then
        rm -rf "${data:?}/data"
    fi
}

stop() {
    local n
    for (( n=NODES; n>=1; n-- )); do
        if ours "$n" || [[ -f $QTASKS_RUN_DIR/rabbitmq-$(port_of "$n")/started.pid ]]; then
            node stop "$n"
        elif tcp_open "$(port_of "$n")"; then
            log "node $n: 127.0.0.1:$(port_of "$n") is a broker this script did not start; left alone"
            continue
        else
            log "node $n: not running"
        fi
        # Every node's data goes, also a node stopped earlier (stop-node):
        # a node that kept its data would wait at the next start for peers
        # that no longer know it.
        forget_data "$n"
    done
}

status() {
    local n running=0
    for (( n=1; n<=NODES; n++ )); do
        if node status "$n" >/dev/null 2>&1; then
            running=$((running + 1))
            echo "node $n: $(node_name "$n") running on 127.0.0.1:$(port_of "$n")$(ours "$n" && echo ' (started by this script)')"
        else
            echo "node $n: $(node_name "$n") not running"
        fi
    done
    if ours 1; then echo "running members (as node 1 sees them): $(members_of_node1)"; fi
    (( running > 0 )) || return 3
}

urls() {
    local n out=()
    for (( n=1; n<=NODES; n++ )); do out+=("$(url_of "$n")"); done
    (IFS=';'; echo "${out[*]}")
}

case $cmd in
    start) start ;;
    stop) stop ;;
    status) status ;;
    urls) urls ;;
    stop-node) node_index "${2:-}"; node stop "$2" ;;
    start-node)
        node_index "${2:-}"
        # Only back into a running cluster: alone, the node would come up as
        # a cluster of one (or wait for peers that never come).
        others=0
        for (( m=1; m<=NODES; m++ )); do
            if (( m != $2 )) && ours "$m"; then others=$((others + 1)); fi
        done
        (( others > 0 )) || die "no other node of the cluster runs (ports $(port_of 1)-$(port_of "$NODES")): use start"
        node start "$2"
        ;;
    ctl) node_index "${2:-}"; n=$2; shift 2; node ctl "$n" "$@" ;;
esac

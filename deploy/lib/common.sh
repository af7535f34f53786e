# shellcheck shell=bash
# Helpers shared by the deploy/ scripts. Source it; do not execute it.
#
# Rules these helpers implement:
#   * servers bind to 127.0.0.1 only;
#   * a script stops only what it started itself, by the PID it recorded
#     (never by process name);
#   * runtime state lives under <repo>/.run/ (gitignored).

QTASKS_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
QTASKS_RUN_DIR="${QTASKS_REPO_ROOT}/.run"

log()  { printf '[%s] %s\n' "${QTASKS_LOG_TAG:-deploy}" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "${QTASKS_LOG_TAG:-deploy}" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "${QTASKS_LOG_TAG:-deploy}" "$*" >&2; exit 1; }

# validate_port NAME VALUE [MAX]
validate_port() {
    local name=$1 value=$2 max=${3:-65535}
    if ! [[ $value =~ ^[0-9]+$ ]] || (( value < 1 || value > max )); then
        die "$name must be a TCP port number between 1 and $max (got '$value')"
    fi
}

# pid_alive PID: true when PID exists and is not a zombie. (PID 1 of a
# container may not reap orphans, so `kill -0` alone would report dead
# servers as alive.)
pid_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# pid_environ_has PID VAR=VALUE: checks the process environment (guards
# against a recycled PID before we signal it).
pid_environ_has() {
    local pid=$1 entry=$2
    [[ -r /proc/$pid/environ ]] || return 1
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF -- "$entry"
}

# pid_comm PID: the command name of PID ("" when gone).
pid_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

# descendants PID: all descendant PIDs of PID, children first listed after
# their parent (depth-first).
descendants() {
    local parent=$1 child
    for child in $(ps -o pid= --ppid "$parent" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# wait_pids_gone TIMEOUT_SECONDS PID...: true when all are gone in time.
wait_pids_gone() {
    local timeout=$1; shift
    local deadline=$((SECONDS + timeout)) pid any
    while :; do
        any=0
        for pid in "$@"; do pid_alive "$pid" && { any=1; break; }; done
        (( any == 0 )) && return 0
        (( SECONDS >= deadline )) && return 1
        sleep 0.2
    done
}

# stop_pid_tree NAME PID GRACE_SECONDS: SIGTERM to PID, wait up to GRACE
# seconds for PID and every descendant it had, then SIGKILL whatever of
# that tree is left.
stop_pid_tree() {
    local name=$1 pid=$2 grace=$3
    local -a tree
    mapfile -t tree < <(echo "$pid"; descendants "$pid")
    log "stopping $name: SIGTERM to pid $pid (tree: ${tree[*]})"
    kill -TERM "$pid" 2>/dev/null || true
    if wait_pids_gone "$grace" "${tree[@]}"; then
        log "$name stopped"
        return 0
    fi
    warn "$name did not stop within ${grace}s; sending SIGKILL to its process tree"
    # Re-collect: the tree may have grown while shutting down.
    local p
    mapfile -t -O "${#tree[@]}" tree < <(descendants "$pid")
    for p in "${tree[@]}"; do
        if pid_alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    wait_pids_gone 10 "${tree[@]}" || warn "some processes of $name survived SIGKILL: ${tree[*]}"
}

# tcp_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
    # shellcheck disable=SC2016  # $1 expands in the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# listener_pid PORT: PID of the process listening on TCP PORT (needs ss).
listener_pid() {
    { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2; } || true
}

# as_user USER: sets the array AS_USER to a command prefix that runs a
# command as USER (uid, gid, supplementary groups). setpriv exec()s in place
# (no intermediate process, unlike su/runuser), so the PID of a backgrounded
# "${AS_USER[@]}" server is the PID of the server itself.
as_user() {
    if [[ $(id -un) == "$1" ]]; then
        AS_USER=()
    else
        AS_USER=(setpriv "--reuid=$1" "--regid=$1" --init-groups --)
    fi
}

# user_can_write USER DIR: USER can reach (all parents traversable) and
# write DIR.
user_can_write() {
    local -a AS_USER
    as_user "$1"
    "${AS_USER[@]}" test -w "$2" -a -x "$2" 2>/dev/null
}

# service_data_dir USER SERVICE_DIR: where USER-owned server data goes.
# Preferred: <repo>/.run/<service>-<port>/ (SERVICE_DIR). When USER cannot
# traverse the repo's parent directories (a checkout under /root, say), we
# do NOT loosen permissions of directories outside the repo; the data goes
# to /var/tmp/qtasks-<hash of repo path>/<service>-<port>/ instead. PID files
# always stay in SERVICE_DIR.
service_data_dir() {
    local user=$1 svcdir=$2 probe
    probe="$svcdir/.probe-$$"
    mkdir -p "$probe"
    chown "$user:" "$probe"
    if user_can_write "$user" "$probe"; then
        rmdir "$probe"
        echo "$svcdir"
        return
    fi
    rmdir "$probe"
    local hash
    hash=$(printf '%s' "$QTASKS_REPO_ROOT" | sha1sum | cut -c1-12)
    echo "/var/tmp/qtasks-$hash/$(basename "$svcdir")"
}

#!/usr/bin/env bash
# Installs what building and testing swift-qtasks needs. See --help.
set -euo pipefail

QTASKS_LOG_TAG=install-deps
# shellcheck source=deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# The Python packages of the venv, pinned: pika is an independent AMQP
# client for the integration tests; Celery (with its kombu) and QTasks (with
# its RabbitMQ extra, aio-pika) are the foreign producers the interop tests
# drive (docs/interop.md); Dramatiq (its RabbitmqBroker uses pika) and
# Taskiq with taskiq-aio-pika are the other foreign producers (#14).
PYTHON_PACKAGES=(
    pika==1.3.2
    celery==5.5.3
    kombu==5.5.4
    "qtasks[rabbitmq]==1.7.3"
    aio-pika==10.2.1
    dramatiq==2.2.1
    taskiq==0.13.0
    taskiq-aio-pika==0.6.1
)
VENV="${QTASKS_RUN_DIR}/venv"
PYTHON=${QTASKS_PYTHON:-python3}

# Debian packages: the C client and its tools, the servers the integration
# tests run, the C libraries the State backends link, and the small tools
# the deploy/ scripts use (ss, ps, setpriv) and the linter a test runs on
# them (shellcheck), curl (deploy/test.sh probes the management API);
# headless Chromium and its WebDriver for the dashboard's browser tests
# (Tests/TestSupport/ChromeDriver.swift), with a font so that pages render
# text (and screenshots show it) on a machine without a desktop.
PACKAGES=(
    librabbitmq-dev
    rabbitmq-server
    amqp-tools
    redis-server
    libhiredis-dev
    libsqlite3-dev
    pkg-config
    iproute2
    procps
    util-linux
    shellcheck
    curl
)
# Only the tests need a browser: --no-browser (deploy/demo.sh) leaves it out.
BROWSER_PACKAGES=(
    chromium
    chromium-driver
    fonts-dejavu-core
)

usage() {
    cat <<EOF
Usage: deploy/install-deps.sh [--check] [--no-venv] [--no-browser]

Installs, only when missing (checked with dpkg -s), the Debian packages:
  ${PACKAGES[*]}
  ${BROWSER_PACKAGES[*]} (for the dashboard's browser tests)
  (+ python3-venv when $PYTHON cannot create a virtual environment)
running 'apt-get update' once, and only if something must be installed.
Services are never started by the packages: if /usr/sbin/policy-rc.d does not
exist, one that denies every start (exit 101) is in place during the install
and removed afterwards. The servers are started by deploy/rabbitmq.sh and
deploy/redis.sh instead, bound to 127.0.0.1.

Then creates the Python venv ${VENV} with ${PYTHON_PACKAGES[*]}
(used by integration tests: pika as an independent AMQP client, Celery and
QTasks as foreign producers), unless present with these versions.

Options:
  --check    only report what is missing; exit 1 if anything is
  --no-venv  skip the Python venv
  --no-browser  skip chromium and chromedriver (the demo needs no browser)

Environment: QTASKS_PYTHON (default python3) is the Python for the venv.
Installing packages needs root.
EOF
}

check_only=0
with_venv=1
with_browser=1
for arg in "$@"; do
    case $arg in
        -h|--help) usage; exit 0 ;;
        --check) check_only=1 ;;
        --no-venv) with_venv=0 ;;
        --no-browser) with_browser=0 ;;
        *) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive

installed() {
    dpkg -s "$1" 2>/dev/null | grep -qx 'Status: install ok installed'
}

python_has_venv() {
    command -v "$PYTHON" >/dev/null && "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null
}

venv_ok() {
    [[ -x $VENV/bin/python ]] && "$VENV/bin/python" - "${PYTHON_PACKAGES[@]}" <<'EOF' 2>/dev/null
import re, sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, wanted = re.sub(r"\[.*\]", "", pin).split("==")
    if version(name) != wanted:
        sys.exit(1)
EOF
}

wanted=("${PACKAGES[@]}")
if (( with_browser )); then wanted+=("${BROWSER_PACKAGES[@]}"); fi
if (( with_venv )) && ! python_has_venv; then
    if [[ $PYTHON == python3 || $PYTHON == /usr/bin/python3* ]]; then
        wanted+=(python3 python3-venv)
    else
        warn "$PYTHON cannot create venvs and is not Debian's python3; python3-venv will not help it"
    fi
fi

missing=()
for pkg in "${wanted[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if (( check_only )); then
    status=0
    if (( ${#missing[@]} )); then
        log "missing packages: ${missing[*]}"
        status=1
    else
        log "all packages installed"
    fi
    if (( with_venv )); then
        if venv_ok; then log "venv $VENV has ${PYTHON_PACKAGES[*]}"
        else log "venv $VENV missing or without ${PYTHON_PACKAGES[*]}"; status=1; fi
    fi
    exit "$status"
fi

if (( ${#missing[@]} == 0 )); then
    log "all packages already installed: ${wanted[*]}"
else
    [[ $EUID -eq 0 ]] || die "missing packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})"
    command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu only"
    log "missing packages: ${missing[*]}"

    POLICY=/usr/sbin/policy-rc.d
    created_policy=0
    remove_policy() {
        if (( created_policy )) && [[ -f $POLICY ]]; then
            rm -f "$POLICY"
            log "removed temporary $POLICY"
        fi
    }
    trap remove_policy EXIT
    if [[ ! -e $POLICY ]]; then
        printf '#!/bin/sh\n# temporary, by swift-qtasks deploy/install-deps.sh: start no services\nexit 101\n' > "$POLICY"
        chmod 755 "$POLICY"
        created_policy=1
        log "created temporary $POLICY (exit 101): packages will not start services"
    else
        log "$POLICY exists already; leaving it as it is"
    fi

    log "running apt-get update"
    apt-get update -q
    log "running apt-get install ${missing[*]}"
    if ! apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}"; then
        # A maintainer script that fails (typically trying to start a service
        # without an init system) leaves a package unconfigured; try once more.
        warn "apt-get install failed; retrying the configuration of pending packages"
        dpkg --configure --pending || true
    fi
    still=()
    for pkg in "${missing[@]}"; do
        installed "$pkg" || still+=("$pkg")
    done
    (( ${#still[@]} == 0 )) || die "not installed after apt-get: ${still[*]} (see the apt output above)"
    log "installed: ${missing[*]}"
    remove_policy
    created_policy=0
    trap - EXIT
fi

if (( with_venv )); then
    if venv_ok; then
        log "venv $VENV already has ${PYTHON_PACKAGES[*]}"
    else
        python_has_venv || die "$PYTHON cannot create a virtual environment (no venv/ensurepip module)"
        mkdir -p "$QTASKS_RUN_DIR"
        if [[ -e $VENV ]]; then
            log "recreating venv $VENV (a pinned package is missing or the venv is broken)"
            "$PYTHON" -m venv --clear "$VENV"
        else
            log "creating venv $VENV with $("$PYTHON" --version 2>&1)"
            "$PYTHON" -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
        venv_ok || die "$VENV lacks one of ${PYTHON_PACKAGES[*]} after pip install"
        log "venv $VENV ready with ${PYTHON_PACKAGES[*]}"
    fi
fi

command -v swift >/dev/null \
    || warn "swift is not on PATH: install a Swift toolchain (swift.org) to build and test"
log "done"

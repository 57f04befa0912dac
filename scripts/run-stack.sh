#!/usr/bin/env bash
# run-stack.sh: run the four daemons in the foreground on one VIRT_ROOT
# (`make run`).
#
# Start order follows the start-up contract: virtstoraged and virtnetworkd
# first (each must accept connections on its read-write socket before the
# next starts), then virtqemud (which reconnects running domains and needs
# the other two), then virtproxyd. Each daemon's output is prefixed with its
# name. Ctrl-C / SIGTERM stops them in reverse order (SIGTERM, then SIGKILL
# after STOP_TIMEOUT seconds). If any daemon exits on its own, the rest are
# stopped and the script exits non-zero.
#
# Environment:
#   VIRT_ROOT       root of every system path (default: $PWD/run-root)
#   BIN_DIR         where the binaries are (default: <repo>/target/debug)
#   RUN_STACK_ARGS  extra arguments for every daemon (e.g. "-v")
#   START_TIMEOUT   seconds to wait for each socket (default 20)
#   STOP_TIMEOUT    seconds to wait for each daemon to exit (default 15)
#   RUST_LOG, OTEL_EXPORTER_OTLP_ENDPOINT are passed through to the daemons.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DAEMONS=(virtstoraged virtnetworkd virtqemud virtproxyd)
BIN_DIR=${BIN_DIR:-$REPO/target/debug}
START_TIMEOUT=${START_TIMEOUT:-20}
STOP_TIMEOUT=${STOP_TIMEOUT:-15}
read -r -a EXTRA_ARGS <<<"${RUN_STACK_ARGS:-}"

log() { printf '[run-stack] %s\n' "$*"; }

export VIRT_ROOT=${VIRT_ROOT:-$PWD/run-root}
mkdir -p "$VIRT_ROOT" || { log "cannot create VIRT_ROOT=$VIRT_ROOT"; exit 1; }
VIRT_ROOT=$(cd "$VIRT_ROOT" && pwd)

PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=$(command -v python3) || { log "python3 is needed to probe sockets"; exit 1; }

for d in "${DAEMONS[@]}"; do
    if [[ ! -x $BIN_DIR/$d ]]; then
        log "$BIN_DIR/$d not found: build first (cargo build --workspace --bins, or make run)"
        exit 1
    fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run-stack.XXXXXX") || exit 1
declare -A PID=()     # daemon -> pid
declare -A LOGGER=()  # daemon -> pid of its prefixing sed
STARTED=()            # daemons in start order
STOPPING=0

rw_socket() { printf '%s/run/virt/%s-sock' "$VIRT_ROOT" "$1"; }

alive() { [[ -n ${PID[$1]:-} ]] && kill -0 "${PID[$1]}" 2>/dev/null; }

# Exit status of daemon $1, once it has exited (bash reaps it for us).
status_of() {
    local rc=0
    wait "${PID[$1]}" 2>/dev/null || rc=$?
    echo "$rc"
}

describe_status() {
    local rc=$1
    if ((rc > 128)); then
        echo "killed by signal $((rc - 128))"
    else
        echo "exited with status $rc"
    fi
}

start_daemon() {
    local d=$1 fifo=$WORK/$1.log
    mkfifo "$fifo" || return 1
    # The prefixer ignores INT/TERM so that it outlives the daemon and
    # prints its last words; it ends at EOF.
    (trap '' INT TERM HUP; exec sed -u "s/^/[$d] /" <"$fifo") &
    LOGGER[$d]=$!
    # setsid: a terminal Ctrl-C reaches only this script, which then stops
    # the daemons in order. setsid does not fork here (we are not a process
    # group leader), so $! is the daemon itself.
    setsid "$BIN_DIR/$d" "${EXTRA_ARGS[@]}" >"$fifo" 2>&1 </dev/null &
    PID[$d]=$!
    STARTED+=("$d")
    log "started $d (pid ${PID[$d]})"
}

# Whether the Unix socket $1 accepts connections.
accepts() {
    "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(1)
try:
    s.connect(sys.argv[1])
except OSError:
    sys.exit(1)
' "$1" 2>/dev/null
}

# Waits until daemon $1 accepts connections on its read-write socket.
wait_ready() {
    local d=$1 sock deadline
    sock=$(rw_socket "$d")
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$d"; then
            log "$d $(describe_status "$(status_of "$d")") while starting"
            return 1
        fi
        if accepts "$sock" && alive "$d"; then
            return 0
        fi
        sleep 0.1
    done
    log "$d did not accept connections on $sock within ${START_TIMEOUT}s"
    return 1
}

stop_daemon() {
    local d=$1 deadline
    alive "$d" || return 0
    kill -TERM "${PID[$d]}" 2>/dev/null
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$d" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if alive "$d"; then
        log "$d did not stop within ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "${PID[$d]}" 2>/dev/null
        while alive "$d"; do sleep 0.1; done
    fi
    log "stopped $d ($(describe_status "$(status_of "$d")"))"
}

stop_all() {
    local i d
    ((STOPPING)) && return 0
    STOPPING=1
    trap '' INT TERM HUP
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_daemon "${STARTED[i]}"
    done
    # Give the prefixers a moment to drain, then end them (a child a daemon
    # left behind may still hold the pipe open).
    for d in "${!LOGGER[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "${LOGGER[$d]}" 2>/dev/null || break
            sleep 0.1
        done
        kill "${LOGGER[$d]}" 2>/dev/null
    done
    rm -rf "$WORK"
}

on_signal() {
    log "received SIG$1: stopping daemons"
    stop_all
    exit 0
}

trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
trap 'stop_all' EXIT

log "VIRT_ROOT=$VIRT_ROOT"
for d in "${DAEMONS[@]}"; do
    if accepts "$(rw_socket "$d")"; then
        log "a $d already serves $(rw_socket "$d"): is another stack running on this VIRT_ROOT?"
        exit 1
    fi
done
for d in "${DAEMONS[@]}"; do
    start_daemon "$d" || { log "cannot start $d"; exit 1; }
    wait_ready "$d" || { log "start-up failed: stopping the stack"; exit 1; }
    log "$d ready on $(rw_socket "$d")"
done

BIN_SHOWN=$BIN_DIR
[[ $BIN_DIR == "$PWD"/* ]] && BIN_SHOWN=${BIN_DIR#"$PWD"/}
cat <<EOF
[run-stack] all daemons running. From another shell:
[run-stack]   export VIRT_ROOT=$VIRT_ROOT
[run-stack]   $BIN_SHOWN/virtsh -c qemu:///system version        # read-write socket
[run-stack]   $BIN_SHOWN/virtsh -r -c qemu:///system version     # read-only socket
[run-stack] Ctrl-C stops the stack.
EOF

# Supervise: wake up when any daemon exits (or a signal arrives).
while true; do
    exited=""
    wait -n -p exited "${PID[@]}"
    rc=$?
    [[ -n $exited ]] || continue # interrupted by a trap, or nothing to report
    for d in "${STARTED[@]}"; do
        if [[ ${PID[$d]} == "$exited" ]]; then
            log "$d (pid $exited) $(describe_status "$rc") unexpectedly: stopping the rest"
            unset 'PID[$d]'
            break
        fi
    done
    stop_all
    exit 1
done

# The startup breakdown of `sync-trace run` (docs/performance.md, "Startup breakdown"):
#   cargo xtask vm --kernel 6.12 --script xtask/src/bench/startup-phases.sh
# or, two builds alternating in one boot (the other at /bin/sync-trace-before):
#   cargo xtask vm --kernel 6.12 --file OLD_BINARY:/bin/sync-trace-before \
#       --script xtask/src/bench/startup-phases.sh
# RUNS runs of each build (edit below: the guest gets no environment). Every run prints
# sync-trace's `startup:` lines (SYNC_TRACE_STARTUP=1: time and VmHWM at the end of each
# phase) prefixed with its build (`after`, or `before`), then
# `RESULT before|after ready_us=N hwm_kb=N`: exec -> ready (wall clock in µs from adjtimex,
# as bench.sh) and VmHWM 2 s after ready.
RUNS=7
us() { set -- $(adjtimex | grep tv_); echo $(($2 * 1000000 + $4)); }
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
t=$(us); n=$(wc -l </proc/kallsyms)
echo "kernel=$(uname -r) kallsyms_lines=$n wc_us=$(($(us) - t)) btf_bytes=$(wc -c </sys/kernel/btf/vmlinux)"
one() { # $1 label, $2 binary
    rm -f /tmp/fifo; mkfifo /tmp/fifo
    t0=$(us)
    SYNC_TRACE_STARTUP=1 $2 run >/tmp/fifo 2>&1 &
    PID=$!
    exec 4</tmp/fifo
    READY_US=
    while read -r -t 300 line <&4; do
        case "$line" in
            ready) READY_US=$(($(us) - t0)); break ;;
            startup:*) echo "$1 $line" ;;
        esac
    done
    cat <&4 >/dev/null &
    DRAIN=$!
    exec 4<&-
    [ -n "$READY_US" ] || { echo "$1: sync-trace never said ready"; exit 1; }
    sleep 2
    echo "RESULT $1 ready_us=$READY_US hwm_kb=$(hwm $PID)"
    kill -TERM "$PID"; wait "$PID"; wait "$DRAIN"
}
i=0
while [ "$i" -lt "$RUNS" ]; do
    [ -x /bin/sync-trace-before ] && one before /bin/sync-trace-before
    one after sync-trace
    i=$((i + 1))
done

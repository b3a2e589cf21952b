# exec -> ready and VmHWM of two builds of `sync-trace run` in one boot, alternating
# (docs/performance.md, "Startup breakdown"): the other build at /bin/sync-trace-before.
#   cargo xtask vm --kernel 6.12 --file OLD_BINARY:/bin/sync-trace-before \
#       --script xtask/src/bench/startup-ab.sh
# PAIRS runs of each (7: edit below to change); every run prints its `startup:` lines (SYNC_TRACE_STARTUP=1)
# prefixed with `before` or `after`, then `RESULT before|after ready_us=N hwm_kb=N`, taken as
# startup-phases.sh takes them.
PAIRS=7
us() { set -- $(adjtimex | grep tv_); echo $(($2 * 1000000 + $4)); }
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
t=$(us); n=$(wc -l </proc/kallsyms)
echo "kernel=$(uname -r) kallsyms_lines=$n wc_us=$(($(us) - t))"
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
while [ "$i" -lt "$PAIRS" ]; do
    one before /bin/sync-trace-before
    one after sync-trace
    i=$((i + 1))
done

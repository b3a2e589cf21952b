# The startup breakdown of `sync-trace run` (docs/performance.md, "Startup breakdown"):
#   cargo xtask vm --kernel 6.12 --script xtask/src/bench/startup-phases.sh
# Each run prints sync-trace's `startup:` lines (SYNC_TRACE_STARTUP=1: time and VmHWM at the
# end of each phase), then exec -> ready (wall clock in µs from adjtimex, as bench.sh) and
# VmHWM 2 s after ready.
us() { set -- $(adjtimex | grep tv_); echo $(($2 * 1000000 + $4)); }
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
echo "kernel=$(uname -r) kallsyms_lines=$(wc -l </proc/kallsyms) btf_bytes=$(wc -c </sys/kernel/btf/vmlinux)"
for i in 1 2 3; do
    rm -f /tmp/fifo; mkfifo /tmp/fifo
    t0=$(us)
    SYNC_TRACE_STARTUP=1 sync-trace run >/tmp/fifo 2>&1 &
    PID=$!
    exec 4</tmp/fifo
    READY_US=
    while read -r -t 300 line <&4; do
        case "$line" in
            ready) READY_US=$(($(us) - t0)); break ;;
            startup:*) echo "$line" ;;
        esac
    done
    cat <&4 >/dev/null &
    DRAIN=$!
    exec 4<&-
    [ -n "$READY_US" ] || { echo "run=$i: sync-trace never said ready"; exit 1; }
    sleep 2
    echo "run=$i ready_us=$READY_US hwm_kb=$(hwm $PID)"
    kill -TERM "$PID"; wait "$PID"; wait "$DRAIN"
done

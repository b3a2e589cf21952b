# Guest figures of `cargo xtask bench` (docs/performance.md, "Guest figures").
# Vars from the host: STEPS (the steps to run: startup percall detect hotadd devmap idle),
# RUNS, STORM, RING, IDLE_SECS, FEW, MANY, DIMM_ADDRS (hex, one per hot-add cycle), DIMM_SIZE
# (bytes), DEVMAP_ADDRS (hex: a warm-up, then one per devmap cycle). Output: "=== step NAME"
# sections of key=value lines (xtask/src/bench/figures/ reads them).
# bpftrace (Debian's package, with its shared libraries) is in /usr/bin and /usr/lib.
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu
load_st_populate
T=/sys/kernel/debug/st_populate
MEM=/sys/devices/system/memory
BS=$((0x$(cat $MEM/block_size_bytes)))
ONE_LINER='kprobe:arch_sync_kernel_mappings, kprobe:sync_global_pgds { @[probe, kstack] = count(); }'

# Wall clock in µs: busybox `date` has no %N, adjtimex(2) reports tv_usec.
us() { set -- $(adjtimex | grep tv_); echo $(($2 * 1000000 + $4)); }
# want STEP: whether the host asked for STEP (`bench --steps`).
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

# timed_start PATTERN CMD...: CMD in the background, stdout and stderr into a FIFO; returns
# once a whole line matches PATTERN (a shell glob), with PID and READY_US (from just before
# the fork) set.
timed_start() {
    marker=$1; shift
    rm -f /tmp/fifo; mkfifo /tmp/fifo
    t0=$(us)
    "$@" >/tmp/fifo 2>&1 &
    PID=$!
    exec 4</tmp/fifo
    READY_US=
    # A tool that never says it is ready: given up after 300 s (or when it exits).
    while read -r -t 300 line <&4; do
        case "$line" in $marker) READY_US=$(($(us) - t0)); break ;; esac
        echo "out: $line"
    done
    # Keep draining, so the tool never blocks on a full pipe.
    cat <&4 >/dev/null &
    DRAIN=$!
    exec 4<&-
    [ -n "$READY_US" ]
}
timed_stop() {
    kill -"$1" "$PID" 2>/dev/null
    wait "$PID"
    wait "$DRAIN"
}

step start
echo "kernel=$(uname -r) cpus=$(nproc) block=$BS"
echo "bpftrace=$(bpftrace --version 2>&1)"

# exec → ready and peak RSS, alternating: sync-trace's `ready` (stderr), bpftrace's
# "Attaching 2 probes..." (stdout). VmHWM is read 2 s later, once everything is attached.
if want startup; then
    step startup
    # The runs' counter is `run`: lib.sh's start_run counts its own waits in `i`.
    run=1
    while [ $run -le "$RUNS" ]; do
        if timed_start ready sync-trace run; then
            sleep 2; echo "startup tool=sync-trace run=$run us=$READY_US hwm_kb=$(hwm $PID)"
        else
            echo "startup tool=sync-trace run=$run failed"
        fi
        timed_stop TERM
        if timed_start 'Attaching*' bpftrace -e "$ONE_LINER"; then
            sleep 2; echo "startup tool=bpftrace run=$run us=$READY_US hwm_kb=$(hwm $PID)"
        else
            echo "startup tool=bpftrace run=$run failed"
        fi
        timed_stop TERM
        run=$((run + 1))
    done
fi

# Per-call cost: `lossy` makes 2×STORM syncs around one population; the trigger's wall time
# untraced, under fentry/fexit and under kprobe/kretprobe (a ring large enough for all).
if want percall; then
    step percall
    echo "$STORM" >/sys/module/st_populate/parameters/storm
    storm() {
        t0=$(us); echo lossy >$T/trigger; t1=$(us)
        echo "percall method=$1 calls=$((2 * STORM)) us=$((t1 - t0))"
    }
    run=1
    while [ $run -le "$RUNS" ]; do
        storm none
        for m in fentry kprobe; do
            start_run --attach $m --test-ring-size "$RING" || exit 1
            grep -o "attached [a-z_]* via [a-z]*" /tmp/run.err | sed "s/^/attach: want=$m /"
            # The daemon is stopped during the storm, so the time is the probes' own (their
            # records wait in the ring, which holds them all: `lost` below must stay 0).
            kill -STOP "$RUN_PID"
            storm $m
            kill -CONT "$RUN_PID"
            sleep 2
            kill -TERM "$RUN_PID"; wait "$RUN_PID"
            echo "lost=$(grep -c '"event":"lost"' /tmp/run.json) syncs=$(grep -c '"event":"sync"' /tmp/run.json)"
        done
        run=$((run + 1))
    done
    echo 4096 >/sys/module/st_populate/parameters/storm
fi

# Detection delay: a never-synced population at the default settings; the host pairs the
# module's ts_ns with the `unsynced` record of its slot.
if want detect; then
    step detect
    run=1
    while [ $run -le "$RUNS" ]; do
        start_run || exit 1
        echo never >$T/trigger && cat $T/last
        sleep 1
        kill -TERM "$RUN_PID"; wait "$RUN_PID"
        grep '"event":"unsynced"' /tmp/run.json
        run=$((run + 1))
    done
fi

# Hot-add cycles: a DIMM at a new top-level slot of the direct map each cycle (the host
# plugs it at checkpoint bench-add-N), its blocks onlined by the kernel itself
# (auto_online_blocks, as 6.12's default already does); untraced and traced alternate. Each
# DIMM is offlined and unplugged afterwards (untimed). Two times per cycle: `us`, the guest's
# wall clock from just before the checkpoint to every block online (the host's QMP round
# trip, ACPI's notification and the shell's polling included); `kernel_us`, the kernel's own
# part on the kernel log's clock, from init_memory_mapping()'s pr_debug line for the DIMM
# (arch_add_memory(), enabled through dynamic debug) to st_populate's MEM_ONLINE line for its
# last block (tests/modules/st_populate/st_online.c).
if want hotadd; then
    step hotadd
    DD=/sys/kernel/debug/dynamic_debug/control
    AUTO=/sys/devices/system/memory/auto_online_blocks
    echo 'func init_memory_mapping +p' >$DD ||
        { echo "hotadd: cannot enable init_memory_mapping's pr_debug in $DD (CONFIG_DYNAMIC_DEBUG)"; exit 1; }
    auto_was=$(cat $AUTO) && echo online_movable >$AUTO ||
        { echo "hotadd: cannot set $AUTO to online_movable"; exit 1; }
    LOG_ONLINE=/sys/module/st_populate/parameters/log_online
    echo 1 >$LOG_ONLINE || { echo "hotadd: cannot write $LOG_ONLINE (an older st_populate?)"; exit 1; }
    # kernel_us ADDR: µs from the init_memory_mapping line of [ADDR, ...) to the last onlined
    # block's line, in the kernel log read since the cycle began (dmesg -c cleared it).
    kernel_us() {
        dmesg | awk -v mem="$(printf '[mem 0x%x-' "$1")" '
            { ts = $0; sub(/^\[ */, "", ts); sub(/\].*/, "", ts) }
            index($0, "init_memory_mapping: " mem) && start == "" { start = ts + 0 }
            /st_populate: online pfn=/ { end = ts + 0 }
            END { if (start != "" && end != "" && end >= start) printf "%.0f", (end - start) * 1e6 }'
    }
    online() { [ "$(cat $MEM/memory$1/state 2>/dev/null)" = online ]; }
    all_online() { for b in $(range_blocks $1 $2); do online $b || return 1; done; }
    range_blocks() {
        b=$(($1 / BS)); e=$((($1 + $2) / BS))
        while [ $b -lt $e ]; do echo $b; b=$((b + 1)); done
    }
    present() { n=0; for b in $(range_blocks $1 $2); do [ -d $MEM/memory$b ] && n=$((n + 1)); done; echo $n; }
    [ $((DIMM_SIZE % BS)) = 0 ] && [ "$DIMM_SIZE" -ge "$BS" ] ||
        { echo "hotadd: DIMM size $DIMM_SIZE is not a multiple of the block size $BS"; exit 1; }
    n=0
    for a in $DIMM_ADDRS; do
        a=$((a))
        if [ $((n % 2)) = 0 ]; then mode=untraced; else mode=traced; start_run || exit 1; fi
        # Either side starts from a quiet guest: a traced cycle measures a daemon at rest, as it
        # is once running, not one still settling after `ready`.
        sleep 1
        dmesg -c >/dev/null
        t0=$(us)
        checkpoint bench-add-$n || exit 1
        k=0
        while ! all_online $a $DIMM_SIZE && [ $k -lt 20000 ]; do usleep 1000; k=$((k + 1)); done
        t1=$(us)
        echo "hotadd cycle=$n mode=$mode addr=$a us=$((t1 - t0)) kernel_us=$(kernel_us $a) blocks=$(present $a $DIMM_SIZE) state=$(cat $MEM/memory$((a / BS))/state 2>&1)"
        if [ $mode = traced ]; then
            sleep 1
            kill -TERM "$RUN_PID"; wait "$RUN_PID"
            echo "populates=$(grep -c '"event":"populate"' /tmp/run.json) paired=$(grep -c '"event":"paired"' /tmp/run.json) unsynced=$(grep -c '"event":"unsynced"' /tmp/run.json)"
        fi
        for b in $(range_blocks $a $DIMM_SIZE); do echo offline >$MEM/memory$b/state; done
        checkpoint bench-del-$n || exit 1
        k=0
        while [ "$(present $a $DIMM_SIZE)" != 0 ] && [ $k -lt 1200 ]; do sleep 0.1; k=$((k + 1)); done
        n=$((n + 1))
    done
    echo "$auto_was" >$AUTO
    echo 'func init_memory_mapping -p' >$DD
    echo 0 >$LOG_ONLINE
fi

# Compound devmap cycles: memremap_pages() of 128 MiB with PMD-sized compound struct pages
# (the device-dax path: the module's devmap action, hundreds of vmemmap populate calls), at a
# new top-level slot of the direct map each cycle; the module times the call in the kernel
# (start_ns, end_ns), so neither the serial line nor the host is in the figure. devmap_phys
# is a load-time parameter: the module is loaded again at each address (rmmod
# memunmap_pages() the last range). The first address is a warm-up, untimed; then untraced
# and traced alternate.
if want devmap; then
    step devmap
    at_devmap() { rmmod st_populate && load_st_populate devmap_phys="$1"; }
    set -- $DEVMAP_ADDRS
    at_devmap "$1" && echo devmap >$T/trigger && echo "warm-up: $(cat $T/last)"
    shift
    n=0
    for a in "$@"; do
        at_devmap "$a" || exit 1
        if [ $((n % 2)) = 0 ]; then mode=untraced; else mode=traced; start_run || exit 1; fi
        # As for the hot-add: either side starts from a quiet guest, a daemon at rest.
        sleep 1
        if echo devmap >$T/trigger; then line=$(cat $T/last); else line="memremap failed"; fi
        echo "devmap cycle=$n tracing=$mode $line"
        if [ $mode = traced ]; then
            sleep 1
            kill -TERM "$RUN_PID"; wait "$RUN_PID"
            echo "populates=$(grep -c '"event":"populate"' /tmp/run.json) calls=$(grep -c '"event":"call"' /tmp/run.json) paired=$(grep -c '"event":"paired"' /tmp/run.json) unsynced=$(grep -c '"event":"unsynced"' /tmp/run.json)"
        fi
        n=$((n + 1))
    done
    rmmod st_populate && load_st_populate
fi

# Idle CPU with default verification: the CPU time of the run over IDLE_SECS, with FEW and
# then MANY idle processes (one mm, so one PGD on pgd_list, each). `ns`: every thread's
# sum_exec_runtime (/proc/PID/task/*/schedstat, CONFIG_SCHED_INFO), finer than the 10 ms
# `ticks` of /proc/PID/stat; `wakeups`: the threads' context switches (voluntary and not)
# over the window; `timer_*`: the kernel sweep's own count and time (its callback runs in
# softirq context, charged to no process), from the run's last log line, over the whole run.
if want idle; then
    ticks() { set -- $(cut -d' ' -f14,15 "/proc/$RUN_PID/stat"); echo $(($1 + $2)); }
    cpu_ns() { cat /proc/"$RUN_PID"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
    switches() { cat /proc/"$RUN_PID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {printf "%.0f", s}'; }
    procs() { ls /proc | grep -c '^[0-9]'; }
    spawn() { k=0; while [ $k -lt "$1" ]; do sleep 100000 & k=$((k + 1)); done; }
    # idle SWEEP [ARGS]: SWEEP names the run's sweep in the line (kernel, or user with
    # --test-user-sweep: the daemon's own timer, the baseline).
    idle() {
        sweep=$1; shift
        start_run "$@" || exit 1
        sleep 2
        a=$(ticks); na=$(cpu_ns); wa=$(switches); t0=$(us)
        sleep "$IDLE_SECS"
        b=$(ticks); nb=$(cpu_ns); wb=$(switches); t1=$(us)
        kill -TERM "$RUN_PID"; wait "$RUN_PID"
        timer=$(sed -n 's/.*kernel sweep: \([0-9]*\) readings, \([0-9]*\) changes, \([0-9]*\) us in the timer.*/timer_readings=\1 timer_changes=\2 timer_us=\3/p' /tmp/run.err)
        echo "idle sweep=$sweep spawned=$SPAWNED procs=$(procs) ticks=$((b - a)) ns=$((nb - na)) wakeups=$((wb - wa)) us=$((t1 - t0)) clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100) ${timer:-timer_readings=0}"
        sed -n 's/.*\(scans: .*\)/\1/p; s/.*\(kernel sweep: .*\)/\1/p; s/.*\(sweeping .*\)/\1/p' /tmp/run.err
    }
    # With FEW, the sweep in the kernel and the daemon's own (the baseline) alternate.
    step idle-few
    spawn "$FEW"; SPAWNED=$FEW
    run=1
    while [ $run -le "$RUNS" ]; do
        idle kernel
        idle user --test-user-sweep
        run=$((run + 1))
    done
    step idle-many
    spawn $((MANY - FEW)); SPAWNED=$MANY
    idle kernel
fi

# Faults: each needed capability dropped alone; loss counted exactly; kill -9 and SIGTERM leave nothing behind; stdout a closed
# pipe or a full disk; a fork/exit storm while a DIMM is hot-added at 32 TiB and every PGD is
# walked. bpftool (Debian's) and setpriv (util-linux's), with their libraries, are in the guest.
# /metrics is scraped on loopback (the guest has no other network).
ip link set lo up
bpftool version >/dev/null || { echo "bpftool does not run in the guest"; exit 1; }
load_st_populate
T=/sys/kernel/debug/st_populate
PORT=9477
act() { echo "$1" > $T/trigger && cat $T/last; }
# (busybox wget's -T crashes it: timeout bounds the scrape instead.)
metrics() { timeout 20 wget -q -O - "http://127.0.0.1:$PORT/metrics" | grep '^sync_trace_' | sed 's/^/metric: /'; }

# What a tracer can leave in the kernel, one count per line (compared on the host):
# BPF programs, links and maps (bpftool: the kernel's ID lists, whoever holds them),
# perf events carrying a BPF program (bpftool perf: perf-based kprobes), registered
# kprobes (debugfs kprobes/list), tracefs kprobe events, ftrace sites with a callback or a
# BPF trampoline (tracefs enabled_functions), pinned objects in /sys/fs/bpf, open perf
# event fds of any process (/proc/*/fd), memory blocks online and dax devices.
count() { grep -c "$@"; }
# gone PID: the process has exited (reaped, or a zombie), or there is none.
gone() { [ -z "$1" ] || [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status"; }
state() {
    echo "bpf_progs=$(bpftool prog show | count '^[0-9]*:')"
    echo "bpf_links=$(bpftool link show | count '^[0-9]*:')"
    echo "bpf_maps=$(bpftool map show | count '^[0-9]*:')"
    echo "bpf_perf=$(bpftool perf show | count 'prog_id')"
    echo "kprobes=$(count . /sys/kernel/debug/kprobes/list)"
    echo "kprobe_events=$(count . /sys/kernel/tracing/kprobe_events)"
    echo "enabled_functions=$(count . /sys/kernel/tracing/enabled_functions)"
    echo "pinned=$(find /sys/fs/bpf -mindepth 1 | count .)"
    echo "perf_fds=$(ls -l /proc/[0-9]*/fd/ 2>/dev/null | count 'perf_event')"
    echo "blocks_online=$(cat /sys/devices/system/memory/memory*/online | count 1)"
    echo "dax=$(ls /sys/bus/dax/devices/ 2>/dev/null | count .)"
}

step probe
sync-trace probe --json; echo "exit=$?"

step baseline
state

# Each capability a command needs, dropped alone by setpriv from the bounding and inheritable
# sets (root's exec then does not get it): exit 1 and one line naming it, nothing loaded.
# CAP_SYS_ADMIN dropped: `stress` refuses; probe, audit and run (by fentry, and by kprobe:
# `run-kprobe`) show whether they need it.
step capabilities
# util-linux's (busybox has a setpriv of its own, earlier in PATH, without --bounding-set).
SETPRIV=/usr/bin/setpriv
$SETPRIV --version | grep -q util-linux || { echo "$SETPRIV is not util-linux's"; exit 1; }
echo "kptr_restrict=$(cat /proc/sys/kernel/kptr_restrict)"
echo "perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)"
for cap in bpf perfmon syslog sys_admin setuid setgid; do
    for cmd in probe audit run run-kprobe stress; do
        case "$cap:$cmd" in
            sys_admin:*) ;;
            *:run-kprobe) continue ;;
            setuid:run | setgid:run | bpf:* | perfmon:* | syslog:*) ;;
            *) continue ;;
        esac
        case "$cmd" in
            run) args="run --duration 2s" ;;
            run-kprobe) args="run --attach kprobe --duration 2s" ;;
            stress) args="stress --cycles 1" ;;
            *) args="$cmd" ;;
        esac
        # shellcheck disable=SC2086
        $SETPRIV --inh-caps=-$cap --bounding-set=-$cap sync-trace $args >/tmp/cap.out 2>/tmp/cap.err
        echo "cap_${cap}_${cmd}=$?"
        echo "cap_${cap}_${cmd}_stdout=$(count . /tmp/cap.out)"
        grep -v ' INFO ' /tmp/cap.err | sed "s/^/cap-err: ${cap}_${cmd}: /"
    done
done

# A synced population between two storms of syncs, traced through a one-page ring buffer:
# what was received plus what was lost is what the module issued.
step lossy-exact
start_run --test-ring-size 4096 --metrics-addr 127.0.0.1:$PORT
before=$(cat $T/syncs)
act lossy
after=$(cat $T/syncs)
echo "issued=$((after - before))"
# The loss counters are read every second: the metric has them after two.
sleep 2
metrics
stop_run
grep 'attached' /tmp/run.err | sed 's/^/log: /'

# kill -9 while attached: the kernel drops what the process held.
step kill9-during
start_run --metrics-addr 127.0.0.1:$PORT
state
kill -KILL "$RUN_PID"
wait "$RUN_PID"
echo "exit=$?"
step kill9-after
# The kernel frees a program after an RCU grace period once its last reference is gone.
sleep 1
state
# A new run starts cleanly and traces.
step kill9-rerun
start_run
act sync; sleep 0.5
stop_run
step term-after
sleep 1
state

# Kprobes disarmed globally while a run traces by kprobe: each kprobe target gets one
# `detached` record (reason `disarmed`) and one stderr line; the run goes on.
step kprobes-disarmed
start_run --attach kprobe
act sync; sleep 0.5
echo 0 > /sys/kernel/debug/kprobes/enabled
# The list is read every second.
sleep 2.5
echo 1 > /sys/kernel/debug/kprobes/enabled
stop_run_verdicts
grep ' via kprobe' /tmp/run.err | sed 's/^/log: /'

# Stdout a pipe whose reader left after the first line.
step pipe
rm -f /tmp/pipe.err
sync-trace run --json --metrics-addr 127.0.0.1:$PORT 2>/tmp/pipe.err | head -n 1 >/tmp/pipe.out &
HEAD_PID=$!
# (`wait` would wait for the whole pipeline, the run included; an exited process of a job not
# yet reaped is a zombie, which kill -0 cannot tell from a live one.)
i=0
while ! gone "$HEAD_PID" && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
echo "head_lines=$(count . /tmp/pipe.out)"
PIPE_PID=$(pidof sync-trace)
i=0
while ! grep -q '^ready' /tmp/pipe.err && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
act sync; sleep 0.5
act sync; sleep 0.5
gone "$PIPE_PID" && echo "alive=0" || echo "alive=1"
metrics
kill -TERM "$PIPE_PID"
# The pipeline is the only job left (a reaped-late zombie would still answer kill -0).
wait
grep -v ' INFO ' /tmp/pipe.err | sed 's/^/stderr: /'

# Stdout a file on a full disk.
step full-disk
mkdir -p /tmp/full && mount -t tmpfs -o size=64k tmpfs /tmp/full
dd if=/dev/zero of=/tmp/full/fill bs=4k 2>/dev/null
echo "free_kib=$(df -k /tmp/full | awk 'NR==2 {print $4}')"
sync-trace run --json --metrics-addr 127.0.0.1:$PORT >/tmp/full/run.json 2>/tmp/full.err &
FULL_PID=$!
i=0
while ! grep -q '^ready' /tmp/full.err && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
act sync; sleep 0.5
act sync; sleep 0.5
gone "$FULL_PID" && echo "alive=0" || echo "alive=1"
metrics
kill -TERM "$FULL_PID"
wait "$FULL_PID"
echo "exit=$?"
grep -v ' INFO ' /tmp/full.err | sed 's/^/stderr: /'
umount /tmp/full

# Thousands of short processes (each a PGD added to and freed from pgd_list) while a DIMM is
# hot-added at 32 TiB and every PGD is walked every 200 ms.
step storm
dmesg -c >/dev/null
# The DIMM comes up online and movable: `stress` below can offline its blocks.
echo online_movable >/sys/devices/system/memory/auto_online_blocks
start_run --walk-every 200ms
# Each loop goes on until told to stop and until it has forked 500 processes.
storm() {
    n=0
    while [ ! -e /tmp/storm.stop ] || [ $n -lt 500 ]; do /bin/true; n=$((n + 1)); done
    echo "$n" >"/tmp/storm.$1"
}
rm -f /tmp/storm.*
storm 1 &
S1=$!
storm 2 &
S2=$!
sleep 2
hotadd
act sync
sleep 3
touch /tmp/storm.stop
wait "$S1" "$S2"
echo "forks=$(($(cat /tmp/storm.1) + $(cat /tmp/storm.2)))"
stop_run
echo "kernel_warnings=$(dmesg | count -E 'WARNING:|BUG:|Oops|general protection')"
dmesg | grep -E -A3 'WARNING:|BUG:|Oops|general protection' | sed 's/^/dmesg: /'
step storm-audit
audit

# `stress` killed (SIGKILL) while a block of the DIMM is offline: its watcher puts the block
# back from the journal; then SIGTERM: it restores by itself and prints its report.
online() { cat /sys/devices/system/memory/memory*/online | count 1; }
# stress_stopped_offline ONLINE: starts `stress` and stops it (SIGSTOP) at a moment it has a
# block offline (fewer than ONLINE online); it cycles fast, so a stop that comes after the
# block is back online lets it go on and tries again. Further arguments go to `stress`.
stress_stopped_offline() {
    want=$1
    shift
    sync-trace stress --duration 24h "$@" >/tmp/stress.out 2>/tmp/stress.err &
    SPID=$!
    i=0
    while [ $i -lt 2400 ]; do
        gone "$SPID" && break
        if [ "$(online)" -lt "$want" ]; then
            kill -STOP "$SPID"
            [ "$(online)" -lt "$want" ] && return 0
            kill -CONT "$SPID"
        fi
        sleep 0.05; i=$((i + 1))
    done
    echo "stress offlined nothing:"; cat /tmp/stress.err; return 1
}
step stress-before
sleep 1
state
ONLINE=$(online)
step stress-kill9-during
stress_stopped_offline "$ONLINE"
state
kill -KILL "$SPID"
wait "$SPID"
echo "exit=$?"
step stress-kill9-after
# The watcher restores once the pipe from the killed stress closes.
i=0
while [ "$(online)" != "$ONLINE" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
state
echo "journal=$(ls /run/sync-trace/ 2>/dev/null | count .)"
sed 's/^/stderr: /' /tmp/stress.err | grep -v ': stress: cycle'
# SIGTERM with its --report page going to a full disk: the report on stdout, one line about
# the page, exit 1.
step stress-term
mount -t tmpfs -o size=64k tmpfs /tmp/full
dd if=/dev/zero of=/tmp/full/fill bs=4k 2>/dev/null
echo "free_kib=$(df -k /tmp/full | awk 'NR==2 {print $4}')"
stress_stopped_offline "$ONLINE" --report /tmp/full/report.html
kill -TERM "$SPID"
kill -CONT "$SPID"
wait "$SPID"
echo "exit=$?"
sleep 1
state
grep -c . /tmp/stress.out | sed 's/^/report_lines=/'
echo "report_files=$(ls /tmp/full | grep -c report)"
grep -v -e ': stress: cycle' -e ' INFO ' /tmp/stress.err | sed 's/^/stderr: /'
umount /tmp/full

# Scale: idle CPU of `sync-trace run` with FEW and with MANY idle processes
# (one PGD each on pgd_list), the longest single test run of the scan
# program, and a never-synced population (st_populate) among MANY PGDs.
# Vars: FEW, MANY (processes), SECS (measuring window).
insmod /modules/st_populate.ko \
    init_mm_addr=0x$(grep ' init_mm$' /proc/kallsyms | cut -d' ' -f1) \
    sync_addr=0x$(grep ' arch_sync_kernel_mappings$' /proc/kallsyms | cut -d' ' -f1) \
    || { echo "insmod failed"; exit 1; }
T=/sys/kernel/debug/st_populate

procs() { ls /proc | grep -c '^[0-9]'; }
# spawn N: N more idle processes (background sleeps, each its own mm).
spawn() {
    i=0
    while [ $i -lt "$1" ]; do
        sleep 100000 &
        i=$((i + 1))
    done
}
# Clock ticks (USER_HZ) of utime + stime of the run: the kernel time of its
# BPF test runs is its system time.
ticks() {
    set -- $(cut -d' ' -f14,15 "/proc/$RUN_PID/stat")
    echo $(($1 + $2))
}
measure() {
    start_run || exit 1
    sleep 2
    a=$(ticks)
    t0=$(cut -d' ' -f1 /proc/uptime)
    sleep "$SECS"
    b=$(ticks)
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo "procs=$(procs)"
    echo "ticks=$((b - a))"
    echo "window=$t0 $t1"
    echo "clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)"
}
stop_scale() {
    kill -TERM "$RUN_PID" 2>/dev/null
    wait "$RUN_PID"
    echo "exit=$?"
    cat /tmp/run.json
    sed -n 's/.*\(scans: .*\)/\1/p' /tmp/run.err
    grep -v ' INFO ' /tmp/run.err | sed 's/^/stderr: /'
}

step few
spawn "$FEW"
measure
stop_scale

step spawn
t=$(cut -d' ' -f1 /proc/uptime)
spawn $((MANY - FEW))
echo "spawned=$(procs) from $t to $(cut -d' ' -f1 /proc/uptime)"
free -m | sed 's/^/free: /'

step many
measure
echo never > $T/trigger && cat $T/last
sleep 1
stop_scale

step audit
sync-trace audit --json; echo "exit=$?"

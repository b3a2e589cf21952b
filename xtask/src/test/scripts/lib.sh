# Shell functions shared by the guest scenarios (busybox sh).
# Output: "=== step NAME" opens a section; JSON lines and "key=value" lines
# inside it are read by the host checks (xtask/src/test/output.rs).

step() { echo "=== step $1"; }

# start_run ARGS...: sync-trace run --json in the background, until it says ready.
start_run() {
    # A previous run's `ready` must not be mistaken for this one's.
    rm -f /tmp/run.json /tmp/run.err
    sync-trace run --json "$@" >/tmp/run.json 2>/tmp/run.err &
    RUN_PID=$!
    i=0
    while ! grep -q '^ready' /tmp/run.err; do
        if ! kill -0 "$RUN_PID" 2>/dev/null || [ $i -gt 600 ]; then
            echo "run did not become ready:"; cat /tmp/run.err
            return 1
        fi
        sleep 0.1; i=$((i + 1))
    done
}

# stop_run: SIGTERM (busybox starts background jobs with SIGINT ignored), then the output.
stop_run() {
    kill -TERM "$RUN_PID" 2>/dev/null
    wait "$RUN_PID"
    echo "exit=$?"
    cat /tmp/run.json
    grep -v ' INFO ' /tmp/run.err | sed 's/^/stderr: /'
}

# stop_run_verdicts: stop_run without the `sync` and `call` records, for a step that issues
# thousands of syncs and checks only losses and verdicts: their NDJSON (stacks included) would
# take minutes to cross the guest's 115200-baud serial line.
stop_run_verdicts() {
    kill -TERM "$RUN_PID" 2>/dev/null
    wait "$RUN_PID"
    echo "exit=$?"
    grep -v -e '^{"event":"sync"' -e '^{"event":"call"' /tmp/run.json
    grep -v ' INFO ' /tmp/run.err | sed 's/^/stderr: /'
}

# wait_run: the run ends by itself (--duration, --fail-on-unsynced).
wait_run() {
    wait "$RUN_PID"
    echo "exit=$?"
    cat /tmp/run.json
    grep -v ' INFO ' /tmp/run.err | sed 's/^/stderr: /'
}

audit() { sync-trace audit --json; echo "exit=$?"; }

# load_st_populate [PARAM=VALUE...]: the test module (tests/modules/st_populate), with the
# addresses it needs from /proc/kallsyms.
load_st_populate() {
    insmod /modules/st_populate.ko \
        init_mm_addr=0x$(grep ' init_mm$' /proc/kallsyms | cut -d' ' -f1) \
        sync_addr=0x$(grep ' arch_sync_kernel_mappings$' /proc/kallsyms | cut -d' ' -f1) \
        "$@" || { echo "insmod failed"; exit 1; }
}

# load_st_livepatch: the test livepatch of arch_sync_kernel_mappings (tests/modules/st_livepatch),
# with the address it needs; returns once the patch's transition has ended.
load_st_livepatch() {
    insmod /modules/st_livepatch.ko \
        sync_global_pgds_addr=0x$(grep ' sync_global_pgds$' /proc/kallsyms | cut -d' ' -f1) ||
        { echo "insmod st_livepatch failed"; return 1; }
    i=0
    while [ "$(cat /sys/kernel/livepatch/st_livepatch/transition)" != 0 ] && [ $i -lt 300 ]; do
        sleep 0.1; i=$((i + 1))
    done
}

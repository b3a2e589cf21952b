# A livepatch of arch_sync_kernel_mappings (tests/modules/st_livepatch) and sync-trace: the patch
# enabled before the run starts (kprobes, the livepatch named; fentry refused), and while a run
# traces (by fentry, by kprobe); each time disabled and removed while the run goes on. Every
# synced population must still be paired, with its arch_sync_kernel_mappings call traced, and
# the patch's function must be what ran (its call count).
load_st_populate
T=/sys/kernel/debug/st_populate
LP=/sys/kernel/livepatch/st_livepatch
act() { echo "$1" > $T/trigger && cat $T/last; }
patch_on() {
    load_st_livepatch || exit 1
    echo "patch_enabled=$(cat $LP/enabled) transition=$(cat $LP/transition)"
}
# The patch's calls so far, read before it goes away.
patch_calls() { echo "patch_calls=$(cat /sys/kernel/debug/st_livepatch/calls)"; }
# Disabled, then removed once the unpatching transition has ended (its directory goes then).
patch_off() {
    echo 0 > $LP/enabled
    i=0
    while [ -e $LP ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    rmmod st_livepatch
    echo "patch_removed=$?"
}
attach_lines() { grep -e 'attached ' /tmp/run.err | sed 's/^/log: /'; }
warnings() { echo "kernel_warnings=$(dmesg | grep -c -e 'WARNING:' -e 'BUG:')"; }

# patched_then_off: with the patch on and a run going, two syncs, the patch removed, one more
# sync, then the run's output, its attach lines and the kernel's warnings.
patched_then_off() {
    act sync; sleep 0.5
    act sync; sleep 0.5
    patch_calls
    patch_off
    act sync; sleep 0.5
    stop_run
    attach_lines
    warnings
}
# patched_first ARGS: the patch, then a run (ARGS), then patched_then_off.
patched_first() {
    patch_on
    start_run "$@" || exit 1
    patched_then_off
}
# traced_first ARGS: a run (ARGS), one sync, the patch, then patched_then_off.
traced_first() {
    start_run "$@" || exit 1
    act sync; sleep 0.5
    patch_on
    patched_then_off
}

step probe-patched
patch_on
sync-trace probe --json; echo "exit=$?"
patch_off

step patched-first
patched_first
step patched-first-fentry
patched_first --attach fentry
step traced-first
traced_first
step traced-first-kprobe
traced_first --attach kprobe

# sync-trace exporting metrics to a real Prometheus on the host (through a
# forwarded port) during a hot-add at 32 TiB, then a never-synced population,
# then a probe that goes away while the run traces.
# At each `checkpoint` the host queries Prometheus until what it expects is
# there (or its patience runs out), then lets this script go on: no side
# sleeps a fixed time for the other.
load_st_populate
step start
start_run --metrics-addr 0.0.0.0:9464
checkpoint baseline
hotadd
checkpoint hotadd
echo never > /sys/kernel/debug/st_populate/trigger
checkpoint never
step run
stop_run
# arch_sync_kernel_mappings' programs on the test module's st_sync (a module
# function that calls it, attached by kprobe), then the module unloaded while
# the run traces: the kernel marks the kprobe gone, the run must notice.
step stand-in
start_run --metrics-addr 0.0.0.0:9464 --test-sync-stand-in st_sync
echo sync > /sys/kernel/debug/st_populate/trigger
checkpoint attached
rmmod st_populate
echo "rmmod=$?"
grep -e 'st_sync' -e 'GONE' /sys/kernel/debug/kprobes/list | sed 's/^/kprobes: /'
checkpoint detached
stop_run

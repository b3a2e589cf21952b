# sync-trace exporting metrics to a real Prometheus on the host (through a
# forwarded port) during a hot-add at 32 TiB, then a never-synced population.
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

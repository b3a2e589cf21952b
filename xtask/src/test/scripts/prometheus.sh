# sync-trace exporting metrics to a real Prometheus on the host (through a
# forwarded port) during a hot-add at 32 TiB, then a never-synced population.
# CHECKPOINT lines make the host query Prometheus while this waits.
load_st_populate
step start
start_run --metrics-addr 0.0.0.0:9464
echo "CHECKPOINT baseline"
sleep 4
hotadd
sleep 1
echo "CHECKPOINT hotadd"
sleep 9
echo never > /sys/kernel/debug/st_populate/trigger
echo "CHECKPOINT never"
sleep 12
step run
stop_run

# Synthetic top-level populations from the st_populate test module
# (tests/modules/st_populate): synced, lower-level, late, never, cleared and
# populated again, mismatched; audits between; then one inside a storm of
# syncs with a tiny ring buffer.
load_st_populate
T=/sys/kernel/debug/st_populate
act() { echo "$1" > $T/trigger && cat $T/last; }

step start
# A mismatch appears with no sync after it: only the periodic full walk finds
# it (every 30 s by default); a short period keeps the run short.
# The metrics endpoint listens on loopback, which the initramfs leaves down.
ifconfig lo 127.0.0.1 up
start_run --walk-every 500ms --metrics-addr 9464
# Attached: run is now user nobody with CAP_BPF alone (every thread), and
# still serves metrics; every step after this one detects as nobody.
step privileges
for f in /proc/$RUN_PID/task/*/status; do
    sed -nE 's/^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):[[:space:]]*/\1=/p' "$f" | tr '\t' ' '
done
echo "metrics_lines=$(wget -q -O - http://127.0.0.1:9464/metrics | grep -c '^sync_trace_')"
step synced
act sync; sleep 0.5; audit
step lower
act lower; sleep 0.5; audit
step late
act late; sleep 1; audit
step never
act never; sleep 1; audit
# Clear a synced entry from init_mm (as KASAN teardown can), then write it back.
step clear-sync
act sync; sleep 0.5
step clear
act clear; sleep 0.5
step repopulate
act sync; sleep 0.5
step mismatch
act mismatch; sleep 1; audit
step run
echo "metrics_unsynced=$(wget -q -O - http://127.0.0.1:9464/metrics | grep -c '^sync_trace_unsynced_populations_total{.*} [1-9]')"
stop_run
# A synced population inside a storm of syncs, with a one-page ring buffer:
# records are lost around it, and its verdict must say so. The daemon is
# stopped during the action, so the ring stays full from the first storm to
# the last (a daemon that kept up between the storms would see no loss in
# the population's own window, which the sweep in the kernel times within
# one period: its verdict would then rightly be certain).
step lossy
start_run --test-ring-size 4096
kill -STOP "$RUN_PID"; act lossy; kill -CONT "$RUN_PID"; sleep 1
stop_run_verdicts
step fail-on-unsynced
start_run --fail-on-unsynced
act never
( sleep 10; kill -TERM "$RUN_PID" 2>/dev/null ) &
wait_run
# Where the sweep ran (its INFO line): the kernel's timer, or the daemon's own and why.
sed -n 's/.*sweeping in the kernel every.*/sweep=kernel/p; s/.*sweeping from userspace every \(.*\)/sweep=userspace (\1)/p' /tmp/run.err

# Synthetic top-level populations from the st_populate test module
# (tests/modules/st_populate): synced, lower-level, late, never, mismatched;
# audits between.
load_st_populate
T=/sys/kernel/debug/st_populate
act() { echo "$1" > $T/trigger && cat $T/last; }

step start
start_run
step synced
act sync; sleep 0.5; audit
step lower
act lower; sleep 0.5; audit
step late
act late; sleep 1; audit
step never
act never; sleep 1; audit
step mismatch
act mismatch; sleep 1; audit
step run
stop_run
step fail-on-unsynced
start_run --fail-on-unsynced
act never
( sleep 10; kill -TERM "$RUN_PID" 2>/dev/null ) &
wait_run

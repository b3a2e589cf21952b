# probe, 10 s idle, one hot-add (the DIMM is chosen by the host), audit.
step probe
sync-trace probe --json; echo "exit=$?"
if [ "$IDLE" = 1 ]; then
    step idle
    sync-trace run --json --duration 10s 2>/tmp/idle.err; echo "exit=$?"
fi
step hotadd
# --test-kernel-log: every probe entry writes a diagnostic record (st_diag) from the C
# programs; the check looks for it in the daemon's log.
start_run --test-kernel-log
hotadd
sleep 1
stop_run
step audit
audit

# The demo: what sync-trace sees when memory is hot-added across top-level
# page-table boundaries (run by `cargo xtask demo` inside a 6.12 guest).
echo "--- sync-trace probe: what can be traced on this kernel"
sync-trace probe
echo
echo "--- sync-trace run: tracing; the host now hot-adds a DIMM at 32 TiB, then one at 512 GiB"
sync-trace run 2>/tmp/run.err &
RUN=$!
while ! grep -q '^ready' /tmp/run.err; do sleep 0.1; done
hotadd
sleep 1
hotadd
sleep 1
kill -TERM $RUN
wait $RUN
echo
echo "--- sync-trace audit: every process page table against init_mm"
sync-trace audit

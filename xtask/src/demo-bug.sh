# The bug sync-trace exists for (run by `cargo xtask demo --bug` inside a guest of
# Debian's 6.1 built with the fix of "mm: introduce and use {pgd,p4d}_populate_kernel()"
# taken out): compound device memory at 32 TiB gets a new vmemmap top-level entry in
# init_mm that is never copied into the other page tables.
load_st_populate
T=/sys/kernel/debug/st_populate
echo "--- sync-trace run: tracing; memremap_pages() of 128 MiB at 32 TiB with compound pages follows"
sync-trace run 2>/tmp/run.err &
RUN=$!
while ! grep -q '^ready' /tmp/run.err; do sleep 0.1; done
# In a child shell: the kernel oopses in the writing process, which it kills.
( echo devmap > $T/trigger )
sleep 1
kill -TERM $RUN
wait $RUN
echo
echo "--- sync-trace audit: every process page table against init_mm"
sync-trace audit
echo
echo "--- the kernel log: the process that touched the new struct pages faulted (PGD 0 P4D 0)"
dmesg | grep -A12 'unable to handle page fault' | head -16

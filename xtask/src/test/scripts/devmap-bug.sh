# The kernel bug "mm: introduce and use {pgd,p4d}_populate_kernel()" fixed, on a kernel
# with that fix taken out (6.1-reverted): memremap_pages() with compound struct pages at
# 32 TiB populates vmemmap slot 469 in init_mm and never syncs it; the writing process
# itself then faults on the new struct pages (an oops that kills it: the kernel goes on).
# sync-trace must report the population `unsynced` with PGDs missing it.
load_st_populate
T=/sys/kernel/debug/st_populate
step start
start_run
step devmap
# In a child shell: the oops kills the writer, which also holds the module's lock
# (so nothing reads $T/last afterwards).
( echo devmap > $T/trigger ); echo "exit=$?"
sleep 1
step run
stop_run
step audit
audit

# memremap_pages() with PMD-sized compound struct pages over 128 MiB at 32 TiB (the
# st_populate module's devmap action: the device-dax path), traced; then a second one at
# 32 TiB + 128 MiB (the same, now present, top-level entries) traced with the per-page
# vmemmap populate functions attached too (--test-populate-calls: the kernel's batches of
# their calls); audit; then rmmod, which memunmap_pages() both ranges.
load_st_populate
T=/sys/kernel/debug/st_populate
step start
start_run
step devmap
echo devmap > $T/trigger; echo "exit=$?"
cat $T/last
sleep 1
step run
stop_run
step start-calls
start_run --test-populate-calls
step devmap-calls
echo devmap > $T/trigger; echo "exit=$?"
cat $T/last
sleep 1
step run-calls
stop_run
step audit
audit
step rmmod
rmmod st_populate; echo "exit=$?"

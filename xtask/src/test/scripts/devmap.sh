# memremap_pages() with PMD-sized compound struct pages over 128 MiB at 32 TiB (the
# st_populate module's devmap action: the device-dax path), traced; audit; then rmmod,
# which memunmap_pages() the range.
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
step audit
audit
step rmmod
rmmod st_populate; echo "exit=$?"

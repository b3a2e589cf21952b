# virtio-mem adds block after block into one new direct-map slot: the device asks for 1 GiB
# at 512 GiB, and its driver adds eight 128 MiB memory blocks within milliseconds of loading.
# The virtio transport (and on 6.1 the virtio core, all modules there) loads first.
M=/modules/image
blocks() { n=0; for d in /sys/devices/system/memory/memory*; do [ -e "$d" ] && n=$((n+1)); done; echo $n; }
for m in $(cat $M/order); do
    [ "$m" = virtio_mem.ko ] || insmod $M/$m || { echo "insmod $m failed"; exit 1; }
done
before=$(blocks)
step start
start_run
step plug
insmod $M/virtio_mem.ko; echo "exit=$?"
i=0
while [ "$(blocks)" -le "$before" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
now=$(blocks); sleep 1
while [ "$(blocks)" != "$now" ]; do now=$(blocks); sleep 1; done
echo "blocks_added=$((now - before))"
step run
stop_run
step audit
audit

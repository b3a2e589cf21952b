# `cargo xtask stress`, the guest's side (xtask/src/stress/ is the host's).
# Variables from the host: CYCLES, PATHS ("dimm virtio-mem nvdimm", any subset),
# SETUP_UNDER_STRESS (0 or 1, below),
# DIMMS ("ADDR:SIZE ..." in bytes), VMEM_ADDR VMEM_SIZE VMEM_REQ, NV_ADDR NV_SIZE.
# Each `checkpoint NAME` lets the host act over QMP before the script goes on:
#   dimm-add-C     object-add + device_add pc-dimm for every DIMM of the plan
#   dimm-del-C     device_del of each (the script offlined their blocks), object-del
#   vmem-grow-C    qom-set vm0 requested-size VMEM_REQ
#   vmem-shrink-C  qom-set vm0 requested-size 0
# INJECT (any subset of "never-sync cycle-error"):
#   never-sync   after cycle 1, the st_populate test module writes a top-level entry and
#                never syncs it (`never-sync: mode=never ... slot=N addr=A` names it)
#   cycle-error  after the run, two short `sync-trace stress` runs over the virtio-mem
#                blocks and dax0.0 whose Kth write fails (--test-fail-at-step): each
#                prints the state of every block and device before and after
#                (`restore K: exit=E injected=N same|DIFFERS ...`); then one killed
#                with SIGKILL while dax0.0 is in system-ram, whose watcher restores
#                (`killed: exit=E mode=M same|DIFFERS ...`)
# Output read by the host: "=== step ..." sections, `sync-trace run --json` lines of the
# NVDIMM setup, "=== file NAME" + base64 + "=== end", and "STRESS-EXIT N".
M=/modules/image
MEM=/sys/devices/system/memory
NDB=/sys/bus/nd
has() { case " $PATHS " in *" $1 "*) return 0 ;; esac; return 1; }
inj() { case " $INJECT " in *" $1 "*) return 0 ;; esac; return 1; }

# w FILE VALUE: a sysfs write that says what the kernel answered when it refuses.
w() {
    { echo "$2" >"$1"; } 2>/tmp/w.err && return 0
    echo "write '$2' > $1 refused: $(sed 's/^.*: //' /tmp/w.err)"
    return 1
}
range_blocks() {
    i=$(($1 / BS)); e=$((($1 + $2) / BS))
    while [ $i -lt $e ]; do echo $i; i=$((i + 1)); done
}
present() {
    n=0
    for b in $(range_blocks $1 $2); do [ -d $MEM/memory$b ] && n=$((n + 1)); done
    echo $n
}
states() {
    for b in $(range_blocks $1 $2); do
        [ -f $MEM/memory$b/state ] && printf 'memory%s=%s ' $b "$(cat $MEM/memory$b/state)"
    done
    echo
}
# wait_present ADDR SIZE WANT [SECS]
wait_present() {
    i=0; lim=$((${4:-120} * 10))
    while [ "$(present $1 $2)" != "$3" ]; do
        [ $i -ge $lim ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}
# (Function variables are global in sh: f, b, t, n, i, e, lim only here.)
online_range() {
    for b in $(range_blocks $1 $2); do
        f=$MEM/memory$b/state
        [ -f $f ] && [ "$(cat $f)" = offline ] && w $f online_movable
    done
}
# offline_range ADDR SIZE: EBUSY is retried (5 times, 200 ms apart).
offline_range() {
    for b in $(range_blocks $1 $2); do
        f=$MEM/memory$b/state; t=0
        while [ -f $f ] && [ "$(cat $f)" != offline ] && [ $t -lt 5 ]; do
            w $f offline || sleep 0.2
            t=$((t + 1))
        done
    done
}
emit() {
    [ -f "$1" ] || return 0
    echo "=== file $2"
    base64 "$1"
    echo "=== end"
}

# The label-less namespace of the NVDIMM becomes device-dax by hand, as
# `ndctl create-namespace -f -e namespace0.0 -m devdax -a 2M -M mem` would: take it from
# nd_pmem, configure the region's dax seed (uuid, struct pages in RAM, 2 MiB alignment:
# compound vmemmap pages), claim the namespace, bind the seed to dax_pmem.
nvdimm_devdax() {
    i=0
    while [ ! -e $NDB/devices/namespace0.0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    echo "region0 resource=$(cat $NDB/devices/region0/resource 2>&1) size=$(cat $NDB/devices/region0/size 2>&1)"
    echo "namespace0.0 mode=$(cat $NDB/devices/namespace0.0/mode 2>&1) driver=$(basename "$(readlink $NDB/devices/namespace0.0/driver)")"
    [ -e $NDB/devices/namespace0.0/driver ] && w $NDB/drivers/nd_pmem/unbind namespace0.0
    D=$(cat $NDB/devices/region0/dax_seed)
    echo "dax seed: $D"
    w $NDB/devices/$D/uuid "$(cat /proc/sys/kernel/random/uuid)" &&
        w $NDB/devices/$D/mode ram &&
        w $NDB/devices/$D/align 2097152 &&
        w $NDB/devices/$D/namespace namespace0.0 &&
        w $NDB/drivers/dax_pmem/bind $D || return 1
    i=0
    while [ ! -e /sys/bus/dax/devices/dax0.0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -e /sys/bus/dax/devices/dax0.0 ] || { echo "no dax0.0 after binding $D"; return 1; }
    echo "dax0.0 driver=$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)") size=$(cat /sys/bus/dax/devices/dax0.0/size) align=$(cat /sys/bus/dax/devices/dax0.0/align 2>/dev/null)"
}

step setup
for m in $(cat $M/order 2>/dev/null); do
    insmod $M/$m || { echo "insmod $m failed"; exit 1; }
done
BS=$((0x$(cat $MEM/block_size_bytes)))
# Hot-added memory comes up online and movable (6.1's default would leave it offline,
# 6.12's would put it in Normal, where offlining is often refused).
w $MEM/auto_online_blocks online_movable
echo "block_size=$BS paths=$PATHS cycles=$CYCLES"

# SETUP_UNDER_STRESS=1 (needs virtio-mem and nvdimm): `sync-trace stress` cycles the
# virtio-mem blocks while a child process switches the NVDIMM to device-dax. On a kernel
# that misses the vmemmap sync that child oopses on the new struct pages (PGD 0) and the
# tracer, another process, goes on: its --report is written at the finding, before the run
# ends (the script copies it then: stress-early.html). When memory hotplug is wedged after
# the oops (below), stress gives up on its block write after WRITE_TIMEOUT, reports the
# wedge and ends by itself (exit 3); else, and on a kernel with the sync, it is stopped
# (SIGTERM).
# WRITE_TIMEOUT: a block's offline or online takes well under a second here (tens of
# cycles of 8 blocks in a few minutes under TCG), so 30 s is far from a slow write.
WRITE_TIMEOUT=30
# Where stress's threads and its children wait in the kernel (state, wchan), and what its
# stderr said last: for a run that does not end.
waits() {
    for t in /proc/$SPID/task/* $(for c in $(cat /proc/$SPID/task/*/children 2>/dev/null); do echo /proc/$c; done); do
        [ -r $t/stat ] || continue
        echo "wait: ${t#/proc/} $(cut -d' ' -f2-3 $t/stat) $(cat $t/wchan 2>/dev/null)"
    done
    tail -n 3 /tmp/stress.err | sed 's/^/wait: stderr: /'
}
if [ "$SETUP_UNDER_STRESS" = 1 ]; then
    step nvdimm-under-stress
    checkpoint vmem-grow-0 || exit 1
    wait_present $VMEM_ADDR $VMEM_SIZE $((VMEM_REQ / BS)) 120
    online_range $VMEM_ADDR $VMEM_SIZE
    first=$((VMEM_ADDR / BS)); nb=$((VMEM_REQ / BS))
    sync-trace stress --duration 24h --blocks $first-$((first + nb - 1)) --dax none --json \
        --write-timeout ${WRITE_TIMEOUT}s --report /tmp/stress.html >/tmp/stress.json 2>/tmp/stress.err &
    SPID=$!
    i=0
    while ! grep -q '^stress: cycle 1' /tmp/stress.err 2>/dev/null; do
        if ! kill -0 $SPID 2>/dev/null || [ $i -gt 1200 ]; then
            echo "stress did not start:"; cat /tmp/stress.err; echo "STRESS-EXIT 1"; exit 1
        fi
        sleep 0.1; i=$((i + 1))
    done
    echo "tracer=stress pid=$SPID"
    (nvdimm_devdax) >/tmp/devdax.out 2>&1 &
    DPID=$!
    # Until the switch has ended (or its writer died) and the early report is copied, or
    # 30 s after the switch ended without one; the early copy is taken as soon as stress
    # says it wrote it (its final report replaces the file when it ends).
    i=0; early=0; after=0
    while [ $i -lt 1800 ]; do
        if [ $early = 0 ] && grep -q 'finding written' /tmp/stress.err && kill -0 $SPID 2>/dev/null; then
            cp /tmp/stress.html /tmp/stress-early.html && early=1
        fi
        # Over: its writer ended, or oopsed (a task that oopses may linger in its exit).
        if ! kill -0 $DPID 2>/dev/null || dmesg | grep -q 'BUG: unable to handle'; then
            [ $early = 1 ] || [ $after -ge 300 ] && break
            after=$((after + 1))
        fi
        kill -0 $SPID 2>/dev/null || break
        sleep 0.1; i=$((i + 1))
    done
    if kill -0 $DPID 2>/dev/null; then
        echo "device-dax switch: still there (state $(cut -d' ' -f3 /proc/$DPID/stat 2>/dev/null))"
    else
        wait $DPID; echo "device-dax switch: exit=$?"
    fi
    cat /tmp/devdax.out
    oops=$(dmesg | grep -c -e 'BUG: unable to handle' -e 'Oops')
    echo "kernel: $oops oops line(s)"
    dmesg | grep -A3 -e 'BUG: unable to handle' | head -n 8
    if [ $early = 1 ]; then
        echo "early report: written while stress ran"
        emit /tmp/stress-early.html stress-early.html
    else
        echo "early report: none while stress ran"
    fi
    # After the oops, memory hotplug may be wedged: when the oopsed task's pages sit in a
    # virtio-mem block, they can never be migrated and that block's offline retries for
    # good. Then stress gives up on the write (WRITE_TIMEOUT), maybe on one more in its
    # restore, and ends by itself with the report. While it goes on cycling (3 more cycles
    # done), hotplug is not wedged and it is stopped.
    if [ "$oops" != 0 ]; then
        done0=$(grep -c '^stress: cycle .* done' /tmp/stress.err)
        i=0; lim=$(((3 * WRITE_TIMEOUT + 60) * 10))
        while kill -0 $SPID 2>/dev/null && [ $i -lt $lim ] &&
            [ $(grep -c '^stress: cycle .* done' /tmp/stress.err) -lt $((done0 + 3)) ]; do
            [ $((i % 300)) = 0 ] && waits
            sleep 0.1; i=$((i + 1))
        done
    fi
    if kill -0 $SPID 2>/dev/null; then
        echo "stress ended by itself: no (SIGTERM)"
        waits
        kill -TERM $SPID
    else
        echo "stress ended by itself: yes"
    fi
    wait $SPID; code=$?
    grep -v ' INFO ' /tmp/stress.err | grep -v -e '^stress: .*: ok$' -e '^stress: cycle ' | tail -n 20
    emit /tmp/stress.json stress.json
    emit /tmp/stress.html stress.html
    echo "STRESS-EXIT $code"
    exit $code
fi

TRACER=run
if has nvdimm; then
    # Traced by `sync-trace run`: the namespace's switch to device-dax creates the NVDIMM's
    # top-level entries, before `stress` (which needs the device to exist) starts.
    step nvdimm-setup
    start_run || exit 1
    nvdimm_devdax; ok=$?
    sleep 1
    stop_run
    [ $ok = 0 ] || { dmesg | tail -n 20; echo "STRESS-EXIT 1"; exit 1; }
    TRACER=stress
fi

step tracer
if [ $TRACER = stress ]; then
    # Cycles dax0.0 devdax <-> system-ram (kmem) back to back until stopped; the host's
    # hot-adds below happen while it traces.
    sync-trace stress --duration 24h --blocks none --dax dax0.0 --json \
        --report /tmp/stress.html >/tmp/stress.json 2>/tmp/stress.err &
    SPID=$!
    i=0
    while ! grep -q '^stress: cycle 1' /tmp/stress.err 2>/dev/null; do
        if ! kill -0 $SPID 2>/dev/null || [ $i -gt 1200 ]; then
            echo "stress did not start:"; cat /tmp/stress.err; echo "STRESS-EXIT 1"; exit 1
        fi
        sleep 0.1; i=$((i + 1))
    done
    echo "tracer=stress pid=$SPID"
else
    start_run || exit 1
    echo "tracer=run pid=$RUN_PID"
fi

c=1
while [ $c -le $CYCLES ]; do
    if has dimm; then
        step "cycle $c dimm"
        checkpoint dimm-add-$c || exit 1
        for d in $DIMMS; do
            a=${d%:*}; s=${d#*:}
            wait_present $a $s $((s / BS)) 120 ||
                echo "dimm $a: $(present $a $s) of $((s / BS)) blocks appeared"
            online_range $a $s
            echo "added dimm=$a $(states $a $s)"
        done
        for d in $DIMMS; do
            a=${d%:*}; s=${d#*:}
            offline_range $a $s
            echo "offlined dimm=$a $(states $a $s)"
        done
        checkpoint dimm-del-$c || exit 1
        for d in $DIMMS; do
            a=${d%:*}; s=${d#*:}
            if wait_present $a $s 0 120; then
                echo "removed dimm=$a"
            else
                echo "dimm $a: blocks left after device_del: $(states $a $s)"
                dmesg | tail -n 10
            fi
        done
    fi
    if has virtio-mem; then
        step "cycle $c virtio-mem"
        checkpoint vmem-grow-$c || exit 1
        wait_present $VMEM_ADDR $VMEM_SIZE $((VMEM_REQ / BS)) 120 ||
            echo "virtio-mem: $(present $VMEM_ADDR $VMEM_SIZE) of $((VMEM_REQ / BS)) blocks appeared"
        online_range $VMEM_ADDR $VMEM_SIZE
        echo "grown blocks=$(present $VMEM_ADDR $VMEM_SIZE)"
        checkpoint vmem-shrink-$c || exit 1
        wait_present $VMEM_ADDR $VMEM_SIZE 0 120 ||
            echo "virtio-mem: blocks left after shrinking: $(states $VMEM_ADDR $VMEM_SIZE)"
        echo "shrunk blocks=$(present $VMEM_ADDR $VMEM_SIZE)"
    fi
    if [ $c = 1 ] && inj never-sync; then
        step "inject never-sync"
        load_st_populate
        echo never >/sys/kernel/debug/st_populate/trigger
        echo "never-sync: $(cat /sys/kernel/debug/st_populate/last)"
        # Its verdict needs a grace window and a walk of every PGD.
        sleep 2
    fi
    c=$((c + 1))
done

step finish
if [ $TRACER = stress ]; then
    # At least CYCLES device-dax cycles, then stop (SIGTERM: stress restores dax0.0 and
    # writes its report, marked interrupted).
    i=0
    while ! grep -q "^stress: cycle $CYCLES done" /tmp/stress.err && [ $i -lt 3000 ]; do
        sleep 0.1; i=$((i + 1))
    done
    kill -TERM $SPID
    wait $SPID; code=$?
    echo "stress stderr (last lines):"
    grep -v ' INFO ' /tmp/stress.err | grep -v -e '^stress: .*: ok$' -e '^stress: cycle ' | tail -n 30
    emit /tmp/stress.json stress.json
    emit /tmp/stress.html stress.html
else
    kill -TERM $RUN_PID
    wait $RUN_PID; code=$?
    grep -v ' INFO ' /tmp/run.err | tail -n 20
    emit /tmp/run.json run.ndjson
fi
if inj cycle-error; then
    step restore
    # Every block's state and dax0.0's driver: what a stress run must leave as it found.
    snapshot() {
        for f in $MEM/memory*/state; do printf '%s=%s ' "${f#$MEM/}" "$(cat $f)"; done
        printf 'dax0.0=%s' "$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")"
    }
    checkpoint vmem-grow-R || exit 1
    wait_present $VMEM_ADDR $VMEM_SIZE $((VMEM_REQ / BS)) 120
    online_range $VMEM_ADDR $VMEM_SIZE
    first=$((VMEM_ADDR / BS)); nb=$((VMEM_REQ / BS))
    # Write K of a cycle: 1..nb offline the blocks, then they are onlined, then dax0.0 goes
    # to system-ram and back. K = nb/2+1 fails with blocks offline; K = 2*nb+2 fails the
    # switch back with dax0.0 in system-ram (its kmem blocks online).
    for k in $((nb / 2 + 1)) $((2 * nb + 2)); do
        before=$(snapshot)
        sync-trace stress --cycles 2 --blocks $first-$((first + nb - 1)) --dax dax0.0 \
            --test-fail-at-step $k >/tmp/r.out 2>/tmp/r.err
        rc=$?
        after=$(snapshot)
        n=$(cat /tmp/r.out /tmp/r.err | grep -c "injected failure of write $k")
        if [ "$before" = "$after" ]; then same=same; else same=DIFFERS; fi
        echo "restore $k: exit=$rc injected=$n $same before=[$before] after=[$after]"
        grep -i -e error -e restore /tmp/r.err | grep -v ' INFO ' | tail -n 5
    done
    # kill -9 in the middle of a dax switch (dax0.0 bound to kmem, its memory added): the
    # journal's watcher must put every block and dax0.0 back. Polled every 50 ms; a cycle
    # under TCG keeps dax0.0 in system-ram for seconds.
    before=$(snapshot)
    sync-trace stress --cycles 1000 --blocks $first-$((first + nb - 1)) --dax dax0.0 \
        >/tmp/k.out 2>/tmp/k.err &
    KPID=$!
    i=0
    while [ $i -lt 1200 ] && [ "$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")" != kmem ]; do
        sleep 0.05; i=$((i + 1))
    done
    mode=$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")
    kill -9 $KPID
    wait $KPID; rc=$?
    # The watcher restores after the kill: give it up to 120 s (each write is an
    # offline or online of a 128 MiB block under TCG).
    i=0
    while [ $i -lt 240 ] && [ "$(snapshot)" != "$before" ]; do sleep 0.5; i=$((i + 1)); done
    after=$(snapshot)
    if [ "$before" = "$after" ]; then same=same; else same=DIFFERS; fi
    echo "killed: exit=$rc mode=$mode $same before=[$before] after=[$after]"
    ls /run/sync-trace/stress-restore.json 2>/dev/null | sed 's/^/journal left: /'
    checkpoint vmem-shrink-R || exit 1
    wait_present $VMEM_ADDR $VMEM_SIZE 0 120
fi
echo "STRESS-EXIT $code"
exit $code

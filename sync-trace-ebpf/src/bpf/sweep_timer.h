/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The sweep in the kernel, part of the scan object (pgtable_scan.bpf.c
 * includes it after its own definitions): a bpf_timer that reads the kernel
 * half of init_mm's top-level table every st_cfg_sweep_ns, compares which
 * slots are present with its last reading, and writes a struct
 * st_sweep_change to ST_SWEEP_RING only when they differ. The daemon sleeps
 * until then: no wake-up per period.
 *
 * The timer needs a program type that may use bpf_timer: raw tracepoint
 * programs may not (the verifier refuses timers in kprobe, tracepoint,
 * perf_event and raw_tp programs), tracing ones may. So the arming program is
 * an fexit of bpf_fentry_test1, the function the kernel's BPF_PROG_TEST_RUN
 * of tracing programs calls: the daemon attaches it, runs it once, detaches
 * it. The callback belongs to that program and keeps it loaded; the timer is
 * cancelled when the last descriptor of ST_SWEEP closes (the daemon exits).
 *
 * Its CPU time runs in softirq context, charged to no process: it is summed
 * in st_sweep_view.busy_ns, which the daemon reports.
 */
#ifndef ST_SWEEP_TIMER_H
#define ST_SWEEP_TIMER_H

/* CLOCK_MONOTONIC of include/uapi/linux/time.h (not in the BPF headers). */
#define ST_CLOCK_MONOTONIC 1

const volatile __u64 st_cfg_sweep_ns = 50000000; /* `run --sweep` */

struct st_sweep {
	struct bpf_timer timer;
	struct st_sweep_view view;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_sweep);
} ST_SWEEP SEC(".maps");

/* One page: 56 changes of 80 bytes (+ 8 of header each) before the daemon reads. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ST_SWEEP_RING SEC(".maps");

/* The callback's own copy of the kernel half: it may interrupt a walk on the same CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_half);
} ST_SWEEP_SCRATCH SEC(".maps");

/* Present kernel-half slots into `bits`; 0 on success. */
static __always_inline int st_sweep_read(__u64 *bits)
{
	__u32 zero = 0;
	struct st_half *h = bpf_map_lookup_elem(&ST_SWEEP_SCRATCH, &zero);
	if (!h || !st_cfg_init_top_pgt ||
	    bpf_probe_read_kernel(h, sizeof(*h), (void *)(st_cfg_init_top_pgt + ST_KERNEL_HALF * 8)))
		return -1;
	for (__u32 w = 0; w < ST_SLOT_WORDS; w++) {
		__u64 b = 0;
		/* No branch per entry: one path for the verifier to follow. */
		for (__u32 k = 0; k < 64; k++)
			b |= (h->e[(w * 64 + k) & (ST_HALF - 1)] & ST_PAGE_PRESENT) << k;
		bits[w] = b;
	}
	return 0;
}

/* One period: read, compare, write a change; then the next period. */
static int st_sweep_tick(void *map, __u32 *key, struct st_sweep *sw)
{
	__u64 t0 = bpf_ktime_get_ns();
	__u64 bits[ST_SLOT_WORDS] = {};
	if (st_sweep_read(bits)) {
		sw->view.faults += 1;
		goto next;
	}
	__u64 diff = 0;
	for (__u32 w = 0; w < ST_SLOT_WORDS; w++)
		diff |= bits[w] ^ sw->view.bits[w];
	if (diff) {
		struct st_sweep_change *c = bpf_ringbuf_reserve(&ST_SWEEP_RING, sizeof(*c), 0);
		if (!c) {
			/* Unchanged view: the next period writes the change. */
			sw->view.lost += 1;
			goto next;
		}
		c->ts_ns = bpf_ktime_get_ns();
		c->prev_ns = sw->view.last_ns;
		for (__u32 w = 0; w < ST_SLOT_WORDS; w++) {
			c->before[w] = sw->view.bits[w];
			c->now[w] = bits[w];
			sw->view.bits[w] = bits[w];
		}
		bpf_ringbuf_submit(c, BPF_RB_FORCE_WAKEUP);
		sw->view.changes += 1;
	}
	sw->view.last_ns = t0;
	sw->view.sweeps += 1;
next:
	bpf_timer_start(&sw->timer, st_cfg_sweep_ns, 0);
	sw->view.busy_ns += bpf_ktime_get_ns() - t0;
	return 0;
}

SEC("fexit/bpf_fentry_test1")
int st_sweep_arm(unsigned long long *ctx)
{
	__u32 zero = 0;
	struct st_sweep *sw = bpf_map_lookup_elem(&ST_SWEEP, &zero);
	if (!sw || sw->view.armed)
		return 0;
	__u64 t0 = bpf_ktime_get_ns();
	__u64 bits[ST_SLOT_WORDS] = {};
	if (st_sweep_read(bits)) {
		sw->view.faults += 1;
		return 0;
	}
	for (__u32 w = 0; w < ST_SLOT_WORDS; w++)
		sw->view.bits[w] = bits[w];
	sw->view.last_ns = t0;
	sw->view.sweeps = 1;
	sw->view.period_ns = st_cfg_sweep_ns;
	int err = bpf_timer_init(&sw->timer, &ST_SWEEP, ST_CLOCK_MONOTONIC);
	if (!err)
		err = bpf_timer_set_callback(&sw->timer, st_sweep_tick);
	if (!err)
		err = bpf_timer_start(&sw->timer, st_cfg_sweep_ns, 0);
	if (err) {
		sw->view.arm_error = err;
		return 0;
	}
	sw->view.armed = 1;
	return 0;
}

#endif /* ST_SWEEP_TIMER_H */

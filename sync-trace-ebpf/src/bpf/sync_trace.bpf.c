// SPDX-License-Identifier: GPL-2.0-only
/*
 * sync-trace kernel programs: entry and exit of the kernel functions that
 * populate or sync kernel top-level page-table entries on x86_64.
 *
 * Every target has four programs (fentry, fexit, kprobe, kretprobe); the
 * daemon loads and attaches, per target, the best pair the running kernel
 * accepts (sync-trace/src/probe/plan.rs) and leaves the others unloaded.
 * Records go to one ring buffer (EVENTS): calls (struct st_event),
 * diagnostics (struct st_diag) and batches of populate calls that cannot be
 * populations (struct st_batch, see events.h); a failed reservation is
 * counted in LOST, never silently dropped.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* Load-time knobs, set by the daemon with EbpfLoader::set_global. */
const volatile __u32 st_cfg_capture_stack = 1; /* 0: no kernel stacks */
const volatile __u32 st_cfg_force_log = 0;     /* 1: a diagnostic at every entry (tests of that path) */
/* Batches of vmemmap populate calls (events.h): off while init_top_pgt is unknown. */
const volatile __u64 st_cfg_init_top_pgt = 0;  /* init_top_pgt (kallsyms) */
const volatile __u64 st_cfg_pgdir_shift = 0;   /* &pgdir_shift (kallsyms); 0: none, the shift is 39 */
const volatile __u64 st_cfg_batch_ns = 0;      /* a batch older than this is written at its next call */
const volatile __u64 st_cfg_vmemmap_base = 0;  /* &vmemmap_base (kallsyms); 0: section calls are never batched */

/*
 * Only its size is used (CO-RE, batch.h): a section's memory map is
 * vmemmap_base + pfn * sizeof(struct page). Deliberately smaller than any
 * kernel's, so an unapplied relocation shows.
 */
struct page {
	__u64 flags;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* ~700 entry records; only the hidden `run --test-ring-size` changes it */
} EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_LOST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} LOST SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* calls in flight at once; these functions do not recurse */
	__type(key, struct st_inflight_key);
	__type(value, struct st_inflight);
} INFLIGHT SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_TARGET_COUNT); /* indexed by target; only the vmemmap ones are used */
	__type(key, __u32);
	__type(value, struct st_batch_slot);
} BATCH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} PENDING SEC(".maps");

static __always_inline void st_count_lost(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&LOST, &what);
	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

/*
 * A diagnostic: a record of its own in EVENTS, which the daemon logs (the
 * message per code is in events.h). One that does not fit is counted in
 * LOST[ST_LOST_LOGS].
 */
static __always_inline void st_diag(__u8 code, __u64 value, __u64 now, __u64 id)
{
	struct st_diag d = {
		.ts_ns = now,
		.value = value,
		.pid = id >> 32,
		.cpu = bpf_get_smp_processor_id(),
		.kind = ST_KIND_DIAG,
		.code = code,
	};

	if (bpf_ringbuf_output(&EVENTS, &d, sizeof(d), 0))
		st_count_lost(ST_LOST_LOGS);
}

static __always_inline void st_fill_common(struct st_event *e, __u8 kind, __u8 target, __u8 method,
					   __u64 now, __u64 id)
{
	e->ts_ns = now;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	e->target = target;
	e->method = method;
	e->_pad = 0;
	e->flags = 0;
	e->ret = 0;
	e->duration_ns = 0;
	e->stack_bytes = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

#include "batch.h"

static __always_inline int st_on_entry(void *ctx, __u8 target, __u8 method, __u64 a0, __u64 a1,
				       __u64 a2)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 id = bpf_get_current_pid_tgid();
	struct st_inflight_key key = { .tid = (__u32)id, .target = target };
	struct st_inflight in = { .ts_ns = now, .args = { a0, a1, a2 } };
	__u64 lo = 0, hi = 0;
	int slot = st_batchable(target) ? st_batch_slot(target, a0, a1, &lo, &hi) : -1;

	long full;

	if (slot >= 0) {
		in.flags = ST_INFLIGHT_BATCHED;
		in.slot = slot;
		in.args[0] = lo;
		in.args[1] = hi;
		full = bpf_map_update_elem(&INFLIGHT, &key, &in, BPF_ANY);
		if (!full)
			return 0; /* counted at its exit */
		/* No room to remember it: traced alone (its exit lacks the entry). */
	} else {
		full = bpf_map_update_elem(&INFLIGHT, &key, &in, BPF_ANY);
	}
	if (full) {
		st_count_lost(ST_LOST_INFLIGHT);
		st_diag(ST_DIAG_INFLIGHT_FULL, target, now, id);
	}
	/* A sync, or a call that may populate: the batches before it are written first. */
	if (st_cfg_batch_ns && (st_batchable(target) || target <= ST_TARGET_SYNC_GLOBAL_PGDS))
		st_flush_cpu(ST_BATCH_SYNC);

	struct st_event *e = bpf_ringbuf_reserve(&EVENTS, sizeof(*e), 0);
	if (!e) {
		st_count_lost(ST_LOST_EVENTS);
		return 0;
	}
	st_fill_common(e, ST_KIND_ENTRY, target, method, now, id);
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	if (st_cfg_capture_stack) {
		long n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
		e->stack_bytes = n;
		if (n < 0)
			st_diag(ST_DIAG_STACK_FAILED, n, now, id);
	}
	if (st_cfg_force_log)
		st_diag(ST_DIAG_FORCED, a0, now, id);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* fexit passes arguments and return value; kretprobe only the return value. */
static __always_inline int st_on_exit(void *ctx, __u8 target, __u8 method, int have_args, __u64 a0,
				      __u64 a1, __u64 a2, __u64 ret)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 id = bpf_get_current_pid_tgid();
	struct st_inflight_key key = { .tid = (__u32)id, .target = target };
	struct st_inflight *in = bpf_map_lookup_elem(&INFLIGHT, &key);

	if (in && (in->flags & ST_INFLIGHT_BATCHED)) {
		__u64 entry_ns = in->ts_ns;
		__u64 lo = in->args[0], hi = in->args[1];
		__u32 slot = in->slot;
		bpf_map_delete_elem(&INFLIGHT, &key);
		st_batch_add(ctx, target, method, entry_ns, now, id, lo, hi, slot);
		return 0;
	}

	struct st_event *e = bpf_ringbuf_reserve(&EVENTS, sizeof(*e), 0);
	if (!e) {
		st_count_lost(ST_LOST_EVENTS);
		if (in)
			bpf_map_delete_elem(&INFLIGHT, &key);
		return 0;
	}
	st_fill_common(e, ST_KIND_EXIT, target, method, now, id);
	e->ret = ret;
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	if (in) {
		e->duration_ns = now - in->ts_ns;
		if (!have_args) {
			e->args[0] = in->args[0];
			e->args[1] = in->args[1];
			e->args[2] = in->args[2];
			e->flags |= ST_FLAG_ARGS_LOST;
		}
		bpf_map_delete_elem(&INFLIGHT, &key);
	} else {
		e->flags |= ST_FLAG_NO_ENTRY;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * Run by the daemon with BPF_PROG_TEST_RUN on one CPU (BPF_F_TEST_RUN_ON_CPU:
 * in an interrupt there, or in the daemon's task on its own CPU): writes that
 * CPU's open batches, so that every batchable call that ended before a scan
 * is read before the scan's results are judged. A batch being updated (by a
 * call the interrupt or a preemption stopped mid-update) is left for later.
 */
SEC("raw_tp")
int st_flush(void *ctx)
{
	st_flush_cpu(ST_BATCH_FLUSH);
	return 0;
}

/* Arguments of a traced function through its BPF trampoline; absent ones read 0. */
static __always_inline __u64 st_fn_arg(void *ctx, __u32 n)
{
	__u64 v = 0;
	bpf_get_func_arg(ctx, n, &v);
	return v;
}

#define ST_PROGRAMS(name, target)                                                             \
	SEC("fentry/" #name)                                                                    \
	int fentry_##name(unsigned long long *ctx)                                             \
	{                                                                                       \
		return st_on_entry(ctx, target, ST_METHOD_FENTRY, st_fn_arg(ctx, 0),         \
				   st_fn_arg(ctx, 1), st_fn_arg(ctx, 2));                     \
	}                                                                                       \
	SEC("fexit/" #name)                                                                     \
	int fexit_##name(unsigned long long *ctx)                                              \
	{                                                                                       \
		__u64 ret = 0;                                                                \
		bpf_get_func_ret(ctx, &ret);                                                   \
		return st_on_exit(ctx, target, ST_METHOD_FENTRY, 1, st_fn_arg(ctx, 0),       \
				  st_fn_arg(ctx, 1), st_fn_arg(ctx, 2), ret);                \
	}                                                                                       \
	SEC("kprobe/" #name)                                                                    \
	int kprobe_##name(struct pt_regs *ctx)                                                 \
	{                                                                                       \
		return st_on_entry(ctx, target, ST_METHOD_KPROBE, PT_REGS_PARM1(ctx),        \
				   PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx));                   \
	}                                                                                       \
	SEC("kretprobe/" #name)                                                                 \
	int kretprobe_##name(struct pt_regs *ctx)                                              \
	{                                                                                       \
		return st_on_exit(ctx, target, ST_METHOD_KPROBE, 0, 0, 0, 0, PT_REGS_RC(ctx)); \
	}

ST_PROGRAMS(arch_sync_kernel_mappings, ST_TARGET_ARCH_SYNC_KERNEL_MAPPINGS)
ST_PROGRAMS(sync_global_pgds, ST_TARGET_SYNC_GLOBAL_PGDS)
ST_PROGRAMS(vmemmap_pgd_populate, ST_TARGET_VMEMMAP_PGD_POPULATE)
ST_PROGRAMS(vmemmap_p4d_populate, ST_TARGET_VMEMMAP_P4D_POPULATE)
ST_PROGRAMS(pgd_populate_kernel, ST_TARGET_PGD_POPULATE_KERNEL)
ST_PROGRAMS(p4d_populate_kernel, ST_TARGET_P4D_POPULATE_KERNEL)
ST_PROGRAMS(init_memory_mapping, ST_TARGET_INIT_MEMORY_MAPPING)
ST_PROGRAMS(__populate_section_memmap, ST_TARGET_POPULATE_SECTION_MEMMAP)

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Batches of populate calls, the kernel side (the rules: events.h, "Batches"): a call of a
 * batchable populate function whose top-level entry was already present at its entry is
 * counted into its CPU's open batch instead of writing an entry and an exit record. Part
 * of the sync_trace object: sync_trace.bpf.c includes it after its maps and common helpers.
 */
#ifndef ST_BATCH_H
#define ST_BATCH_H

/* The functions whose calls go into batches. */
static __always_inline int st_batchable(__u32 target)
{
	return target == ST_TARGET_VMEMMAP_PGD_POPULATE || target == ST_TARGET_VMEMMAP_P4D_POPULATE ||
	       target == ST_TARGET_POPULATE_SECTION_MEMMAP;
}

/* x86 _PAGE_PRESENT */
#define ST_PAGE_PRESENT 1ULL

/*
 * The top-level slot of `addr` when init_top_pgt has it present, else -1
 * (empty, batches off, or a read failed: the call is then traced alone).
 */
static __always_inline int st_present_slot(__u64 addr)
{
	__u32 shift = 39; /* 4-level; pgdir_shift exists when the kernel can run 5-level */
	__u64 entry = 0;

	if (!st_cfg_init_top_pgt || !st_cfg_batch_ns)
		return -1;
	if (st_cfg_pgdir_shift &&
	    bpf_probe_read_kernel(&shift, sizeof(shift), (void *)st_cfg_pgdir_shift))
		return -1;
	if (shift != 39 && shift != 48)
		return -1;
	__u32 slot = (addr >> shift) & (ST_PTRS - 1);
	if (bpf_probe_read_kernel(&entry, sizeof(entry), (void *)(st_cfg_init_top_pgt + 8 * slot)))
		return -1;
	return (entry & ST_PAGE_PRESENT) ? (int)slot : -1;
}

/*
 * sizeof(struct page) from the kernel's BTF (CO-RE), or 0 when unknown: the
 * local definition is smaller than any kernel's, so a size below 64 means the
 * relocation was not applied (no kernel BTF).
 */
static __always_inline __u64 st_struct_page_size(void)
{
	__u64 size = 0;
	if (bpf_core_type_exists(struct page))
		size = bpf_core_type_size(struct page);
	return size >= 64 && size % 8 == 0 ? size : 0;
}

/*
 * The slot of a call whose top-level entries are all present at its entry
 * (it cannot populate), else -1; `lo`, `hi` get the lowest and highest
 * address it covers. A per-page call covers its address (`(addr, node)` /
 * `(pgd, addr, node)`); a section, the memory map of its pages: both ends
 * must be present, in one slot or two adjacent ones (a section's memory map
 * is 2 MiB, a slot at least 512 GiB). Unknown vmemmap_base or struct page
 * size: -1, the call is traced alone.
 */
static __always_inline int st_batch_slot(__u8 target, __u64 a0, __u64 a1, __u64 *lo, __u64 *hi)
{
	if (target == ST_TARGET_VMEMMAP_PGD_POPULATE || target == ST_TARGET_VMEMMAP_P4D_POPULATE) {
		*lo = *hi = target == ST_TARGET_VMEMMAP_PGD_POPULATE ? a0 : a1;
		return st_present_slot(*lo);
	}
	if (target != ST_TARGET_POPULATE_SECTION_MEMMAP || !st_cfg_vmemmap_base)
		return -1;
	__u64 size = st_struct_page_size(), base = 0;
	/* (pfn, nr_pages): a section at most, far below any overflow. */
	if (!size || !a1 || a1 > (1ULL << 32) || a0 > (1ULL << 40))
		return -1;
	if (bpf_probe_read_kernel(&base, sizeof(base), (void *)st_cfg_vmemmap_base))
		return -1;
	*lo = base + a0 * size;
	*hi = *lo + a1 * size - 1;
	int first = st_present_slot(*lo), last = st_present_slot(*hi);
	if (first < 0 || last < 0 || (last != first && last != first + 1))
		return -1;
	return first;
}

static __always_inline void st_pending_add(__s64 d)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&PENDING, &k);
	if (n)
		*n += d; /* per-CPU slot: no atomic needed */
}

/* Writes the open batch of `s` (the caller holds it busy) and closes it. */
static __always_inline void st_batch_write(struct st_batch_slot *s, __u8 reason)
{
	s->batch.reason = reason;
	if (bpf_ringbuf_output(&EVENTS, &s->batch, sizeof(s->batch), 0))
		st_count_lost(ST_LOST_EVENTS);
	s->batch.calls = 0;
	st_pending_add(-1);
}

/* Writes this CPU's open batches that nobody is updating. */
static __always_inline void st_flush_cpu(__u8 reason)
{
	for (__u32 t = 0; t < ST_TARGET_COUNT; t++) {
		__u32 k = t;
		if (!st_batchable(t))
			continue;
		struct st_batch_slot *s = bpf_map_lookup_elem(&BATCH, &k);
		if (!s || s->busy || !s->batch.calls)
			continue;
		s->busy = 1;
		asm volatile("" ::: "memory");
		st_batch_write(s, reason);
		asm volatile("" ::: "memory");
		s->busy = 0;
	}
}

static __always_inline void st_batch_start(void *ctx, struct st_batch *b, __u8 target, __u8 method,
					   __u64 entry_ns, __u64 id, __u64 lo, __u64 hi)
{
	b->ts_ns = entry_ns;
	b->busy_ns = 0;
	b->addr_first = lo;
	b->addr_last = hi;
	b->calls = 0;
	b->pid = id >> 32;
	b->tid = (__u32)id;
	b->cpu = bpf_get_smp_processor_id();
	b->kind = ST_KIND_BATCH;
	b->target = target;
	b->method = method;
	b->reason = 0;
	b->stack_bytes = 0;
	bpf_get_current_comm(b->comm, sizeof(b->comm));
	if (st_cfg_capture_stack)
		b->stack_bytes = bpf_get_stack(ctx, b->stack, sizeof(b->stack), 0);
}

static __always_inline void st_batch_count(struct st_batch *b, __u64 entry_ns, __u64 now, __u64 lo,
					   __u64 hi)
{
	b->calls += 1;
	b->end_ns = now;
	b->busy_ns += now - entry_ns;
	if (lo < b->addr_first)
		b->addr_first = lo;
	if (hi > b->addr_last)
		b->addr_last = hi;
}

/* A call that found its top-level entry present, at its exit. */
static __always_inline void st_batch_add(void *ctx, __u8 target, __u8 method, __u64 entry_ns,
					 __u64 now, __u64 id, __u64 lo, __u64 hi, __u32 slot)
{
	__u32 k = target;
	struct st_batch_slot *s = bpf_map_lookup_elem(&BATCH, &k);

	if (!s || s->busy) {
		/* Its updater was preempted mid-update: this call alone. */
		struct st_batch *b = bpf_ringbuf_reserve(&EVENTS, sizeof(*b), 0);
		if (!b) {
			st_count_lost(ST_LOST_EVENTS);
			return;
		}
		st_batch_start(ctx, b, target, method, entry_ns, id, lo, hi);
		st_batch_count(b, entry_ns, now, lo, hi);
		b->reason = ST_BATCH_LONE;
		bpf_ringbuf_submit(b, 0);
		return;
	}
	s->busy = 1;
	asm volatile("" ::: "memory");
	if (s->batch.calls) {
		__u8 why = 0;
		if (s->batch.tid != (__u32)id || s->slot != slot)
			why = ST_BATCH_OTHER;
		else if (now - s->batch.ts_ns > st_cfg_batch_ns)
			why = ST_BATCH_AGE;
		else if (s->batch.calls == 0xffffffff)
			why = ST_BATCH_FULL;
		if (why)
			st_batch_write(s, why);
	}
	if (!s->batch.calls) {
		st_batch_start(ctx, &s->batch, target, method, entry_ns, id, lo, hi);
		s->slot = slot;
		st_pending_add(1);
	}
	st_batch_count(&s->batch, entry_ns, now, lo, hi);
	asm volatile("" ::: "memory");
	s->busy = 0;
}

#endif /* ST_BATCH_H */

// SPDX-License-Identifier: GPL-2.0-only
/*
 * On-demand page-table scan, run by the daemon with BPF_PROG_TEST_RUN (no
 * attach point).
 *
 * ST_SCAN_TABLE copies init_mm's top-level table: cheap, whatever the number
 * of processes. ST_SCAN_WALK_BEGIN copies it too and walks pgd_list,
 * counting for each slot of a given set the PGDs that lack an entry init_mm
 * has or whose entry points to another table. The walk is chunked: a run
 * stops once it has used st_cfg_run_budget_ns (preemption is off during a
 * test run) and keeps its cursor, and ST_SCAN_WALK_NEXT goes on from there.
 * ST_SCAN_WALK_BEGIN only sets the walk up (table, slot list, CO-RE facts,
 * head), so the first chunk too has a whole run's budget.
 *
 * pgd_list cannot be locked from BPF (pgd_lock is a spinlock the program
 * cannot take), and between two runs the cursor's PGD may be freed (its page
 * then links into the buddy allocator's free lists) or reused. So every node
 * is validated before it counts: it must be a struct page in vmemmap, still
 * referenced, whose owner mm (pt_mm) has that very page as its pgd. An
 * invalid node restarts the walk from the head, a bounded number of times;
 * then the walk ends with ST_SCAN_FAULT and userspace uses none of its
 * counts. Userspace also re-checks any disagreement with a second complete
 * walk before reporting it (docs/design.md).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "events.h"
#include "pgtable_kernel.h"

char LICENSE[] SEC("license") = "GPL";

/* Kernel addresses from /proc/kallsyms, set by the daemon before load. */
const volatile __u64 st_cfg_init_top_pgt = 0;     /* init_top_pgt == swapper_pg_dir == init_mm.pgd */
const volatile __u64 st_cfg_pgd_list = 0;         /* struct list_head pgd_list */
const volatile __u64 st_cfg_page_offset_base = 0; /* unsigned long page_offset_base */
const volatile __u64 st_cfg_vmalloc_base = 0;
const volatile __u64 st_cfg_vmemmap_base = 0;
const volatile __u64 st_cfg_pgdir_shift = 0;      /* unsigned int pgdir_shift; 0: not in kallsyms (4-level only) */
const volatile __u64 st_cfg_sme_me_mask = 0;      /* unsigned long sme_me_mask; 0: not in kallsyms */
const volatile __u32 st_cfg_max_pgds = 1 << 20;   /* bound of one walk */
const volatile __u64 st_cfg_run_budget_ns = 500000; /* a test run stops its chunk after this */
const volatile __u32 st_cfg_max_restarts = 3;     /* restarts from the head after an invalid node */


struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct st_scan);
} SCAN SEC(".maps");

/* The kernel half of one PGD, read in one go. */
struct st_half {
	__u64 e[ST_HALF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_half);
} ST_PGD_SCRATCH SEC(".maps");

/* What one run of the walk needs at hand. */
struct st_walk {
	__u64 start_ns;
	__u64 mask; /* table-address bits to compare */
	__u64 page_size;
	__u64 list_off;
	__u64 pt_mm_off;
	__u64 refcount_off;
	__u64 mm_pgd_off;
	__u64 page_offset_base;
	__u64 vmemmap_base;
};

static __always_inline int st_read(__u64 *dst, __u64 addr, __u32 size)
{
	*dst = 0;
	return addr ? bpf_probe_read_kernel(dst, size, (void *)addr) : -1;
}

/*
 * Whether `node` is the pgd_list link of a live PGD: a struct page in
 * vmemmap, referenced, whose owner mm points back at its page. Sets the
 * PGD's direct-map address.
 */
static __always_inline int st_valid(const struct st_walk *w, __u64 node, __u64 *pgd)
{
	if (node == ST_LIST_POISON1 || node == ST_LIST_POISON2)
		return 0;
	if (node < w->vmemmap_base + w->list_off)
		return 0;
	__u64 page = node - w->list_off;
	__u64 off = page - w->vmemmap_base;
	if (!w->page_size || off % w->page_size)
		return 0;
	__u64 pfn = off / w->page_size;
	if (pfn >= ST_MAX_PFN)
		return 0;
	int ref = 0;
	if (bpf_probe_read_kernel(&ref, sizeof(ref), (void *)(page + w->refcount_off)) || ref <= 0)
		return 0;
	__u64 mm = 0;
	if (bpf_probe_read_kernel(&mm, sizeof(mm), (void *)(page + w->pt_mm_off)) || mm < ST_KERNEL_MIN)
		return 0;
	__u64 addr = w->page_offset_base + (pfn << ST_PAGE_SHIFT);
	__u64 mm_pgd = 0;
	if (bpf_probe_read_kernel(&mm_pgd, sizeof(mm_pgd), (void *)(mm + w->mm_pgd_off)) ||
	    mm_pgd != addr)
		return 0;
	*pgd = addr;
	return 1;
}

#include "scan_counts.h"

/* An invalid node: start again from the head, or give up. Returns bpf_loop's verdict. */
static __always_inline int st_restart(struct st_scan *s)
{
	s->status |= ST_SCAN_RESTARTED;
	if (s->restarts >= st_cfg_max_restarts) {
		s->status |= ST_SCAN_FAULT | ST_SCAN_DONE;
		return 1;
	}
	s->restarts += 1;
	st_zero_counts(s);
	__u64 head = 0;
	if (st_read(&head, st_cfg_pgd_list, sizeof(head))) {
		s->status |= ST_SCAN_FAULT | ST_SCAN_DONE;
		return 1;
	}
	s->cursor = head;
	return 0;
}

static int st_walk_one(__u32 i, struct st_walk *w)
{
	__u32 key = ST_SCAN_KEY_WALK, zero = 0;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &key);
	struct st_half *h = bpf_map_lookup_elem(&ST_PGD_SCRATCH, &zero);
	if (!s || !h)
		return 1;
	if (i && (i % ST_CLOCK_EVERY) == 0 && bpf_ktime_get_ns() - w->start_ns > st_cfg_run_budget_ns) {
		s->status |= ST_SCAN_MORE;
		return 1;
	}
	__u64 node = s->cursor;
	if (node == st_cfg_pgd_list) {
		s->status |= ST_SCAN_WALKED | ST_SCAN_DONE;
		return 1;
	}
	if (s->pgds >= st_cfg_max_pgds) {
		s->status |= ST_SCAN_TRUNCATED | ST_SCAN_DONE;
		return 1;
	}
	__u64 pgd = 0;
	if (!st_valid(w, node, &pgd))
		return st_restart(s);
	/* Only the first 4 KiB: with PTI the second page is the user copy. */
	__u32 n = s->nslots;
	if (n <= ST_FEW) {
		for (__u32 k = 0; k < ST_FEW; k++) {
			if (k >= n)
				break;
			__u32 idx = s->list[k] & (ST_HALF - 1);
			__u64 tgt = 0;
			if (bpf_probe_read_kernel(&tgt, sizeof(tgt),
						  (void *)(pgd + (ST_KERNEL_HALF + idx) * 8)))
				return st_restart(s);
			st_count(s, w, idx, tgt);
		}
	} else {
		if (bpf_probe_read_kernel(h, sizeof(*h), (void *)(pgd + ST_KERNEL_HALF * 8)))
			return st_restart(s);
		struct st_chunks c = { .w = w, .n = n };
		bpf_loop((n + ST_CHUNK - 1) / ST_CHUNK, st_count_chunk, &c, 0);
	}
	__u64 next = 0;
	if (bpf_probe_read_kernel(&next, sizeof(next), (void *)node))
		return st_restart(s);
	s->pgds += 1;
	s->cursor = next;
	return 0;
}

/* The layout variables and init_mm's table into `s`; 0 on success. */
static __always_inline int st_table(struct st_scan *s)
{
	__u64 shift = 0;
	if (st_read(&s->page_offset_base, st_cfg_page_offset_base, 8) ||
	    st_read(&s->vmalloc_base, st_cfg_vmalloc_base, 8) ||
	    st_read(&s->vmemmap_base, st_cfg_vmemmap_base, 8))
		s->status |= ST_SCAN_NO_LAYOUT;
	/* pgdir_shift exists when the kernel can run 5-level; otherwise it is 39. */
	if (st_read(&shift, st_cfg_pgdir_shift, 4))
		shift = 39;
	s->pgdir_shift = shift;
	st_read(&s->sme_me_mask, st_cfg_sme_me_mask, 8);
	s->ts_ns = bpf_ktime_get_ns();
	if (!st_cfg_init_top_pgt ||
	    bpf_probe_read_kernel(s->top, sizeof(s->top), (void *)st_cfg_init_top_pgt))
		s->status |= ST_SCAN_NO_LAYOUT;
	return s->status & ST_SCAN_NO_LAYOUT;
}

/* Struct page and mm_struct facts from CO-RE; sets s->core and the offsets. */
static __always_inline void st_core(struct st_scan *s)
{
	__u32 core = 0;
	s->page_size = 0;
	s->list_off = 0;
	s->pt_mm_off = 0;
	s->refcount_off = 0;
	s->mm_pgd_off = 0;
	if (bpf_core_type_exists(struct page)) {
		core |= ST_CORE_PAGE;
		s->page_size = bpf_core_type_size(struct page);
	}
	if (bpf_core_type_exists(struct ptdesc)) {
		core |= ST_CORE_PTDESC;
		if (bpf_core_field_exists(struct ptdesc, pt_list)) {
			core |= ST_CORE_LIST;
			s->list_off = bpf_core_field_offset(struct ptdesc, pt_list);
		}
		if (bpf_core_field_exists(struct ptdesc, pt_mm)) {
			core |= ST_CORE_PT_MM;
			s->pt_mm_off = bpf_core_field_offset(struct ptdesc, pt_mm);
		}
	} else {
		if (bpf_core_field_exists(struct page, lru)) {
			core |= ST_CORE_LIST;
			s->list_off = bpf_core_field_offset(struct page, lru);
		}
		if (bpf_core_field_exists(struct page, pt_mm)) {
			core |= ST_CORE_PT_MM;
			s->pt_mm_off = bpf_core_field_offset(struct page, pt_mm);
		}
	}
	if (bpf_core_field_exists(struct page, _refcount)) {
		core |= ST_CORE_REFCOUNT;
		s->refcount_off = bpf_core_field_offset(struct page, _refcount);
	}
	if (bpf_core_field_exists(struct mm_struct, pgd)) {
		core |= ST_CORE_MM_PGD;
		s->mm_pgd_off = bpf_core_field_offset(struct mm_struct, pgd);
	}
	s->core = core;
}

/* One slot of the set: listed when asked for and present in init_mm. */
static int st_list_one(__u32 idx, void *unused)
{
	__u32 key = ST_SCAN_KEY_WALK;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &key);
	if (!s || idx >= ST_HALF)
		return 1;
	/* An opaque copy, masked: the verifier must see the bound on this very register. */
	__u32 i = idx;
	asm volatile("" : "+r"(i));
	i &= ST_HALF - 1;
	__u64 bits = s->slots[i >> 6];
	if (!((bits >> (i & 63)) & 1) || !(s->top[ST_KERNEL_HALF + i] & ST_PAGE_PRESENT))
		return 0;
	__u32 n = s->nslots;
	if (n >= ST_HALF)
		return 1;
	s->list[n] = i;
	s->nslots = n + 1;
	return 0;
}

/* ST_SCAN_WALK_BEGIN: the table, the slot list, the CO-RE facts, the head. */
static __always_inline int st_begin(struct st_scan *s, const unsigned long long *ctx)
{
	s->status = 0;
	s->runs = 0;
	s->restarts = 0;
	s->max_run_ns = 0;
	s->busy_ns = 0;
	s->cursor = 0;
	s->nslots = 0;
	st_zero_counts(s);
	if (st_table(s))
		return 1;
	s->slots[0] = ctx[1];
	s->slots[1] = ctx[2];
	s->slots[2] = ctx[3];
	s->slots[3] = ctx[4];
	/* bpf_loop: the verifier checks the body once, not once per slot. */
	bpf_loop(ST_HALF, st_list_one, NULL, 0);
	st_core(s);
	if ((s->core & ST_CORE_NEEDED) != ST_CORE_NEEDED) {
		s->status |= ST_SCAN_NO_CORE;
		return 1;
	}
	if (st_read(&s->cursor, st_cfg_pgd_list, sizeof(s->cursor))) {
		s->status |= ST_SCAN_FAULT;
		return 1;
	}
	return 0;
}

SEC("raw_tp")
int st_scan(unsigned long long *ctx)
{
	__u64 t0 = bpf_ktime_get_ns();
	__u64 mode = ctx[0];
	__u32 key = mode == ST_SCAN_TABLE ? ST_SCAN_KEY_TABLE : ST_SCAN_KEY_WALK;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &key);
	if (!s)
		return 0;
	if (mode == ST_SCAN_TABLE) {
		s->status = 0;
		s->pgds = 0;
		st_table(s);
		/* sizeof(struct page) only: it places a section's memory map. */
		s->core = 0;
		s->page_size = 0;
		if (bpf_core_type_exists(struct page)) {
			s->core = ST_CORE_PAGE;
			s->page_size = bpf_core_type_size(struct page);
		}
		s->status |= ST_SCAN_DONE;
		s->end_ns = bpf_ktime_get_ns();
		s->runs = 1;
		s->max_run_ns = s->end_ns - t0;
		s->busy_ns = s->max_run_ns;
		return 0;
	}
	if (mode == ST_SCAN_WALK_BEGIN) {
		/* Set-up only: the first chunk gets a run of its own. */
		if (st_begin(s, ctx))
			s->status |= ST_SCAN_DONE;
		else
			s->status |= ST_SCAN_MORE;
		goto out;
	} else if (mode == ST_SCAN_WALK_NEXT && (s->status & ST_SCAN_MORE)) {
		s->status &= ~ST_SCAN_MORE;
	} else {
		s->status |= ST_SCAN_NOT_BEGUN;
		return 0;
	}
	struct st_walk w = {
		.start_ns = t0,
		.mask = ST_PTE_PFN_MASK & ~s->sme_me_mask,
		.page_size = s->page_size,
		.list_off = s->list_off,
		.pt_mm_off = s->pt_mm_off,
		.refcount_off = s->refcount_off,
		.mm_pgd_off = s->mm_pgd_off,
		.page_offset_base = s->page_offset_base,
		.vmemmap_base = s->vmemmap_base,
	};
	bpf_loop(ST_RUN_NODES, st_walk_one, &w, 0);
	if (!(s->status & ST_SCAN_DONE))
		s->status |= ST_SCAN_MORE;
out:;
	__u64 t1 = bpf_ktime_get_ns();
	s->runs += 1;
	s->busy_ns += t1 - t0;
	if (t1 - t0 > s->max_run_ns)
		s->max_run_ns = t1 - t0;
	s->end_ns = t1;
	return 0;
}

#include "sweep_timer.h"

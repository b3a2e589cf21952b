// SPDX-License-Identifier: GPL-2.0-only
/*
 * On-demand page-table scan, run by the daemon with BPF_PROG_TEST_RUN (no
 * attach point): copies init_mm's top-level table and, in ST_SCAN_WALK
 * mode, walks pgd_list and counts, per kernel-half slot, the PGDs that lack
 * an entry init_mm has or whose entry points to another table.
 *
 * pgd_list cannot be locked from BPF (pgd_lock is a spinlock the program
 * cannot take), so the walk is optimistic: every read is checked, a
 * poisoned or unreadable pointer ends it with ST_SCAN_FAULT, and userspace
 * re-checks any mismatch on a second pass before reporting it
 * (kernel-notes §7.2).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* Kernel addresses from /proc/kallsyms, set by the daemon before load. */
const volatile __u64 st_cfg_init_top_pgt = 0;     /* init_top_pgt == swapper_pg_dir == init_mm.pgd */
const volatile __u64 st_cfg_pgd_list = 0;         /* struct list_head pgd_list */
const volatile __u64 st_cfg_page_offset_base = 0; /* unsigned long page_offset_base */
const volatile __u64 st_cfg_vmalloc_base = 0;
const volatile __u64 st_cfg_vmemmap_base = 0;
const volatile __u64 st_cfg_pgdir_shift = 0;      /* unsigned int pgdir_shift; 0: not in kallsyms (4-level only) */
const volatile __u64 st_cfg_sme_me_mask = 0;      /* unsigned long sme_me_mask; 0: not in kallsyms */
const volatile __u32 st_cfg_max_pgds = 65536;     /* bound of the walk */

/* x86_64 entry bits: present, and the table address (bits 12..51). */
#define ST_PAGE_PRESENT 0x1ULL
#define ST_PTE_PFN_MASK 0x000ffffffffff000ULL
/* list_del() poison with the x86_64 ILLEGAL_POINTER_VALUE (include/linux/poison.h). */
#define ST_LIST_POISON1 0xdead000000000100ULL
#define ST_LIST_POISON2 0xdead000000000122ULL
#define ST_PAGE_SHIFT 12

/* Only what CO-RE needs: the size of struct page and where pgd_list links it. */
struct list_head {
	struct list_head *next;
};
struct page {
	struct list_head lru; /* pgd_list link: page->lru (6.1), the same bytes as ptdesc->pt_list (7.x) */
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
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

struct st_walk {
	__u64 node; /* current list node (kernel address) */
	__u64 mask; /* table-address bits to compare */
	__u64 lru_off;
	__u64 page_size;
	__u64 page_offset_base;
	__u64 vmemmap_base;
};

static int st_walk_one(__u32 i, struct st_walk *w)
{
	__u32 zero = 0;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &zero);
	struct st_half *h = bpf_map_lookup_elem(&ST_PGD_SCRATCH, &zero);
	if (!s || !h)
		return 1;
	if (w->node == st_cfg_pgd_list) {
		s->status |= ST_SCAN_WALKED;
		return 1;
	}
	if (w->node == ST_LIST_POISON1 || w->node == ST_LIST_POISON2 || w->node < w->vmemmap_base) {
		s->status |= ST_SCAN_FAULT;
		return 1;
	}
	/* struct page of the PGD, then its direct-map address: page_address(). */
	__u64 page = w->node - w->lru_off;
	__u64 pfn = (page - w->vmemmap_base) / w->page_size;
	__u64 pgd = w->page_offset_base + (pfn << ST_PAGE_SHIFT);
	/* Only the first 4 KiB: with PTI the second page is the user copy. */
	if (bpf_probe_read_kernel(h, sizeof(*h), (void *)(pgd + ST_KERNEL_HALF * 8))) {
		s->status |= ST_SCAN_FAULT;
		return 1;
	}
	for (__u32 k = 0; k < ST_HALF; k++) {
		__u64 ref = s->top[ST_KERNEL_HALF + k];
		__u64 tgt = h->e[k];
		if (!(ref & ST_PAGE_PRESENT))
			continue;
		if (!(tgt & ST_PAGE_PRESENT))
			s->missing[k] += 1;
		else if ((ref ^ tgt) & w->mask)
			s->mismatch[k] += 1;
	}
	s->pgds += 1;
	__u64 next = 0;
	if (bpf_probe_read_kernel(&next, sizeof(next), (void *)w->node)) {
		s->status |= ST_SCAN_FAULT;
		return 1;
	}
	w->node = next;
	return 0;
}

static __always_inline int st_read(__u64 *dst, __u64 addr, __u32 size)
{
	*dst = 0;
	return addr ? bpf_probe_read_kernel(dst, size, (void *)addr) : -1;
}

SEC("raw_tp")
int st_scan(unsigned long long *ctx)
{
	__u32 zero = 0;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &zero);
	if (!s)
		return 0;
	__u64 mode = ctx[0];
	s->status = 0;
	s->pgds = 0;
	/* volatile: clang would turn a plain loop into memset, which BPF lacks. */
	volatile __u32 *missing = s->missing, *mismatch = s->mismatch;
	for (__u32 k = 0; k < ST_HALF; k++) {
		missing[k] = 0;
		mismatch[k] = 0;
	}
	s->page_size = bpf_core_type_size(struct page);

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
	if (bpf_probe_read_kernel(s->top, sizeof(s->top), (void *)st_cfg_init_top_pgt)) {
		s->status |= ST_SCAN_NO_LAYOUT;
		s->end_ns = bpf_ktime_get_ns();
		return 0;
	}
	if (mode == ST_SCAN_WALK && !(s->status & ST_SCAN_NO_LAYOUT) && s->page_size) {
		struct st_walk w = {
			.mask = ST_PTE_PFN_MASK & ~s->sme_me_mask,
			.lru_off = bpf_core_field_offset(struct page, lru),
			.page_size = s->page_size,
			.page_offset_base = s->page_offset_base,
			.vmemmap_base = s->vmemmap_base,
		};
		if (bpf_probe_read_kernel(&w.node, sizeof(w.node), (void *)st_cfg_pgd_list))
			s->status |= ST_SCAN_FAULT;
		else if (bpf_loop(st_cfg_max_pgds, st_walk_one, &w, 0) >= st_cfg_max_pgds &&
			 !(s->status & (ST_SCAN_WALKED | ST_SCAN_FAULT)))
			s->status |= ST_SCAN_TRUNCATED;
	}
	s->status |= ST_SCAN_DONE;
	s->end_ns = bpf_ktime_get_ns();
	return 0;
}

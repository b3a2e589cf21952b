/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the page-table walk (pgtable_scan.bpf.c) knows of x86_64 and of the
 * kernel: entry bits, list poison, address bounds, the walk's own bounds, and
 * CO-RE mirrors of the few kernel types it reads.
 */
#ifndef ST_PGTABLE_KERNEL_H
#define ST_PGTABLE_KERNEL_H

#include <linux/types.h>

/* x86_64 entry bits: present, and the table address (bits 12..51). */
#define ST_PAGE_PRESENT 0x1ULL
#define ST_PTE_PFN_MASK 0x000ffffffffff000ULL
/* list_del() poison with the x86_64 ILLEGAL_POINTER_VALUE (include/linux/poison.h). */
#define ST_LIST_POISON1 0xdead000000000100ULL
#define ST_LIST_POISON2 0xdead000000000122ULL
#define ST_PAGE_SHIFT 12
/* Physical addresses have at most 52 bits. */
#define ST_MAX_PFN (1ULL << (52 - ST_PAGE_SHIFT))
/* Lowest kernel address (x86_64, either paging mode). */
#define ST_KERNEL_MIN 0xff00000000000000ULL
/* At most this many slots are read one by one; more read the kernel half at once. */
#define ST_FEW 8
/* Nodes per test run at most (the time budget usually ends it first). */
#define ST_RUN_NODES 65536
/* The clock is read every this many nodes. */
#define ST_CLOCK_EVERY 4

/*
 * Only what CO-RE needs. pgd_list links struct page through page->lru (6.1)
 * or, since struct ptdesc exists (6.5+), ptdesc->pt_list: the same bytes.
 * The owner mm is page->pt_mm / ptdesc->pt_mm.
 */
struct st_list {
	struct st_list *next;
};
typedef struct {
	int counter;
} st_atomic_t;
struct mm_struct {
	void *pgd;
} __attribute__((preserve_access_index));
struct page {
	struct st_list lru;
	st_atomic_t _refcount;
	struct mm_struct *pt_mm;
} __attribute__((preserve_access_index));
struct ptdesc {
	struct st_list pt_list;
	struct mm_struct *pt_mm;
} __attribute__((preserve_access_index));

#endif /* ST_PGTABLE_KERNEL_H */

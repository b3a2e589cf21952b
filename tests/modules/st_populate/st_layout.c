// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - the layout: top-level slot arithmetic, the bounds of the direct map, vmalloc
 * and vmemmap regions, and the search for a free top-level slot.
 */
#include <linux/kernel.h>
#include <linux/limits.h>
#include <linux/mm.h>
#include <asm/pgtable.h>

#include "st_populate.h"

/* ---------------------------------------------------------------------------------------
 * Layout helpers
 */

/*
 * Start address of top-level slot @i. The top level always has 512 entries (PTRS_PER_PGD);
 * PGDIR_SHIFT is the runtime variable pgdir_shift: 39 under 4-level paging (one slot =
 * 512 GiB), 48 under 5-level paging (one slot = 256 TiB). Slots 256..511 are the kernel half:
 * sign-extend from bit PGDIR_SHIFT + 8 (47 or 56) to get a canonical address.
 */
unsigned long st_slot_addr(unsigned int i)
{
	unsigned long a = (unsigned long)i << PGDIR_SHIFT;

	if (i >= PTRS_PER_PGD / 2)
		a |= ~0UL << (PGDIR_SHIFT + 9);
	return a;
}

unsigned long st_slot_last(unsigned int i)
{
	return st_slot_addr(i) + (PGDIR_SIZE - 1);
}

/* Inclusive ranges [a0, a1] and [b0, b1] intersect. */
static bool st_overlap(unsigned long a0, unsigned long a1, unsigned long b0, unsigned long b1)
{
	return a0 <= b1 && b0 <= a1;
}

/* Last byte of [start, start + size), saturating at the top of the address space. */
unsigned long st_end(unsigned long start, unsigned long size)
{
	unsigned long e = start + size - 1;

	return e < start ? ULONG_MAX : e;
}

/*
 * Size of the vmemmap region, as in Documentation/arch/x86/x86_64/mm.rst: 1 TiB under
 * 4-level paging (ffffea0000000000-ffffeaffffffffff), 0.5 PiB under 5-level paging
 * (ffd4000000000000-ffd5ffffffffffff); i.e. two top-level slots in either mode. With KASLR
 * (arch/x86/mm/kaslr.c) the region is smaller (1 TiB / 64 TiB), so this is conservative.
 */
unsigned long st_vmemmap_size(void)
{
	return pgtable_l5_enabled() ? 1UL << 49 : 1UL << 40;
}

/*
 * Is the top-level entry that maps @addr empty? @pgd points at init_mm.pgd[pgd_index(addr)]
 * (or another PGD's entry).
 * - 5-level: the top level is the PGD (PML5): pgd_none().
 * - 4-level: the P4D level is folded into the PGD, so the PML4 entry is the "p4d":
 *   p4d_offset() returns the PGD entry itself, and pgd_none() is hard-wired to 0 there.
 */
bool st_tl_none(pgd_t *pgd, unsigned long addr)
{
	if (pgtable_l5_enabled())
		return pgd_none(*pgd);
	return p4d_none(*p4d_offset(pgd, addr));
}

/* Present bit of a raw top-level entry, valid in both modes (no folding involved). */
bool st_tl_present(pgd_t e)
{
	return pgd_flags(e) & _PAGE_PRESENT;
}

/*
 * A free top-level slot that is a real hole of the layout: empty in init_mm and outside the
 * direct map [page_offset_base, vmalloc_base), the vmalloc area [vmalloc_base, VMALLOC_END]
 * (its top-level entries are all preallocated at boot anyway, preallocate_vmalloc_pages())
 * and the vmemmap region (memory hot-add may populate it later). Scanned from just below the
 * cpu_entry_area slot (CPU_ENTRY_AREA_BASE = -4 << P4D_SHIFT = 0xfffffe0000000000: slot 508
 * under 4-level, slot 511 under 5-level where one slot also holds espfix, EFI, the kernel
 * image, modules and the fixmap) down to KERNEL_PGD_BOUNDARY = pgd_index(PAGE_OFFSET).
 * Returns the slot or -1.
 */
int st_find_free_slot(void)
{
	unsigned long dm0 = page_offset_base, dm1 = vmalloc_base - 1;
	unsigned long vm0 = VMALLOC_START, vm1 = VMALLOC_END;
	unsigned long mm0 = vmemmap_base, mm1 = st_end(vmemmap_base, st_vmemmap_size());
	int first = pgd_index(PAGE_OFFSET);
	int i;

	for (i = (int)pgd_index(CPU_ENTRY_AREA_BASE) - 1; i >= first; i--) {
		unsigned long a0 = st_slot_addr(i), a1 = st_slot_last(i);

		if (!st_tl_none(st_mm->pgd + i, a0))
			continue;
		if (st_overlap(a0, a1, dm0, dm1) || st_overlap(a0, a1, vm0, vm1) ||
		    st_overlap(a0, a1, mm0, mm1))
			continue;
		return i;
	}
	return -1;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - "clear": remove init_mm's top-level entry written by the last top-level
 * action, as KASAN's zero-shadow teardown can (kasan_free_p4d/kasan_free_pud clear init_mm's
 * entry without touching any other PGD). sync-trace must report it (`depopulate`) and report
 * the slot's next population again.
 *
 * Other PGDs keep their copy of the entry. The next top-level action takes the highest free
 * slot, which is this one again (the search runs downwards from below the cpu_entry_area
 * slot and every slot above it is taken), and st_action_top() then writes the same table
 * back (st_reuse_table): every copy and init_mm agree again, so a sync over the slot finds
 * no present entry pointing elsewhere (sync_global_pgds() would BUG_ON that).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <asm/pgalloc.h>
#include <asm/pgtable.h>

#include "st_populate.h"

/* The slot "clear" emptied and the table its entry pointed at, until it is written back. */
static int st_cleared_slot = -1;
static void *st_cleared_table;

/* Called with st_lock held: the table to write back into @slot, or NULL. */
void *st_reuse_table(int slot)
{
	void *t = NULL;

	if (slot == st_cleared_slot) {
		t = st_cleared_table;
		st_cleared_slot = -1;
		st_cleared_table = NULL;
	}
	return t;
}

/* Clear init_mm's top-level entry of slot @i; returns the table it pointed at. notrace like
 * the populating functions: only the effect in the table can be seen. */
static noinline notrace void *st_clear_top(int i, unsigned long addr)
{
	pgd_t *pgd = st_mm->pgd + i;
	void *table = NULL;

	spin_lock(&st_mm->page_table_lock);
	if (pgtable_l5_enabled()) {
		if (pgd_present(*pgd)) {
			table = (void *)pgd_page_vaddr(*pgd);
			pgd_clear(pgd);
		}
	} else {
		p4d_t *p4d = p4d_offset(pgd, addr);

		if (p4d_present(*p4d)) {
			table = (void *)p4d_pgtable(*p4d);
			p4d_clear(p4d);
		}
	}
	spin_unlock(&st_mm->page_table_lock);
	return table;
}

/* Called with st_lock held. */
int st_action_clear(void)
{
	struct st_record r = st_last;

	/* Only the plain top-level modes: a mismatched slot has a PGD pointing elsewhere. */
	if (r.slot < 0 || (strcmp(r.mode, "sync") && strcmp(r.mode, "never") &&
			   strcmp(r.mode, "late") && strcmp(r.mode, "lossy"))) {
		pr_err("clear: the last action (%s) wrote no plain top-level entry\n", r.mode);
		return -ENOENT;
	}
	if (st_cleared_slot >= 0) {
		pr_err("clear: slot %d is still cleared; populate it again first\n", st_cleared_slot);
		return -EBUSY;
	}
	st_cleared_table = st_clear_top(r.slot, r.addr);
	if (!st_cleared_table)
		return -ENOENT;
	st_cleared_slot = r.slot;
	r.mode = "clear";
	r.ts_ns = ktime_get_ns();
	r.sync_ts_ns = 0;
	st_last = r;
	st_report(&r);
	return 0;
}

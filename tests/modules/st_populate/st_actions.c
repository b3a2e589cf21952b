// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - the actions: the notrace populating functions, the syncs (at once or from a
 * delayed work), the mismatch, and the state they leave for the debugfs file "last".
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include <asm/pgalloc.h>
#include <asm/pgtable.h>

#include "st_populate.h"

/* Serialises actions, and protects st_last and st_late_list. */
DEFINE_MUTEX(st_lock);

struct st_record st_last = { .mode = "none", .level = "none", .slot = -1 };
static u64 st_seq;

LIST_HEAD(st_late_list);

int st_format(const struct st_record *r, char *buf, size_t len)
{
	if (!strcmp(r->mode, "devmap"))
		return st_devmap_format(buf, len);
	return scnprintf(buf, len,
			 "mode=%s level=%s slot=%d addr=0x%lx ts_ns=%llu sync_ts_ns=%llu\n",
			 r->mode, r->level, r->slot, r->addr, r->ts_ns, r->sync_ts_ns);
}

void st_report(const struct st_record *r)
{
	char buf[ST_LINE_MAX];

	st_format(r, buf, sizeof(buf));
	pr_info("%s", buf);
}

/* ---------------------------------------------------------------------------------------
 * The populating code. notrace (and noinline): no ftrace-based probe (fentry, kprobe on
 * ftrace, function tracer) can attach to it, like the notrace __meminit vmemmap populate
 * functions of 6.1. sync-trace can only see the effect in the tables and the sync call.
 */

/*
 * Write the top-level entry for slot @i of init_mm, pointing at the zeroed page @table.
 * Returns ktime_get_ns() taken right after the write, or 0 if the slot was taken meanwhile.
 */
static noinline notrace u64 st_populate_top(int i, unsigned long addr, void *table)
{
	pgd_t *pgd = st_mm->pgd + i;
	u64 ts = 0;

	/* init_mm.page_table_lock, as __kernel_physical_mapping_init()/__pud_alloc() take it. */
	spin_lock(&st_mm->page_table_lock);
	if (st_tl_none(pgd, addr)) {
		if (pgtable_l5_enabled())
			/* 5-level: the top level is the PGD; table is a new (empty) P4D page. */
			pgd_populate(st_mm, pgd, table);
		else
			/*
			 * 4-level: P4D folded into the PGD, p4d_offset() is the PML4 entry itself;
			 * table is a new (empty) PUD page. pgd_populate() would be a no-op here.
			 */
			p4d_populate(st_mm, p4d_offset(pgd, addr), table);
		ts = ktime_get_ns();
	}
	spin_unlock(&st_mm->page_table_lock);
	return ts;
}

/*
 * Write a second-level entry below the present top-level entry @pgd (no sync: the page
 * below a top-level entry is shared by every PGD that has a copy of the entry, so everybody
 * sees the new entry at once; this is why ARCH_PAGE_TABLE_SYNC_MASK is PGTBL_P4D_MODIFIED
 * under 4-level and PGTBL_PGD_MODIFIED under 5-level, i.e. top level only).
 * 4-level: a PUD entry inside the PUD page of the PML4 entry, pointing at a new PMD page.
 * 5-level: a P4D entry inside the P4D page of the PML5 entry, pointing at a new PUD page.
 * Returns ktime_get_ns() after the write, or 0 if the entry was taken meanwhile.
 */
static noinline notrace u64 st_populate_lower(pgd_t *pgd, unsigned long addr, void *table)
{
	u64 ts = 0;

	spin_lock(&st_mm->page_table_lock);
	if (pgtable_l5_enabled()) {
		p4d_t *p4d = p4d_offset(pgd, addr);

		if (p4d_none(*p4d)) {
			p4d_populate(st_mm, p4d, table);
			ts = ktime_get_ns();
		}
	} else {
		pud_t *pud = pud_offset(p4d_offset(pgd, addr), addr);

		if (pud_none(*pud)) {
			pud_populate(st_mm, pud, table);
			ts = ktime_get_ns();
		}
	}
	spin_unlock(&st_mm->page_table_lock);
	return ts;
}

/* ---------------------------------------------------------------------------------------
 * Actions
 */

static void st_do_sync(struct st_record *r)
{
	/*
	 * Exactly what p4d_populate_kernel() (4-level) / pgd_populate_kernel() (5-level) do
	 * after the populate: arch_sync_kernel_mappings(addr, addr), start == end. On x86_64
	 * that tail-calls sync_global_pgds(), which copies the entry into every PGD on pgd_list.
	 */
	st_sync(r->addr, r->addr);
	r->sync_ts_ns = ktime_get_ns();
}

static void st_late_fn(struct work_struct *w)
{
	struct st_late *l = container_of(to_delayed_work(w), struct st_late, dw);

	st_do_sync(&l->rec);
	mutex_lock(&st_lock);
	if (st_last.seq == l->rec.seq)
		st_last.sync_ts_ns = l->rec.sync_ts_ns;
	mutex_unlock(&st_lock);
	st_report(&l->rec);
}

/*
 * After a synced populate of slot @i: point the writing process's own copy of the entry at
 * another (empty) table, so that its PGD disagrees with init_mm in a present entry, which is
 * what sync_global_pgds() would BUG_ON. Only the writer's PGD is touched; nothing maps the
 * slot, and no later sync covers it in the tests (a sync over it would hit that BUG_ON).
 * The second table is leaked with the PGD (pgd_free() never frees kernel-half tables).
 */
static noinline notrace void st_mismatch_current(int i, unsigned long addr)
{
	void *other = (void *)get_zeroed_page(GFP_KERNEL);
	pgd_t *pgd;

	if (!other || !current->mm)
		return;
	pgd = current->mm->pgd + i;
	spin_lock(&current->mm->page_table_lock);
	if (pgtable_l5_enabled())
		set_pgd(pgd, __pgd(_KERNPG_TABLE | __pa(other)));
	else
		set_p4d(p4d_offset(pgd, addr), __p4d(_KERNPG_TABLE | __pa(other)));
	spin_unlock(&current->mm->page_table_lock);
}

/* Called with st_lock held. */
int st_action_top(const char *mode)
{
	struct st_record r = { .mode = mode };
	struct st_late *late = NULL;
	void *table, *reused;
	int i;

	if (!strcmp(mode, "late")) {
		late = kzalloc(sizeof(*late), GFP_KERNEL);
		if (!late)
			return -ENOMEM;
	}
	table = (void *)get_zeroed_page(GFP_KERNEL);
	if (!table) {
		kfree(late);
		return -ENOMEM;
	}
	for (;;) {
		i = st_find_free_slot();
		if (i < 0) {
			free_page((unsigned long)table);	/* never linked: safe to free */
			kfree(late);
			return -ENOSPC;
		}
		r.addr = st_slot_addr(i);
		/* A slot "clear" emptied gets its old table back (st_clear.c). */
		reused = st_reuse_table(i);
		r.ts_ns = st_populate_top(i, r.addr, reused ? reused : table);
		if (reused && r.ts_ns)
			free_page((unsigned long)table);	/* never linked */
		if (r.ts_ns)
			break;
		/* Somebody populated the slot between the scan and the lock: scan again. */
	}
	r.slot = i;
	/* The top-level entry is a PGD entry under 5-level, a (folded) P4D entry under 4-level. */
	r.level = pgtable_l5_enabled() ? "pgd" : "p4d";
	r.seq = ++st_seq;

	if (!strcmp(mode, "sync") || !strcmp(mode, "mismatch") || !strcmp(mode, "lossy"))
		st_do_sync(&r);
	if (!strcmp(mode, "mismatch"))
		st_mismatch_current(i, r.addr);
	st_last = r;
	if (late) {
		late->rec = r;
		INIT_DELAYED_WORK(&late->dw, st_late_fn);
		list_add(&late->node, &st_late_list);
		schedule_delayed_work(&late->dw, msecs_to_jiffies(st_delay_ms));
	}
	st_report(&r);
	return 0;
}

/* Called with st_lock held. */
int st_action_lower(void)
{
	struct st_record r = { .mode = "lower" };
	int slot = pgd_index(vmemmap_base);
	pgd_t *pgd = st_mm->pgd + slot;
	/* Second-level entry size: P4D_SIZE (512 GiB) under 5-level, PUD_SIZE (1 GiB) under 4. */
	unsigned long esz = pgtable_l5_enabled() ? P4D_SIZE : PUD_SIZE;
	unsigned long lo, hi, a;
	void *table;

	if (st_tl_none(pgd, vmemmap_base)) {
		pr_err("lower: the top-level entry of vmemmap_base 0x%lx (slot %d) is empty\n",
		       vmemmap_base, slot);
		return -ENOENT;
	}
	/*
	 * Candidate entries: inside this top-level slot and inside the vmemmap region, taken
	 * from the top down: the top of the vmemmap region holds struct pages of physical
	 * addresses far beyond any RAM of the test guests (4-level: PUD entry 511 of
	 * 0xffffea0000000000 = struct pages of ~32 TiB), and it stays clear of vmalloc, which
	 * may share the slot below vmemmap_base under KASLR.
	 */
	lo = max(st_slot_addr(slot), ALIGN(vmemmap_base, esz));
	hi = min(st_slot_last(slot), st_end(vmemmap_base, st_vmemmap_size()));
	table = (void *)get_zeroed_page(GFP_KERNEL);
	if (!table)
		return -ENOMEM;
	for (a = ALIGN_DOWN(hi + 1 - esz, esz); a >= lo && a <= hi; a -= esz) {
		r.ts_ns = st_populate_lower(pgd, a, table);
		if (r.ts_ns)
			break;
	}
	if (!r.ts_ns) {
		free_page((unsigned long)table);	/* never linked */
		return -ENOSPC;
	}
	r.addr = a;
	r.slot = slot;
	/* The populated entry: a P4D entry under 5-level, a PUD entry under 4-level. */
	r.level = pgtable_l5_enabled() ? "p4d" : "pud";
	r.seq = ++st_seq;
	st_last = r;
	st_report(&r);
	return 0;
}

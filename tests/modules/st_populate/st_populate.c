// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - sync-trace test module (x86_64 only).
 *
 * Creates synthetic kernel page-table populations in init_mm so that sync-trace can be
 * tested without memory hot-add:
 *
 *   echo sync  > /sys/kernel/debug/st_populate/trigger   populate a free top-level slot,
 *                                                        then arch_sync_kernel_mappings(a, a)
 *   echo late  > .../trigger    populate now, sync from a delayed work after delay_ms
 *   echo never > .../trigger    populate, never sync (what sync-trace must flag)
 *   echo lower > .../trigger    populate a second-level entry inside an existing top-level
 *                               entry, no sync (needs none; must never be flagged)
 *   cat .../last                the last action (key=value line, also pr_info'ed)
 *   cat .../slots               present kernel top-level slots of init_mm and of the reader
 *
 * init_mm and arch_sync_kernel_mappings are not exported to modules: their addresses come
 * from /proc/kallsyms as the module parameters init_mm_addr and sync_addr.
 *
 * Populated tables are never freed (every PGD on pgd_list may hold a copy of a top-level
 * entry, and the kernel never clears kernel top-level entries either). Unloading the module
 * is allowed: it runs pending "late" syncs at once and leaks the tables; the entries stay in
 * init_mm, so a reloaded module picks new slots.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <asm/cpufeature.h>
#include <asm/pgalloc.h>
#include <asm/pgtable.h>

#ifndef CONFIG_X86_64
#error "st_populate is x86_64 only"
#endif

static unsigned long init_mm_addr;
module_param(init_mm_addr, ulong, 0444);
MODULE_PARM_DESC(init_mm_addr, "address of init_mm: grep ' init_mm$' /proc/kallsyms");

static unsigned long sync_addr;
module_param(sync_addr, ulong, 0444);
MODULE_PARM_DESC(sync_addr,
		 "address of arch_sync_kernel_mappings: grep ' arch_sync_kernel_mappings$' /proc/kallsyms");

static unsigned int delay_ms = 300;
module_param(delay_ms, uint, 0644);
MODULE_PARM_DESC(delay_ms, "delay of the sync for mode 'late', in ms (default 300)");

/* init_mm, from init_mm_addr: not exported, so &init_mm cannot be used in a module. */
static struct mm_struct *st_mm;
/* void arch_sync_kernel_mappings(unsigned long start, unsigned long end), arch/x86/mm/init_64.c. */
static void (*st_sync)(unsigned long start, unsigned long end);

static struct dentry *st_dir;

/* Serialises actions, and protects st_last and st_late_list. */
static DEFINE_MUTEX(st_lock);

struct st_record {
	const char *mode;	/* sync, late, never, lower, none */
	const char *level;	/* pgd, p4d, pud, none */
	int slot;		/* top-level index */
	unsigned long addr;	/* start of the populated slot / entry */
	u64 ts_ns;		/* ktime_get_ns() right after the entry was written */
	u64 sync_ts_ns;		/* ktime_get_ns() right after the sync returned, or 0 */
	u64 seq;		/* action number, to match late syncs to st_last */
};

static struct st_record st_last = { .mode = "none", .level = "none", .slot = -1 };
static u64 st_seq;

struct st_late {
	struct list_head node;
	struct delayed_work dw;
	struct st_record rec;
};
static LIST_HEAD(st_late_list);

static int st_format(const struct st_record *r, char *buf, size_t len)
{
	return scnprintf(buf, len,
			 "mode=%s level=%s slot=%d addr=0x%lx ts_ns=%llu sync_ts_ns=%llu\n",
			 r->mode, r->level, r->slot, r->addr, r->ts_ns, r->sync_ts_ns);
}

static void st_report(const struct st_record *r)
{
	char buf[160];

	st_format(r, buf, sizeof(buf));
	pr_info("%s", buf);
}

/* ---------------------------------------------------------------------------------------
 * Layout helpers
 */

/*
 * Start address of top-level slot @i. The top level always has 512 entries (PTRS_PER_PGD);
 * PGDIR_SHIFT is the runtime variable pgdir_shift: 39 under 4-level paging (one slot =
 * 512 GiB), 48 under 5-level paging (one slot = 256 TiB). Slots 256..511 are the kernel half:
 * sign-extend from bit PGDIR_SHIFT + 8 (47 or 56) to get a canonical address.
 */
static unsigned long st_slot_addr(unsigned int i)
{
	unsigned long a = (unsigned long)i << PGDIR_SHIFT;

	if (i >= PTRS_PER_PGD / 2)
		a |= ~0UL << (PGDIR_SHIFT + 9);
	return a;
}

static unsigned long st_slot_last(unsigned int i)
{
	return st_slot_addr(i) + (PGDIR_SIZE - 1);
}

/* Inclusive ranges [a0, a1] and [b0, b1] intersect. */
static bool st_overlap(unsigned long a0, unsigned long a1, unsigned long b0, unsigned long b1)
{
	return a0 <= b1 && b0 <= a1;
}

/* Last byte of [start, start + size), saturating at the top of the address space. */
static unsigned long st_end(unsigned long start, unsigned long size)
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
static unsigned long st_vmemmap_size(void)
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
static bool st_tl_none(pgd_t *pgd, unsigned long addr)
{
	if (pgtable_l5_enabled())
		return pgd_none(*pgd);
	return p4d_none(*p4d_offset(pgd, addr));
}

/* Present bit of a raw top-level entry, valid in both modes (no folding involved). */
static bool st_tl_present(pgd_t e)
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
static int st_find_free_slot(void)
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
static int st_action_top(const char *mode)
{
	struct st_record r = { .mode = mode };
	struct st_late *late = NULL;
	void *table;
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
		r.ts_ns = st_populate_top(i, r.addr, table);
		if (r.ts_ns)
			break;
		/* Somebody populated the slot between the scan and the lock: scan again. */
	}
	r.slot = i;
	/* The top-level entry is a PGD entry under 5-level, a (folded) P4D entry under 4-level. */
	r.level = pgtable_l5_enabled() ? "pgd" : "p4d";
	r.seq = ++st_seq;

	if (!strcmp(mode, "sync") || !strcmp(mode, "mismatch"))
		st_do_sync(&r);
	if (!strcmp(mode, "mismatch"))
		st_mismatch_current(i, r.addr);
	st_last = r;
	if (late) {
		late->rec = r;
		INIT_DELAYED_WORK(&late->dw, st_late_fn);
		list_add(&late->node, &st_late_list);
		schedule_delayed_work(&late->dw, msecs_to_jiffies(delay_ms));
	}
	st_report(&r);
	return 0;
}

/* Called with st_lock held. */
static int st_action_lower(void)
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

/* ---------------------------------------------------------------------------------------
 * debugfs
 */

static ssize_t st_trigger_write(struct file *f, const char __user *ubuf, size_t len,
				loff_t *ppos)
{
	char buf[16];
	char *cmd;
	int ret;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	cmd = strim(buf);

	mutex_lock(&st_lock);
	if (!strcmp(cmd, "sync") || !strcmp(cmd, "late") || !strcmp(cmd, "never") ||
	    !strcmp(cmd, "mismatch"))
		ret = st_action_top(!strcmp(cmd, "sync")       ? "sync" :
				    !strcmp(cmd, "late")       ? "late" :
				    !strcmp(cmd, "mismatch")   ? "mismatch" : "never");
	else if (!strcmp(cmd, "lower"))
		ret = st_action_lower();
	else
		ret = -EINVAL;
	mutex_unlock(&st_lock);
	return ret ? ret : len;
}

static const struct file_operations st_trigger_fops = {
	.owner = THIS_MODULE,
	.write = st_trigger_write,
	.llseek = noop_llseek,
};

static ssize_t st_last_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[160];
	int n;

	mutex_lock(&st_lock);
	n = st_format(&st_last, buf, sizeof(buf));
	mutex_unlock(&st_lock);
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations st_last_fops = {
	.owner = THIS_MODULE,
	.read = st_last_read,
	.llseek = default_llseek,
};

static void st_show_slots(struct seq_file *m, const char *name, pgd_t *pgd)
{
	int i, n = 0;

	seq_printf(m, "%s: ", name);
	if (pgd) {
		for (i = pgd_index(PAGE_OFFSET); i < PTRS_PER_PGD; i++) {
			if (st_tl_present(READ_ONCE(pgd[i])))
				seq_printf(m, n++ ? ",%d" : "%d", i);
		}
	}
	seq_putc(m, '\n');
}

/*
 * "init_mm: <present slots>" and "current: <present slots>" for slots pgd_index(PAGE_OFFSET)
 * (KERNEL_PGD_BOUNDARY) .. 511. "current" is the reading task's own PGD (its mm, or the
 * borrowed active_mm of a kernel thread). Note: a process created after a populate inherits
 * the entry from init_mm at pgd_alloc() (pgd_ctor clones the kernel half), so a missing sync
 * is only visible in a process that existed before the populate (e.g. a shell's builtin
 * `read`, not a freshly forked `cat`).
 */
static int st_slots_show(struct seq_file *m, void *v)
{
	struct mm_struct *mm = current->mm ? current->mm : current->active_mm;

	st_show_slots(m, "init_mm", st_mm->pgd);
	/* The kernel PGD (first 4 KiB); under PTI the user copy is the next page. */
	st_show_slots(m, "current", mm ? mm->pgd : NULL);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(st_slots);

/* ---------------------------------------------------------------------------------------
 * init / exit
 */

/* Checks that @addr is the kallsyms address of @want (KALLSYMS_ALL covers data symbols). */
static bool st_symbol_is(unsigned long addr, const char *want)
{
	char name[64];	/* enough for the two names compared; longer ones get cut */

	snprintf(name, sizeof(name), "%ps", (void *)addr);
	return !strcmp(name, want);
}

static int __init st_init(void)
{
	if (!init_mm_addr || !st_symbol_is(init_mm_addr, "init_mm")) {
		pr_err("init_mm_addr=0x%lx is missing or not init_mm: pass init_mm_addr=0x$(grep ' init_mm$' /proc/kallsyms | cut -d' ' -f1)\n",
		       init_mm_addr);
		return -EINVAL;
	}
	if (!sync_addr || !st_symbol_is(sync_addr, "arch_sync_kernel_mappings")) {
		pr_err("sync_addr=0x%lx is missing or not arch_sync_kernel_mappings: pass sync_addr=0x$(grep ' arch_sync_kernel_mappings$' /proc/kallsyms | cut -d' ' -f1)\n",
		       sync_addr);
		return -EINVAL;
	}
#ifdef CONFIG_X86_KERNEL_IBT
	/*
	 * With IBT enforced, an indirect call must land on ENDBR64. objtool "seals" (overwrites
	 * with a NOP) the ENDBR of functions whose address is never taken; calling such a
	 * function through a pointer would raise #CP. Refuse rather than oops.
	 */
	if (cpu_feature_enabled(X86_FEATURE_IBT) &&
	    *(u32 *)sync_addr != 0xfa1e0ff3 /* endbr64: f3 0f 1e fa */) {
		pr_err("sync_addr: IBT is enforced and arch_sync_kernel_mappings has no ENDBR64: cannot call it indirectly\n");
		return -EOPNOTSUPP;
	}
#endif
	st_mm = (struct mm_struct *)init_mm_addr;
	st_sync = (void *)sync_addr;
	if (!st_mm->pgd) {
		pr_err("init_mm_addr: init_mm.pgd is NULL\n");
		return -EINVAL;
	}

	st_dir = debugfs_create_dir("st_populate", NULL);
	if (IS_ERR_OR_NULL(st_dir)) {
		pr_err("cannot create /sys/kernel/debug/st_populate (is debugfs enabled?)\n");
		return -ENODEV;
	}
	debugfs_create_file("trigger", 0200, st_dir, NULL, &st_trigger_fops);
	debugfs_create_file("last", 0444, st_dir, NULL, &st_last_fops);
	debugfs_create_file("slots", 0444, st_dir, NULL, &st_slots_fops);

	pr_info("loaded: %d-level paging, init_mm.pgd=%px, PGDIR_SHIFT=%d, kernel slots %lu..%d, cpu_entry_area slot %lu, page_offset_base=0x%lx vmalloc_base=0x%lx VMALLOC_END=0x%lx vmemmap_base=0x%lx, first free slot %d\n",
		pgtable_l5_enabled() ? 5 : 4, st_mm->pgd, PGDIR_SHIFT, pgd_index(PAGE_OFFSET),
		PTRS_PER_PGD - 1, pgd_index(CPU_ENTRY_AREA_BASE), page_offset_base, vmalloc_base,
		VMALLOC_END, vmemmap_base, st_find_free_slot());
	return 0;
}

static void __exit st_exit(void)
{
	struct st_late *l, *tmp;

	debugfs_remove_recursive(st_dir);	/* no new actions after this */
	/* Run pending late syncs now rather than leave their entries unsynced. */
	list_for_each_entry_safe(l, tmp, &st_late_list, node) {
		flush_delayed_work(&l->dw);
		list_del(&l->node);
		kfree(l);
	}
	/* Populated page-table pages are leaked on purpose: see the top of the file. */
	pr_info("unloaded; populated tables stay in init_mm\n");
}

module_init(st_init);
module_exit(st_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sync-trace test: synthetic kernel top-level page-table populations");

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
 *   echo devmap > .../trigger   memremap_pages() of the next 128 MiB from devmap_phys with
 *                               compound pages: the kernel's own device-dax path populates
 *                               and syncs (st_devmap.c)
 *   echo clear > .../trigger    clear init_mm's entry of the last top-level action (as KASAN
 *                               teardown can); the next action writes it back (st_clear.c)
 *   echo lossy > .../trigger    a synced population inside a storm of syncs (st_lossy.c)
 *   cat .../last                the last action (key=value line, also pr_info'ed)
 *   cat .../slots               present kernel top-level slots of init_mm and of the reader
 *
 * With log_online=1 it also logs every memory block the kernel brings online (st_online.c):
 * the end mark of the bench's timed hot-add.
 *
 * init_mm and arch_sync_kernel_mappings are not exported to modules: their addresses come
 * from /proc/kallsyms as the module parameters init_mm_addr and sync_addr.
 *
 * Populated tables are never freed (every PGD on pgd_list may hold a copy of a top-level
 * entry, and the kernel never clears kernel top-level entries either). Unloading the module
 * is allowed: it runs pending "late" syncs at once and leaks the tables; the entries stay in
 * init_mm, so a reloaded module picks new slots. It also memunmap_pages() the devmap ranges.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <asm/cpufeature.h>
#include <asm/pgtable.h>

#include "st_populate.h"

static unsigned long init_mm_addr;
module_param(init_mm_addr, ulong, 0444);
MODULE_PARM_DESC(init_mm_addr, "address of init_mm: grep ' init_mm$' /proc/kallsyms");

static unsigned long sync_addr;
module_param(sync_addr, ulong, 0444);
MODULE_PARM_DESC(sync_addr,
		 "address of arch_sync_kernel_mappings: grep ' arch_sync_kernel_mappings$' /proc/kallsyms");

/* Used by st_action_top() (st_actions.c); the parameter keeps the name delay_ms. */
unsigned int st_delay_ms = 300;
module_param_named(delay_ms, st_delay_ms, uint, 0644);
MODULE_PARM_DESC(delay_ms, "delay of the sync for mode 'late', in ms (default 300)");

/* Used by st_action_devmap() (st_devmap.c); the parameter keeps the name devmap_phys. */
unsigned long st_devmap_phys = 0x200000000000UL;	/* 32 TiB */
module_param_named(devmap_phys, st_devmap_phys, ulong, 0444);
MODULE_PARM_DESC(devmap_phys,
		 "physical address of the first devmap range (default 0x200000000000, 32 TiB); each devmap takes the next 128 MiB");

/* init_mm, from init_mm_addr: not exported, so &init_mm cannot be used in a module. */
struct mm_struct *st_mm;
/* void arch_sync_kernel_mappings(unsigned long start, unsigned long end), arch/x86/mm/init_64.c. */
static void (*st_sync_fn)(unsigned long start, unsigned long end);

/* Syncs this module has called (debugfs "syncs"): what a tracer must account for exactly. */
static atomic_t st_syncs_issued = ATOMIC_INIT(0);

void st_sync(unsigned long start, unsigned long end)
{
	atomic_inc(&st_syncs_issued);
	st_sync_fn(start, end);
}

static struct dentry *st_dir;

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
	else if (!strcmp(cmd, "devmap"))
		ret = st_action_devmap();
	else if (!strcmp(cmd, "clear"))
		ret = st_action_clear();
	else if (!strcmp(cmd, "lossy"))
		ret = st_action_lossy();
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
	char buf[ST_LINE_MAX];
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
	int err;

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
	st_sync_fn = (void *)sync_addr;
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
	debugfs_create_atomic_t("syncs", 0444, st_dir, &st_syncs_issued);
	err = st_online_init();
	if (err) {
		pr_err("cannot register the memory notifier: %d\n", err);
		debugfs_remove_recursive(st_dir);
		return err;
	}

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
	st_devmap_exit();
	st_online_exit();
	/* Populated page-table pages are leaked on purpose: see the top of the file. */
	pr_info("unloaded; populated tables stay in init_mm\n");
}

module_init(st_init);
module_exit(st_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sync-trace test: synthetic kernel top-level page-table populations");

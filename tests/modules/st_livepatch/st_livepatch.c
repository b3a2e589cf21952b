// SPDX-License-Identifier: GPL-2.0
/*
 * st_livepatch - sync-trace test livepatch (x86_64 only).
 *
 * Replaces arch_sync_kernel_mappings(start, end) by st_arch_sync_kernel_mappings(), which does
 * the same work: on x86_64 the original only calls sync_global_pgds(start, end). With the patch
 * enabled, a caller still enters the old function, whose ftrace site (its first instruction) calls
 * klp_ftrace_handler(); the handler sets the saved instruction pointer to the new function
 * (an FTRACE_OPS_FL_IPMODIFY ftrace_ops), so the old body is skipped and the new one runs.
 *
 * sync_global_pgds is not exported to modules: its address comes from /proc/kallsyms as the
 * module parameter sync_global_pgds_addr, checked by name.
 *
 *   insmod st_livepatch.ko \
 *     sync_global_pgds_addr=0x$(grep ' sync_global_pgds$' /proc/kallsyms | cut -d' ' -f1)
 *   cat /sys/kernel/debug/st_livepatch/calls     calls of the new function so far
 *   echo 0 > /sys/kernel/livepatch/st_livepatch/enabled; rmmod st_livepatch
 *
 * Loading the module enables the patch (the transition completes once every task has left the
 * old function; /sys/kernel/livepatch/st_livepatch/transition reads 0 then). The module cannot
 * be removed while the patch is enabled (the livepatch core holds a reference to it).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <asm/cpufeature.h>

static unsigned long sync_global_pgds_addr;
module_param(sync_global_pgds_addr, ulong, 0444);
MODULE_PARM_DESC(sync_global_pgds_addr,
		 "address of sync_global_pgds: grep ' sync_global_pgds$' /proc/kallsyms");

/* void sync_global_pgds(unsigned long start, unsigned long end), arch/x86/mm/init_64.c. */
static void (*st_sync_global_pgds)(unsigned long start, unsigned long end);

/* Calls of the new function (debugfs "calls"): shows the patch is the code that ran. */
static atomic_t st_calls = ATOMIC_INIT(0);
static struct dentry *st_dir;

/* The replacement: the body of x86_64's arch_sync_kernel_mappings(), plus a count. */
static void st_arch_sync_kernel_mappings(unsigned long start, unsigned long end)
{
	atomic_inc(&st_calls);
	st_sync_global_pgds(start, end);
}

/*
 * One function of one object: a NULL object name is vmlinux. sympos 0 (the default) means the
 * name must be unique in kallsyms, which arch_sync_kernel_mappings is.
 */
static struct klp_func st_funcs[] = {
	{
		.old_name = "arch_sync_kernel_mappings",
		.new_func = st_arch_sync_kernel_mappings,
	},
	{}
};

static struct klp_object st_objs[] = {
	{
		.funcs = st_funcs,
	},
	{}
};

static struct klp_patch st_patch = {
	.mod = THIS_MODULE,
	.objs = st_objs,
};

/* Checks that @addr is the kallsyms address of @want, as st_populate does. */
static bool st_symbol_is(unsigned long addr, const char *want)
{
	char name[64];	/* enough for the name compared; longer ones get cut */

	snprintf(name, sizeof(name), "%ps", (void *)addr);
	return !strcmp(name, want);
}

static int __init st_init(void)
{
	int err;

	if (!sync_global_pgds_addr || !st_symbol_is(sync_global_pgds_addr, "sync_global_pgds")) {
		pr_err("sync_global_pgds_addr=0x%lx is missing or not sync_global_pgds: pass sync_global_pgds_addr=0x$(grep ' sync_global_pgds$' /proc/kallsyms | cut -d' ' -f1)\n",
		       sync_global_pgds_addr);
		return -EINVAL;
	}
#ifdef CONFIG_X86_KERNEL_IBT
	/* An indirect call must land on ENDBR64 when IBT is enforced (see st_populate). */
	if (cpu_feature_enabled(X86_FEATURE_IBT) &&
	    *(u32 *)sync_global_pgds_addr != 0xfa1e0ff3 /* endbr64: f3 0f 1e fa */) {
		pr_err("sync_global_pgds_addr: IBT is enforced and sync_global_pgds has no ENDBR64: cannot call it indirectly\n");
		return -EOPNOTSUPP;
	}
#endif
	st_sync_global_pgds = (void *)sync_global_pgds_addr;

	st_dir = debugfs_create_dir("st_livepatch", NULL);
	if (IS_ERR_OR_NULL(st_dir)) {
		pr_err("cannot create /sys/kernel/debug/st_livepatch (is debugfs enabled?)\n");
		return -ENODEV;
	}
	debugfs_create_atomic_t("calls", 0444, st_dir, &st_calls);

	err = klp_enable_patch(&st_patch);
	if (err) {
		pr_err("klp_enable_patch: %d\n", err);
		debugfs_remove_recursive(st_dir);
	}
	return err;
}

/* Runs only once the patch was disabled (and so its new function is no longer called). */
static void __exit st_exit(void)
{
	debugfs_remove_recursive(st_dir);
}

module_init(st_init);
module_exit(st_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sync-trace test: livepatch of arch_sync_kernel_mappings");
/* Marks the module as a livepatch (the kernel then allows klp_enable_patch() from it). */
MODULE_INFO(livepatch, "Y");

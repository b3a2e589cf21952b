// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - the end mark of a timed hot-add: a memory notifier that logs, while the
 * parameter log_online is 1, every block the kernel brings online ("st_populate: online
 * pfn=0x... pages=N"), once its pages are in the buddy allocator (MEM_ONLINE). Its printk
 * time and that of the kernel's own "init_memory_mapping: [mem ...]" line (a pr_debug,
 * enabled through dynamic debug by the bench) bound the kernel's part of a DIMM hot-add on
 * one clock, without the host, ACPI's notification or the guest's shell in between
 * (xtask/src/bench/bench.sh, step hotadd).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/memory.h>
#include <linux/moduleparam.h>
#include <linux/notifier.h>
#include <linux/printk.h>

#include "st_populate.h"

/* Off by default: other tests online thousands of blocks, each line would reach the console. */
static bool st_log_online;
module_param_named(log_online, st_log_online, bool, 0644);
MODULE_PARM_DESC(log_online, "log every memory block brought online (the bench's hot-add end mark)");

static int st_online_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const struct memory_notify *m = data;

	if (action == MEM_ONLINE && READ_ONCE(st_log_online))
		pr_info("online pfn=0x%lx pages=%lu\n", m->start_pfn, m->nr_pages);
	return NOTIFY_OK;
}

static struct notifier_block st_online_nb = {
	.notifier_call = st_online_notify,
};

int st_online_init(void)
{
	return register_memory_notifier(&st_online_nb);
}

void st_online_exit(void)
{
	unregister_memory_notifier(&st_online_nb);
}

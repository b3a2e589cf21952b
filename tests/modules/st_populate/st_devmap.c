// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - the devmap action: memremap_pages() of a MEMORY_DEVICE_GENERIC range with
 * PMD-sized compound pages (vmemmap_shift 9), the path of device-dax. The kernel maps the
 * range in the direct map (arch_add_memory → init_memory_mapping) and fills its struct pages
 * through vmemmap_populate_compound_pages(), whose only top-level sync is the one inside
 * p4d_populate_kernel()/pgd_populate_kernel() (mm: introduce and use
 * {pgd,p4d}_populate_kernel()). Nothing of this module's own writes page tables here.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <asm/pgtable.h>

#include "st_populate.h"

#ifndef CONFIG_ZONE_DEVICE
#error "st_populate's devmap action needs CONFIG_ZONE_DEVICE (memremap_pages)"
#endif

/* One devmap range: one memory section, the unit of memory hotplug on x86_64. */
#define ST_DEVMAP_SIZE (128UL << 20)
/* PMD-sized compound pages (2 MiB of 4 KiB pages), what device-dax uses with align=2M. */
#define ST_DEVMAP_SHIFT 9

struct st_devmap {
	struct list_head node;
	struct dev_pagemap pgmap;	/* last: its range array is a flexible one */
};

/* Mapped ranges, newest first; unmapped at rmmod. Protected by st_lock. */
static LIST_HEAD(st_devmaps);
static unsigned long st_devmap_next;

static struct st_devmap_record st_devmap_last;

/* Whether the top-level entry of @addr is present in init_mm. */
static bool st_devmap_present(unsigned long addr)
{
	return !st_tl_none(st_mm->pgd + pgd_index(addr), addr);
}

/*
 * The RCU grace period memory hotplug waits for at its start: mem_hotplug_begin() takes
 * mem_hotplug_lock for writing (percpu_down_write()), whose rcu_sync_enter() is a full
 * synchronize_rcu() when the lock's rcu_sync is idle, as it is a second after the last
 * hotplug operation. How long that takes is RCU's own pace (the grace-period kthread's scans
 * for quiescent states, a jiffy or more apart), before memremap_pages() has done anything:
 * under emulation it is 8-30 ms of a 15-25 ms call, in steps of a few jiffies. A kretprobe
 * on rcu_sync_enter() times it for the action's task only, registered around the call.
 */
static struct task_struct *st_gp_task;
static u64 st_gp_ns;

static int st_gp_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	if (current != READ_ONCE(st_gp_task))
		return 1;	/* not the action's: no return handler */
	*(u64 *)ri->data = ktime_get_ns();
	return 0;
}

static int st_gp_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	st_gp_ns += ktime_get_ns() - *(u64 *)ri->data;
	return 0;
}

int st_devmap_format(char *buf, size_t len)
{
	const struct st_devmap_record *r = &st_devmap_last;

	return scnprintf(buf, len,
			 "mode=devmap phys=0x%llx size=0x%lx vmemmap=0x%lx vmemmap_slot=%lu vmemmap_was=%d vmemmap_now=%d direct=0x%lx direct_slot=%lu direct_was=%d direct_now=%d start_ns=%llu end_ns=%llu gp_ns=%lld\n",
			 r->phys, ST_DEVMAP_SIZE, r->vmemmap_va, pgd_index(r->vmemmap_va),
			 r->vmemmap_was, r->vmemmap_now, r->direct_va, pgd_index(r->direct_va),
			 r->direct_was, r->direct_now, r->start_ns, r->end_ns, r->gp_ns);
}

/* Called with st_lock held. */
int st_action_devmap(void)
{
	struct st_devmap_record r = { 0 };
	/* Registered for this call only (a fresh one: st_lock serialises the actions). */
	struct kretprobe gp_probe = {
		.kp.symbol_name = "rcu_sync_enter",
		.entry_handler = st_gp_entry,
		.handler = st_gp_return,
		.data_size = sizeof(u64),
		.maxactive = 4,
	};
	struct st_devmap *d;
	char buf[ST_LINE_MAX];
	void *va;

	if (!st_devmap_next)
		st_devmap_next = st_devmap_phys;
	if (!IS_ALIGNED(st_devmap_next, ST_DEVMAP_SIZE)) {
		pr_err("devmap: devmap_phys=0x%lx is not a multiple of 128 MiB\n", st_devmap_next);
		return -EINVAL;
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	/*
	 * MEMORY_DEVICE_GENERIC needs neither ops nor owner (those are for DEVICE_PRIVATE and
	 * DEVICE_COHERENT pages, which the core mm hands back to their driver). vmemmap_shift
	 * exists in struct dev_pagemap since 5.17 (6.1, 6.12 and newer all have it); with it and
	 * no altmap, __populate_section_memmap() takes vmemmap_populate_compound_pages().
	 */
	d->pgmap.type = MEMORY_DEVICE_GENERIC;
	d->pgmap.vmemmap_shift = ST_DEVMAP_SHIFT;
	d->pgmap.range.start = st_devmap_next;
	d->pgmap.range.end = st_devmap_next + ST_DEVMAP_SIZE - 1;
	d->pgmap.nr_range = 1;

	r.phys = st_devmap_next;
	r.vmemmap_va = (unsigned long)pfn_to_page(PHYS_PFN(r.phys));
	r.direct_va = (unsigned long)__va(r.phys);
	r.vmemmap_was = st_devmap_present(r.vmemmap_va);
	r.direct_was = st_devmap_present(r.direct_va);
	st_gp_ns = 0;
	r.gp_ns = register_kretprobe(&gp_probe) ? -1 : 0;
	WRITE_ONCE(st_gp_task, current);
	r.start_ns = ktime_get_ns();
	va = memremap_pages(&d->pgmap, NUMA_NO_NODE);
	r.end_ns = ktime_get_ns();
	WRITE_ONCE(st_gp_task, NULL);
	if (!r.gp_ns) {
		unregister_kretprobe(&gp_probe);
		r.gp_ns = st_gp_ns;
	}
	if (IS_ERR(va)) {
		pr_err("devmap: memremap_pages(0x%llx, 128 MiB) failed: %ld\n", r.phys, PTR_ERR(va));
		kfree(d);
		return PTR_ERR(va);
	}
	r.vmemmap_now = st_devmap_present(r.vmemmap_va);
	r.direct_now = st_devmap_present(r.direct_va);
	list_add(&d->node, &st_devmaps);
	st_devmap_next += ST_DEVMAP_SIZE;
	st_devmap_last = r;
	/* `last` shows st_devmap_last while st_last.mode is "devmap". */
	st_last = (struct st_record){ .mode = "devmap", .level = "none", .slot = -1 };
	st_format(&st_last, buf, sizeof(buf));
	pr_info("%s", buf);
	return 0;
}

/*
 * rmmod: memunmap_pages() every range, newest first. That removes their struct pages and
 * direct mapping (arch_remove_memory); under 4-level paging x86 never frees the PUD page
 * below a top-level entry (remove_p4d_table()), so the top-level entries stay in init_mm and
 * in every PGD. A reloaded module starts again at devmap_phys.
 */
void st_devmap_exit(void)
{
	struct st_devmap *d, *tmp;

	list_for_each_entry_safe(d, tmp, &st_devmaps, node) {
		memunmap_pages(&d->pgmap);
		list_del(&d->node);
		kfree(d);
	}
}

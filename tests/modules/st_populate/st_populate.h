/* SPDX-License-Identifier: GPL-2.0 */
/*
 * st_populate - sync-trace test module (x86_64 only): what st_main.c (parameters, debugfs,
 * init/exit), st_layout.c (slot arithmetic, free slots) and st_actions.c (the populates, the
 * syncs, the actions) share. The module itself is described at the top of st_main.c.
 */
#ifndef ST_POPULATE_H
#define ST_POPULATE_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/workqueue.h>
#include <asm/pgtable.h>

#ifndef CONFIG_X86_64
#error "st_populate is x86_64 only"
#endif

struct mm_struct;

struct st_record {
	const char *mode;	/* sync, late, never, mismatch, lossy, lower, clear, none */
	const char *level;	/* pgd, p4d, pud, none */
	int slot;		/* top-level index */
	unsigned long addr;	/* start of the populated slot / entry */
	u64 ts_ns;		/* ktime_get_ns() right after the entry was written */
	u64 sync_ts_ns;		/* ktime_get_ns() right after the sync returned, or 0 */
	u64 seq;		/* action number, to match late syncs to st_last */
};

/* What the devmap action saw: `last` prints it while st_last.mode is "devmap". */
struct st_devmap_record {
	u64 phys;		/* start of the 128 MiB range given to memremap_pages() */
	unsigned long vmemmap_va;	/* struct page of phys: pfn_to_page() */
	unsigned long direct_va;	/* __va(phys) */
	int vmemmap_was, vmemmap_now;	/* top-level entry of vmemmap present before/after */
	int direct_was, direct_now;	/* same for the direct map */
	u64 start_ns, end_ns;	/* ktime_get_ns() right before and after memremap_pages() */
	s64 gp_ns;		/* of those, waited in rcu_sync_enter(); -1: not measured */
};

/* Longest line of the debugfs file "last" (st_format), with its newline. */
#define ST_LINE_MAX 320

struct st_late {
	struct list_head node;
	struct delayed_work dw;
	struct st_record rec;
};

/* st_main.c: the module parameter delay_ms, and the kernel objects from the parameters. */
extern unsigned int st_delay_ms;
extern struct mm_struct *st_mm;
/* arch_sync_kernel_mappings(start, end) through sync_addr, counted in the debugfs file "syncs". */
void st_sync(unsigned long start, unsigned long end);
extern unsigned long st_devmap_phys;

/* st_layout.c */
unsigned long st_slot_addr(unsigned int i);
unsigned long st_slot_last(unsigned int i);
unsigned long st_end(unsigned long start, unsigned long size);
unsigned long st_vmemmap_size(void);
bool st_tl_none(pgd_t *pgd, unsigned long addr);
bool st_tl_present(pgd_t e);
int st_find_free_slot(void);

/* st_actions.c */
extern struct mutex st_lock;
extern struct st_record st_last;
extern struct list_head st_late_list;
int st_format(const struct st_record *r, char *buf, size_t len);
int st_action_top(const char *mode);
int st_action_lower(void);
void st_report(const struct st_record *r);

/* st_clear.c */
int st_action_clear(void);
void *st_reuse_table(int slot);

/* st_lossy.c */
int st_action_lossy(void);

/* st_devmap.c */
int st_action_devmap(void);
int st_devmap_format(char *buf, size_t len);
void st_devmap_exit(void);

/* st_online.c: logs each block brought online (the end mark of a timed hot-add) */
int st_online_init(void);
void st_online_exit(void);

#endif /* ST_POPULATE_H */

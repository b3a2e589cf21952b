// SPDX-License-Identifier: GPL-2.0
/*
 * st_populate - "lossy": a synced top-level population in the middle of a storm of syncs, so
 * that a tracer with a small ring buffer loses records around it. Each storm call is
 * arch_sync_kernel_mappings(PAGE_OFFSET, PAGE_OFFSET + PAGE_SIZE): a range (not the helper
 * shape) over the first direct-map slot, which every PGD already carries, so it changes
 * nothing and only walks pgd_list. sync-trace must call the population's verdict `uncertain`.
 */
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <asm/pgtable.h>

#include "st_populate.h"

/* Syncs before and after the population; 4096 overflow a one-page ring many times over. */
static unsigned int st_storm = 4096;
module_param_named(storm, st_storm, uint, 0644);
MODULE_PARM_DESC(storm, "syncs before and after the population of mode 'lossy' (default 4096)");

static void st_sync_storm(void)
{
	unsigned int n;

	for (n = 0; n < st_storm; n++)
		st_sync(PAGE_OFFSET, PAGE_OFFSET + PAGE_SIZE);
}

/* Called with st_lock held. */
int st_action_lossy(void)
{
	int ret;

	st_sync_storm();
	ret = st_action_top("lossy");
	st_sync_storm();
	return ret;
}

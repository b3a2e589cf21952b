/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The context of ksym_lookup.bpf.c's program: names in, addresses out.
 * Its Rust twin is sync-trace's kernel/ksym_lookup.rs (`Request`).
 */
#ifndef ST_KSYM_LOOKUP_H
#define ST_KSYM_LOOKUP_H

#include <linux/types.h>

/* Bytes of a name with its NUL padding: the longest name looked up
 * (`kasan_early_shadow_page`, `arch_sync_kernel_mappings`: 25) fits. */
#define ST_KSYM_NAME 48
/* Names per run: the data symbols and the targets (13 today). */
#define ST_KSYM_MAX 16

struct st_ksym_req {
	/* NUL-padded; an empty name ends the list. Copied as words: a byte
	 * array alone would be copied byte by byte. */
	union {
		char name[ST_KSYM_NAME];
		__u64 words[ST_KSYM_NAME / 8];
	};
	__u64 addr;              /* out: the address, 0 when not found */
	__s64 err;               /* out: 0, -ENOENT (no such symbol), -EPERM (addresses hidden) */
};

struct st_ksym_args {
	struct st_ksym_req req[ST_KSYM_MAX];
};

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The walk's counts per slot (pgtable_scan.bpf.c): zeroed, and counted for
 * one PGD's kernel half. Both run under bpf_loop rather than as loops over
 * the 256 slots: the verifier goes through a plain loop's body once per slot
 * and path, and the daemon waits for the scan program's verification at
 * start (docs/performance.md, "Startup breakdown").
 *
 * Included by pgtable_scan.bpf.c after SCAN, ST_PGD_SCRATCH and struct
 * st_walk.
 */
#ifndef ST_SCAN_COUNTS_H
#define ST_SCAN_COUNTS_H

/* One slot's counts of the walk zeroed (a bpf_loop callback). */
static int st_zero_one(__u32 idx, void *unused)
{
	__u32 key = ST_SCAN_KEY_WALK;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &key);
	if (!s || idx >= ST_HALF)
		return 1;
	/* An opaque copy, masked: the verifier must see the bound on this very register. */
	__u32 i = idx;
	asm volatile("" : "+r"(i));
	i &= ST_HALF - 1;
	s->missing[i] = 0;
	s->mismatch[i] = 0;
	return 0;
}

/*
 * Zeroes the walk's counts. bpf_loop: the verifier checks the body once per
 * call site, where a loop of 256 slots, inlined at every restart of
 * st_walk_one, was gone through slot by slot at each (about 4,000
 * instructions of the verification the daemon waits for at start).
 */
static __always_inline void st_zero_counts(struct st_scan *s)
{
	bpf_loop(ST_HALF, st_zero_one, NULL, 0);
	s->pgds = 0;
}

static __always_inline void st_count(struct st_scan *s, const struct st_walk *w, __u32 idx, __u64 tgt)
{
	__u64 ref = s->top[ST_KERNEL_HALF + idx];
	if (!(ref & ST_PAGE_PRESENT))
		return;
	if (!(tgt & ST_PAGE_PRESENT))
		s->missing[idx] += 1;
	else if ((ref ^ tgt) & w->mask)
		s->mismatch[idx] += 1;
}

/*
 * The slots of a PGD's kernel half in chunks of ST_CHUNK, one bpf_loop
 * iteration each: a plain loop over up to 256 slots made the verifier go
 * through its body once per slot and path (about 50,000 instructions, most of
 * the program's verification, which the daemon waits for at start); a chunk
 * is verified once, and costs one callback per ST_CHUNK slots at run time.
 */
#define ST_CHUNK 8

struct st_chunks {
	const struct st_walk *w;
	__u32 n; /* slots in the list */
};

static int st_count_chunk(__u32 chunk, struct st_chunks *c)
{
	__u32 key = ST_SCAN_KEY_WALK, zero = 0;
	struct st_scan *s = bpf_map_lookup_elem(&SCAN, &key);
	struct st_half *h = bpf_map_lookup_elem(&ST_PGD_SCRATCH, &zero);
	if (!s || !h || chunk >= ST_HALF / ST_CHUNK)
		return 1;
	__u32 n = c->n;
	for (__u32 j = 0; j < ST_CHUNK; j++) {
		__u32 k = chunk * ST_CHUNK + j;
		if (k >= n)
			return 1;
		__u32 idx = s->list[k & (ST_HALF - 1)] & (ST_HALF - 1);
		st_count(s, c->w, idx, h->e[idx]);
	}
	return 0;
}

#endif /* ST_SCAN_COUNTS_H */

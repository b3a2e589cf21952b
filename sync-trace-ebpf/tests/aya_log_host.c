// SPDX-License-Identifier: GPL-2.0-only
/*
 * src/bpf/aya_log.h built for the host, for tests/aya_log_record.rs: libbpf's
 * helpers are replaced by stubs, so st_log() runs its real code and the
 * records it hands to bpf_ringbuf_output() are written to stdout as
 *   u32 size, u32 line of the st_log() call, u32 st_log()'s return, size bytes.
 * A failed lookup or output is written with size 0.
 *
 * main() writes every diagnostic sync_trace.bpf.c writes, through the same
 * aya_log.h macros, plus the levels the programs do not use yet.
 */
#include <stdio.h>
#include <string.h>
#include <linux/bpf.h>

/* In place of <bpf/bpf_helpers.h>, which aya_log.h then skips. */
#define __BPF_HELPERS__
#define SEC(name)
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

static int fail_lookup, fail_output;
static unsigned int cur_line;
static unsigned char scratch[4096] __attribute__((aligned(8)));

static void put_u32(unsigned int v)
{
	fwrite(&v, sizeof(v), 1, stdout);
}

static void *bpf_map_lookup_elem(void *map, const void *key)
{
	(void)map;
	(void)key;
	return fail_lookup ? NULL : scratch;
}

static unsigned int pending_size;
static const void *pending;

static long bpf_ringbuf_output(void *ringbuf, void *data, __u64 size, __u64 flags)
{
	(void)ringbuf;
	(void)flags;
	if (fail_output)
		return -11; /* -EAGAIN: ring full */
	pending = data;
	pending_size = (unsigned int)size;
	return 0;
}

#include "aya_log.h"

static void emit(int ret)
{
	put_u32(pending_size);
	put_u32(cur_line);
	put_u32((unsigned int)ret);
	if (pending_size)
		fwrite(pending, 1, pending_size, stdout);
	pending_size = 0;
}

/* Keep each call on one line: __LINE__ there is the record's Line field. */
#define RECORD(call) (cur_line = __LINE__, emit(call))

int main(void)
{
	__u8 target = 3;
	long err = -14;
	__u64 start = 0xffffea8000000000ULL;

	/* Every diagnostic of sync_trace.bpf.c (the macros it calls). */
	RECORD(st_log_inflight_full(target));
	RECORD(st_log_stack_failed(err));
	RECORD(st_log_forced(start));
	/* The other levels aya_log.h defines. */
	RECORD(st_log(ST_LOG_ERROR, "error level ", ST_LOG_H_DEFAULT, ST_LOG_A_I64, -1));
	RECORD(st_log(ST_LOG_INFO, "info level ", ST_LOG_H_LOWER_HEX, ST_LOG_A_U64, 0));
	/* No scratch buffer, then a full ring: st_log() says so, writes nothing. */
	fail_lookup = 1;
	RECORD(st_log_inflight_full(target));
	fail_lookup = 0;
	fail_output = 1;
	RECORD(st_log_inflight_full(target));
	return fflush(stdout) != 0;
}

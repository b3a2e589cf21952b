// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel symbols by name, looked up in the kernel: a BPF_PROG_TYPE_SYSCALL
 * program (sleepable, no attach point) that the daemon runs once with
 * BPF_PROG_TEST_RUN, the context holding the names (ksym_lookup.h).
 *
 * bpf_kallsyms_lookup_name() (Linux 5.16) is kallsyms_lookup_name(): a
 * binary search over the names since Linux 6.2, a scan before. Reading
 * /proc/kallsyms instead makes the kernel format every symbol (155,000
 * lines on 6.12), the longest wait of the daemon's start; the addresses the
 * programs need before they load are a dozen. The helper refuses (-EPERM)
 * exactly when /proc/kallsyms would show this reader zero addresses.
 *
 * The loop is unrolled: a syscall program reads its context at constant
 * offsets only, and the helper wants the name on the stack.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "ksym_lookup.h"

char LICENSE[] SEC("license") = "GPL";

SEC("syscall")
int st_ksym_lookup(struct st_ksym_args *args)
{
#pragma unroll
	for (int i = 0; i < ST_KSYM_MAX; i++) {
		__u64 name[ST_KSYM_NAME / 8];
		__u64 addr = 0;

		if (!args->req[i].words[0])
			break;
#pragma unroll
		for (int w = 0; w < ST_KSYM_NAME / 8; w++)
			name[w] = args->req[i].words[w];
		args->req[i].err = bpf_kallsyms_lookup_name((const char *)name, sizeof(name), 0, &addr);
		args->req[i].addr = addr;
	}
	return 0;
}

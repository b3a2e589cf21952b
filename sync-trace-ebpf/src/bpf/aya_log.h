/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kernel-side diagnostics in aya-log's record format, so that the daemon's
 * aya_log::EbpfLogger prints them through the `log` crate like any other
 * message. Written for aya-log 0.3.0 / aya-log-common 0.2.0 (pinned in the
 * workspace Cargo.toml); the test `aya_log_record` in sync-trace checks these
 * bytes against aya-log-common's own encoder.
 *
 * One record in the AYA_LOGS ring buffer:
 *   u16 total size (including these two bytes), then fields;
 *   every field is  u8 kind, u16 len (native endian), len bytes.
 * Header fields, in order: Target=0 (str), Level=1 (u8), Module=2 (str),
 * File=3 (str), Line=4 (u32), NumArgs=5 (u32). Then NumArgs argument fields:
 * a DisplayHint (kind 0, one byte) applies to the next value; values carry
 * their ArgumentKind (I64=4, U64=9, Str=20). The message is the concatenation
 * of the formatted values, so literal text travels as a Str argument.
 */
#ifndef SYNC_TRACE_AYA_LOG_H
#define SYNC_TRACE_AYA_LOG_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* aya_log_common::Level */
#define ST_LOG_ERROR 1
#define ST_LOG_WARN 2
#define ST_LOG_INFO 3

/* aya_log_common::RecordFieldKind */
#define ST_LOG_F_TARGET 0
#define ST_LOG_F_LEVEL 1
#define ST_LOG_F_MODULE 2
#define ST_LOG_F_FILE 3
#define ST_LOG_F_LINE 4
#define ST_LOG_F_NUM_ARGS 5

/* aya_log_common::ArgumentKind (implicit discriminants, counted) */
#define ST_LOG_A_DISPLAY_HINT 0
#define ST_LOG_A_I64 4
#define ST_LOG_A_U64 9
#define ST_LOG_A_STR 20

/* aya_log_common::DisplayHint */
#define ST_LOG_H_DEFAULT 1
#define ST_LOG_H_LOWER_HEX 2

#define ST_LOG_TARGET "sync_trace_ebpf"
#define ST_LOG_FILE "sync_trace.bpf.c"
#define ST_LOG_BUF_SIZE 256

struct st_log_buf {
	__u8 b[ST_LOG_BUF_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} AYA_LOGS SEC(".maps");

/* A record is built in per-CPU scratch memory, then copied into AYA_LOGS. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_log_buf);
} ST_LOG_SCRATCH SEC(".maps");

/* Every offset and length below is a compile-time constant once inlined. */
static __always_inline __u32 st_log_put(__u8 *b, __u32 off, __u8 kind, const void *v, __u16 len)
{
	b[off] = kind;
	__builtin_memcpy(b + off + 1, &len, sizeof(len));
	__builtin_memcpy(b + off + 3, v, len);
	return off + 3 + len;
}

/*
 * st_log(level, "literal message ", hint, kind, value): message text then one
 * 64-bit value. Returns 0, or -1 when the record could not be written (the
 * caller counts it in LOST[ST_LOST_LOGS]).
 */
#define st_log(level, msg, hint, kind, value)                                        \
	({                                                                            \
		int __ret = -1;                                                       \
		__u32 __zero = 0;                                                     \
		struct st_log_buf *__lb = bpf_map_lookup_elem(&ST_LOG_SCRATCH, &__zero); \
		if (__lb) {                                                           \
			__u8 *__b = __lb->b;                                          \
			__u8 __lvl = (level), __hint = (hint);                        \
			__u32 __line = __LINE__, __nargs = 3;                         \
			__u64 __val = (__u64)(value);                                 \
			__u32 __o = 2;                                                \
			__o = st_log_put(__b, __o, ST_LOG_F_TARGET, ST_LOG_TARGET, sizeof(ST_LOG_TARGET) - 1); \
			__o = st_log_put(__b, __o, ST_LOG_F_LEVEL, &__lvl, 1);        \
			__o = st_log_put(__b, __o, ST_LOG_F_MODULE, ST_LOG_TARGET, sizeof(ST_LOG_TARGET) - 1); \
			__o = st_log_put(__b, __o, ST_LOG_F_FILE, ST_LOG_FILE, sizeof(ST_LOG_FILE) - 1); \
			__o = st_log_put(__b, __o, ST_LOG_F_LINE, &__line, 4);        \
			__o = st_log_put(__b, __o, ST_LOG_F_NUM_ARGS, &__nargs, 4);   \
			__o = st_log_put(__b, __o, ST_LOG_A_STR, msg, sizeof(msg) - 1); \
			__o = st_log_put(__b, __o, ST_LOG_A_DISPLAY_HINT, &__hint, 1); \
			__o = st_log_put(__b, __o, (kind), &__val, 8);                \
			_Static_assert(2 + 3 * 9 + sizeof(ST_LOG_TARGET) * 2 + sizeof(ST_LOG_FILE) + 1 + 4 + 4 + sizeof(msg) + 1 + 8 <= ST_LOG_BUF_SIZE, "log record too long"); \
			__u16 __size = __o;                                           \
			__builtin_memcpy(__b, &__size, sizeof(__size));               \
			__ret = bpf_ringbuf_output(&AYA_LOGS, __b, __o, 0) ? -1 : 0;  \
		}                                                                     \
		__ret;                                                                \
	})

/*
 * Every diagnostic sync_trace.bpf.c writes, one macro per record kind, so that
 * tests/aya_log_host.c writes exactly these records on the host. A new
 * diagnostic goes here, and into that harness and tests/aya_log_record.rs.
 */
#define st_log_inflight_full(target) \
	st_log(ST_LOG_WARN, "INFLIGHT map full; exit of target ", ST_LOG_H_DEFAULT, ST_LOG_A_U64, target)
#define st_log_stack_failed(err) \
	st_log(ST_LOG_WARN, "kernel stack capture failed, error ", ST_LOG_H_DEFAULT, ST_LOG_A_I64, err)
#define st_log_forced(start)                                                                     \
	st_log(ST_LOG_WARN, "forced kernel-side diagnostic at entry, start=0x", ST_LOG_H_LOWER_HEX, \
	       ST_LOG_A_U64, start)

#endif

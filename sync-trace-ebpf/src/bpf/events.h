/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/userspace contract of sync-trace: every record the BPF programs
 * write to a ring buffer, every map name and every load-time knob.
 *
 * This header is the single source of truth. The Rust twins live in
 * sync-trace-common/src (raw/, target.rs); change both together. The test
 * sync-trace-ebpf/tests/contract.rs compares them with the BTF clang writes
 * for this header (contract.bpf.c names every type below): every struct's
 * size, every field's name, offset, size and element type, every enumerator.
 * Shared numeric constants are therefore enumerators, not #defines (BTF has
 * no macros); the map names below are checked against the objects' symbols.
 *
 * Plain fixed-width types only (no vmlinux.h): the layout must be the same
 * for the BPF target and for the host.
 */
#ifndef SYNC_TRACE_EVENTS_H
#define SYNC_TRACE_EVENTS_H

#include <linux/types.h>

/* Map names, as userspace finds them in the object. */
#define ST_MAP_EVENTS "EVENTS"     /* BPF_MAP_TYPE_RINGBUF of struct st_event and struct st_diag */
#define ST_MAP_LOST "LOST"         /* PERCPU_ARRAY[ST_LOST_MAX] of __u64 */
#define ST_MAP_INFLIGHT "INFLIGHT" /* HASH: (tid, target) -> struct st_inflight */
#define ST_MAP_BATCH "BATCH"       /* PERCPU_ARRAY[ST_TARGET_COUNT] of struct st_batch_slot */
#define ST_MAP_PENDING "PENDING"   /* PERCPU_ARRAY[1] of __u64: batches open on the CPU */
#define ST_PROG_FLUSH "st_flush"   /* raw tracepoint, run with BPF_PROG_TEST_RUN on a CPU: writes its open batches */

/* What was traced. Stable numbers: they travel in st_event.target. */
enum st_target {
	ST_TARGET_ARCH_SYNC_KERNEL_MAPPINGS = 0, /* (start, end): end exclusive, or == start from the helpers */
	ST_TARGET_SYNC_GLOBAL_PGDS = 1,          /* (start, end): end inclusive */
	ST_TARGET_VMEMMAP_PGD_POPULATE = 2,      /* (addr, node) */
	ST_TARGET_VMEMMAP_P4D_POPULATE = 3,      /* (pgd, addr, node) */
	ST_TARGET_PGD_POPULATE_KERNEL = 4,       /* (addr, pgd, p4d) where a kernel has it as a function */
	ST_TARGET_P4D_POPULATE_KERNEL = 5,       /* (addr, p4d, pud) likewise */
	ST_TARGET_INIT_MEMORY_MAPPING = 6,       /* (start, end, prot): physical [start, end) of a new direct-map range */
	ST_TARGET_POPULATE_SECTION_MEMMAP = 7,   /* (pfn, nr_pages, nid): the memory map of pages [pfn, pfn + nr_pages) */
	ST_TARGET_COUNT = 8,
};

/*
 * What a record of the EVENTS ring is. Records carry no separate header: the
 * ring gives each record's length, and the length tells the struct
 * (struct st_event, struct st_diag or struct st_batch, of different sizes);
 * its `kind` field must then agree (ENTRY or EXIT in an st_event, DIAG in an
 * st_diag, BATCH in an st_batch).
 */
enum st_kind {
	ST_KIND_ENTRY = 1, /* struct st_event: a call's entry */
	ST_KIND_EXIT = 2,  /* struct st_event: a call's exit */
	ST_KIND_DIAG = 3,  /* struct st_diag: a kernel-side diagnostic */
	ST_KIND_BATCH = 4, /* struct st_batch: consecutive calls of a populate function, counted */
};

/* How the program was attached (set by the program itself). */
enum st_method {
	ST_METHOD_FENTRY = 1, /* fentry / fexit through a BPF trampoline */
	ST_METHOD_KPROBE = 2, /* kprobe / kretprobe */
};

/* st_event.flags */
enum st_flag {
	ST_FLAG_NO_ENTRY = 1 << 0,  /* exit seen without its entry (attached mid-call, or map full) */
	ST_FLAG_ARGS_LOST = 1 << 1, /* kretprobe exit: arguments come from the entry record only */
};

/* Indices into the LOST per-CPU array. */
enum st_lost {
	ST_LOST_EVENTS = 0,   /* a ring-buffer reservation for an st_event failed */
	ST_LOST_INFLIGHT = 1, /* the INFLIGHT map was full: an exit will lack its duration */
	ST_LOST_LOGS = 2,     /* a diagnostic (struct st_diag) could not be written */
	ST_LOST_MAX = 3,
};

/* Array lengths of struct st_event. */
enum st_event_len {
	ST_COMM_LEN = 16,
	ST_MAX_STACK = 32, /* kernel frames kept per entry event */
};

struct st_event {
	__u64 ts_ns;       /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 args[3];     /* raw arguments; meaning per target (enum st_target) */
	__u64 ret;         /* exit only: return value (0 for void functions) */
	__u64 duration_ns; /* exit only: exit ts - entry ts, 0 with ST_FLAG_NO_ENTRY */
	__u32 pid;         /* thread-group id */
	__u32 tid;
	__u32 cpu;
	__u32 flags;       /* ST_FLAG_* */
	__u8 kind;         /* enum st_kind */
	__u8 target;       /* enum st_target */
	__u8 method;       /* enum st_method */
	__u8 _pad;
	__s32 stack_bytes; /* entry only: bytes of stack[] filled, or a negative errno */
	char comm[ST_COMM_LEN];
	__u64 stack[ST_MAX_STACK];
};

_Static_assert(sizeof(struct st_event) == 88 + 8 * ST_MAX_STACK, "st_event size");
_Static_assert(__builtin_offsetof(struct st_event, pid) == 48, "st_event.pid");
_Static_assert(__builtin_offsetof(struct st_event, kind) == 64, "st_event.kind");
_Static_assert(__builtin_offsetof(struct st_event, stack_bytes) == 68, "st_event.stack_bytes");
_Static_assert(__builtin_offsetof(struct st_event, comm) == 72, "st_event.comm");
_Static_assert(__builtin_offsetof(struct st_event, stack) == 88, "st_event.stack");

/*
 * Kernel-side diagnostics: one code per message the daemon logs (at warn
 * level, target sync_trace_ebpf); st_diag.value is the message's one number.
 */
enum st_diag_code {
	ST_DIAG_INFLIGHT_FULL = 1, /* "INFLIGHT map full; exit of target <value>" (enum st_target) */
	ST_DIAG_STACK_FAILED = 2,  /* "kernel stack capture failed, error <value as __s64>" (-errno) */
	ST_DIAG_FORCED = 3,        /* "forced kernel-side diagnostic at entry, start=0x<value, lower hex>" */
};

struct st_diag {
	__u64 ts_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 value;  /* meaning per code (enum st_diag_code); a signed value as its two's complement */
	__u32 pid;    /* thread-group id */
	__u32 cpu;
	__u8 kind;    /* ST_KIND_DIAG */
	__u8 code;    /* enum st_diag_code */
	__u8 _pad[6];
};

_Static_assert(sizeof(struct st_diag) == 32, "st_diag size");
_Static_assert(__builtin_offsetof(struct st_diag, kind) == 24, "st_diag.kind");
_Static_assert(sizeof(struct st_diag) != sizeof(struct st_event), "records are told apart by their length");

struct st_inflight_key {
	__u32 tid;
	__u32 target;
};

struct st_inflight {
	__u64 ts_ns;
	__u64 args[3]; /* with ST_INFLIGHT_BATCHED: [0], [1] the lowest and highest address it covers */
	__u32 flags; /* enum st_inflight_flag */
	__u32 slot;  /* with ST_INFLIGHT_BATCHED: the top-level slot found present */
};

enum st_inflight_flag {
	/* The entry found the call's top-level entry present in init_mm: the call
	 * cannot populate it, so it wrote no entry record and goes into a batch. */
	ST_INFLIGHT_BATCHED = 1 << 0,
};

/*
 * Batches. vmemmap_pgd_populate() and vmemmap_p4d_populate() run once per
 * page (or PMD) of a new memory map: hundreds of thousands of calls for a
 * large device-dax or kmem range, nearly all over a top-level entry that is
 * already present; __populate_section_memmap() runs once per memory section
 * (8192 calls for 1 TiB of hot-add). Such a call (its entry found the entry
 * present in init_top_pgt; for a section, the entries of the first and the
 * last address of its memory map, which lie in one slot or two adjacent
 * ones) cannot be a population: it writes no entry nor exit record;
 * at its exit it is counted into the CPU's open batch of its function, and
 * the batch is written as one struct st_batch when
 * - a call of another task or another top-level slot is added
 *   (ST_BATCH_OTHER),
 * - it is older than st_cfg_batch_ns (ST_BATCH_AGE) or full (ST_BATCH_FULL),
 * - a sync, or a call that found its top-level entry empty (a possible
 *   population, traced call by call), enters on the CPU (ST_BATCH_SYNC),
 * - the daemon runs st_flush on the CPU (ST_BATCH_FLUSH; before each scan
 *   and at the end, on the CPUs whose PENDING count is not 0).
 * A call that finds the CPU's batch being updated (its updater was
 * preempted) is written alone (ST_BATCH_LONE, calls == 1).
 */
enum st_batch_reason {
	ST_BATCH_OTHER = 1,
	ST_BATCH_AGE = 2,
	ST_BATCH_FULL = 3,
	ST_BATCH_SYNC = 4,
	ST_BATCH_FLUSH = 5,
	ST_BATCH_LONE = 6,
};

struct st_batch {
	__u64 ts_ns;       /* entry of the first call (CLOCK_MONOTONIC) */
	__u64 end_ns;      /* exit of the last call */
	__u64 busy_ns;     /* sum of the calls' durations */
	__u64 addr_first;  /* lowest address the calls populated (a section's: its memory map's first byte) */
	__u64 addr_last;   /* highest (a section's: its memory map's last byte) */
	__u32 calls;       /* calls counted, at least 1 */
	__u32 pid;         /* thread-group id (every call is of this task) */
	__u32 tid;
	__u32 cpu;         /* where the calls exited */
	__u8 kind;         /* ST_KIND_BATCH */
	__u8 target;       /* enum st_target */
	__u8 method;       /* enum st_method */
	__u8 reason;       /* enum st_batch_reason: why it was written */
	__s32 stack_bytes; /* bytes of stack[] (the first call's, taken at its exit), or a negative errno */
	char comm[ST_COMM_LEN];
	__u64 stack[ST_MAX_STACK];
};

_Static_assert(sizeof(struct st_batch) == 80 + 8 * ST_MAX_STACK, "st_batch size");
_Static_assert(__builtin_offsetof(struct st_batch, calls) == 40, "st_batch.calls");
_Static_assert(__builtin_offsetof(struct st_batch, kind) == 56, "st_batch.kind");
_Static_assert(__builtin_offsetof(struct st_batch, comm) == 64, "st_batch.comm");
_Static_assert(__builtin_offsetof(struct st_batch, stack) == 80, "st_batch.stack");
_Static_assert(sizeof(struct st_batch) != sizeof(struct st_event), "records are told apart by their length");
_Static_assert(sizeof(struct st_batch) != sizeof(struct st_diag), "records are told apart by their length");

/* The open batch of one function on one CPU (kernel only). */
struct st_batch_slot {
	struct st_batch batch; /* batch.calls == 0: none open */
	__u32 busy;            /* a call is updating it: st_flush leaves it alone */
	__u32 slot;            /* top-level slot of its calls */
};

/*
 * Page-table scan (pgtable_scan.bpf.c), run on demand with BPF_PROG_TEST_RUN:
 * a copy of init_mm's top-level table and, when asked, a walk of pgd_list
 * comparing a set of kernel-half slots of every PGD with it. A walk runs in
 * chunks: each test run stops after st_cfg_run_budget_ns and leaves a
 * cursor; the next run (ST_SCAN_WALK_NEXT) goes on from there.
 */
#define ST_MAP_SCAN "SCAN" /* ARRAY[2] of struct st_scan: [ST_SCAN_KEY_TABLE], [ST_SCAN_KEY_WALK] */
enum st_scan_key {
	ST_SCAN_KEY_TABLE = 0,
	ST_SCAN_KEY_WALK = 1,
};

enum st_pgtable {
	ST_PTRS = 512,        /* entries per x86_64 page-table page */
	ST_KERNEL_HALF = 256, /* first kernel-half slot: bit 47 (4-level) / 56 (5-level) set */
	ST_HALF = ST_PTRS - ST_KERNEL_HALF,
	ST_SLOT_WORDS = ST_HALF / 64, /* u64 words of a kernel-half slot set */
};

/*
 * Raw tracepoint test-run arguments: args[0] the mode; with
 * ST_SCAN_WALK_BEGIN, args[1..1+ST_SLOT_WORDS] the slot set (bit k of word w:
 * slot ST_KERNEL_HALF + 64 * w + k).
 */
enum st_scan_mode {
	ST_SCAN_TABLE = 0,      /* copy init_top_pgt only, into [ST_SCAN_KEY_TABLE] */
	ST_SCAN_WALK_BEGIN = 1, /* copy it into [ST_SCAN_KEY_WALK] and start a walk of pgd_list */
	ST_SCAN_WALK_NEXT = 2,  /* go on with the walk in [ST_SCAN_KEY_WALK] (while ST_SCAN_MORE) */
};

/* st_scan.status bits (bits 30 and 31 are userspace's own, never set here) */
enum st_scan_status {
	ST_SCAN_DONE = 1 << 0,      /* the table scan or the walk is over (ST_SCAN_MORE clear) */
	ST_SCAN_WALKED = 1 << 1,    /* the walk reached the list head again */
	ST_SCAN_TRUNCATED = 1 << 2, /* st_cfg_max_pgds reached before the list end */
	ST_SCAN_FAULT = 1 << 3,     /* a read failed, or a node was invalid after every restart */
	ST_SCAN_NO_LAYOUT = 1 << 4, /* a layout variable could not be read */
	ST_SCAN_MORE = 1 << 5,      /* the run's time budget ended the chunk: run ST_SCAN_WALK_NEXT */
	ST_SCAN_NO_CORE = 1 << 6,   /* a CO-RE type or field the walk needs is missing (st_scan.core) */
	ST_SCAN_RESTARTED = 1 << 7, /* an invalid node restarted the walk from the head */
	ST_SCAN_NOT_BEGUN = 1 << 8, /* ST_SCAN_WALK_NEXT without a walk in progress */
};

/* st_scan.core bits: what CO-RE found in the kernel's BTF. */
enum st_core {
	ST_CORE_PAGE = 1 << 0,     /* struct page (its size) */
	ST_CORE_LIST = 1 << 1,     /* the pgd_list link: ptdesc->pt_list or page->lru */
	ST_CORE_PT_MM = 1 << 2,    /* the owner mm: ptdesc->pt_mm or page->pt_mm */
	ST_CORE_REFCOUNT = 1 << 3, /* page->_refcount */
	ST_CORE_MM_PGD = 1 << 4,   /* mm_struct->pgd */
	ST_CORE_PTDESC = 1 << 5,   /* struct ptdesc exists (6.5+): its fields are used */
	ST_CORE_NEEDED = ST_CORE_PAGE | ST_CORE_LIST | ST_CORE_PT_MM | ST_CORE_REFCOUNT | ST_CORE_MM_PGD,
};

struct st_scan {
	__u64 ts_ns;            /* bpf_ktime_get_ns() when init_top_pgt was read (walk: at its start) */
	__u64 end_ns;           /* when the scan or walk ended (or the last run of an unfinished walk) */
	__u64 page_offset_base; /* live values of the kernel layout variables */
	__u64 vmalloc_base;
	__u64 vmemmap_base;
	__u64 sme_me_mask;
	__u32 pgdir_shift;      /* 39: 4-level paging, 48: 5-level */
	__u32 status;           /* ST_SCAN_* */
	__u32 pgds;             /* PGDs on pgd_list compared */
	__u32 page_size;        /* sizeof(struct page), from CO-RE */
	__u64 top[ST_PTRS];     /* init_top_pgt, raw */
	__u32 missing[ST_HALF]; /* per kernel-half slot: PGDs lacking an entry init_mm has */
	__u32 mismatch[ST_HALF];/* per kernel-half slot: PGDs whose present entry points elsewhere */
	/* The walk: what it compares, where it is, what it cost. */
	__u64 slots[ST_SLOT_WORDS]; /* slot set asked for (bit per kernel-half slot) */
	__u64 cursor;           /* next list node to visit (kernel address) */
	__u64 max_run_ns;       /* longest single test run of this walk */
	__u64 busy_ns;          /* sum of the test runs of this walk */
	__u32 runs;             /* test runs of this walk */
	__u32 restarts;         /* restarts from the head after an invalid node */
	__u32 core;             /* ST_CORE_* */
	__u32 nslots;           /* slots compared: asked for and present in init_mm */
	__u16 list[ST_HALF];    /* those slots, as kernel-half indices */
	__u32 list_off;         /* CO-RE offsets used, for diagnostics */
	__u32 pt_mm_off;
	__u32 refcount_off;
	__u32 mm_pgd_off;
};

_Static_assert(sizeof(struct st_scan) == 64 + 8 * ST_PTRS + 8 * ST_HALF + 8 * ST_SLOT_WORDS + 40 + 2 * ST_HALF + 16, "st_scan size");
_Static_assert(__builtin_offsetof(struct st_scan, top) == 64, "st_scan.top");
_Static_assert(__builtin_offsetof(struct st_scan, slots) == 64 + 8 * ST_PTRS + 8 * ST_HALF, "st_scan.slots");
_Static_assert(__builtin_offsetof(struct st_scan, list) == 64 + 8 * ST_PTRS + 8 * ST_HALF + 8 * ST_SLOT_WORDS + 40, "st_scan.list");

/*
 * The sweep in the kernel (sweep_timer.h, in the scan object): a bpf_timer
 * reads init_mm's kernel half every st_cfg_sweep_ns and compares which slots
 * are present with its last reading; only a change is written, to
 * ST_SWEEP_RING, so an idle daemon is not woken at all. The timer is armed
 * once by ST_PROG_SWEEP_ARM (fexit of bpf_fentry_test1, run with
 * BPF_PROG_TEST_RUN) and lives as long as the daemon holds the map.
 */
#define ST_MAP_SWEEP "ST_SWEEP"           /* ARRAY[1]: the timer and struct st_sweep_view */
#define ST_MAP_SWEEP_RING "ST_SWEEP_RING" /* BPF_MAP_TYPE_RINGBUF of struct st_sweep_change */
#define ST_PROG_SWEEP_ARM "st_sweep_arm"  /* fexit/bpf_fentry_test1: arms the timer */

/* What the timer knows, after the timer itself in the map value. */
struct st_sweep_view {
	__u64 period_ns;             /* st_cfg_sweep_ns */
	__u64 last_ns;               /* bpf_ktime_get_ns() before the last reading that matched `bits` */
	__u64 sweeps;                /* readings made (the arming one included) */
	__u64 changes;               /* st_sweep_change records written */
	__u64 busy_ns;               /* time spent in the timer's callback, summed */
	__u64 faults;                /* readings that failed (the table unreadable) */
	__u64 lost;                  /* changes not written for a full ring (retried next period) */
	__u64 bits[ST_SLOT_WORDS];   /* present kernel-half slots (bit k of word w: slot 256 + 64w + k) */
	__s32 arm_error;             /* bpf_timer_init/start's error when arming failed, else 0 */
	__u32 armed;                 /* 1 once the timer runs */
};

/* A change of the present kernel-half slots, as the timer saw it. */
struct st_sweep_change {
	__u64 ts_ns;                 /* after the reading that saw `now` */
	__u64 prev_ns;               /* before the last reading that saw `before` */
	__u64 before[ST_SLOT_WORDS];
	__u64 now[ST_SLOT_WORDS];
};

#endif

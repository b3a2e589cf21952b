//! The Rust twins of events.h's types, as the contract test compares them:
//! every struct's size and fields (`structs`), every enum's values (`enums`).

use std::mem::{offset_of, size_of};

use sync_trace_common::batch::{self, RawBatchC};
use sync_trace_common::raw::{self, RawDiagC, RawEventC, RawScan, RawSweepChange, RawSweepView};
use sync_trace_common::{BatchReason, DiagCode, Kind, Method, Target};

use crate::btf::Shape;

/// The shape of a Rust field type, as [`Btf::shape`] gives a C one.
trait RustShape {
    fn shape() -> Shape;
}

macro_rules! int_shape {
    ($($t:ty => $signed:expr),*) => {$(
        impl RustShape for $t {
            fn shape() -> Shape {
                Shape::Int { size: size_of::<$t>(), signed: $signed }
            }
        }
    )*};
}
int_shape!(u8 => false, u16 => false, u32 => false, u64 => false, i8 => true, i16 => true, i32 => true, i64 => true);

impl<T: RustShape, const N: usize> RustShape for [T; N] {
    fn shape() -> Shape {
        Shape::Array(Box::new(T::shape()), N)
    }
}

fn shape_of<S, F: RustShape>(_: impl Fn(&S) -> &F) -> (Shape, usize) {
    (F::shape(), size_of::<F>())
}

#[derive(Debug)]
pub(crate) struct RustField {
    pub(crate) c_name: &'static str,
    pub(crate) offset: usize,
    pub(crate) size: usize,
    pub(crate) shape: Shape,
}

pub(crate) struct RustStruct {
    pub(crate) rust_name: &'static str,
    pub(crate) size: usize,
    pub(crate) fields: Vec<RustField>,
}

/// A Rust twin of a C struct. Every field of the Rust struct must be listed
/// (the destructuring pattern does not compile otherwise), in C order; a
/// field named differently in C says so: `pad = "_pad"`.
macro_rules! twin {
    ($t:ident { $($f:ident $(= $c:literal)?),* $(,)? }) => {{
        #[allow(unused)]
        fn all_fields_listed(v: $t) {
            let $t { $($f: _),* } = v;
        }
        RustStruct {
            rust_name: stringify!($t),
            size: size_of::<$t>(),
            fields: vec![$({
                let (shape, size) = shape_of(|s: &$t| &s.$f);
                #[allow(unused_variables)]
                let c_name = stringify!($f);
                $(let c_name = $c;)?
                RustField { c_name, offset: offset_of!($t, $f), size, shape }
            }),*],
        }
    }};
}

/// Every struct of events.h: its Rust twin, or None for a kernel-only type.
pub(crate) fn structs() -> Vec<(&'static str, Option<RustStruct>)> {
    vec![
        (
            "st_event",
            Some(twin!(RawEventC {
                ts_ns, args, ret, duration_ns, pid, tid, cpu, flags, kind, target, method,
                pad = "_pad", stack_bytes, comm, stack,
            })),
        ),
        (
            "st_diag",
            Some(twin!(RawDiagC {
                ts_ns,
                value,
                pid,
                cpu,
                kind,
                code,
                pad = "_pad",
            })),
        ),
        (
            "st_scan",
            Some(twin!(RawScan {
                ts_ns,
                end_ns,
                page_offset_base,
                vmalloc_base,
                vmemmap_base,
                sme_me_mask,
                pgdir_shift,
                status,
                pgds,
                page_size,
                top,
                missing,
                mismatch,
                slots,
                cursor,
                max_run_ns,
                busy_ns,
                runs,
                restarts,
                core,
                nslots,
                list,
                list_off,
                pt_mm_off,
                refcount_off,
                mm_pgd_off,
            })),
        ),
        (
            "st_batch",
            Some(twin!(RawBatchC {
                ts_ns,
                end_ns,
                busy_ns,
                addr_first,
                addr_last,
                calls,
                pid,
                tid,
                cpu,
                kind,
                target,
                method,
                reason,
                stack_bytes,
                comm,
                stack,
            })),
        ),
        (
            "st_sweep_view",
            Some(twin!(RawSweepView {
                period_ns,
                last_ns,
                sweeps,
                changes,
                busy_ns,
                faults,
                lost,
                bits,
                arm_error,
                armed,
            })),
        ),
        (
            "st_sweep_change",
            Some(twin!(RawSweepChange {
                ts_ns,
                prev_ns,
                before,
                now,
            })),
        ),
        // The INFLIGHT and BATCH maps' keys and values: only the kernel
        // programs use them.
        ("st_inflight_key", None),
        ("st_inflight", None),
        ("st_batch_slot", None),
    ]
}

fn kind_c_name(k: Kind) -> &'static str {
    match k {
        Kind::Entry => "ST_KIND_ENTRY",
        Kind::Exit => "ST_KIND_EXIT",
    }
}

fn method_c_name(m: Method) -> &'static str {
    match m {
        Method::Fentry => "ST_METHOD_FENTRY",
        Method::Kprobe => "ST_METHOD_KPROBE",
    }
}

/// The raw value `from_raw` maps to `x` (the Rust enums have no other way back).
fn raw_of<T: PartialEq + Copy>(from_raw: fn(u8) -> Option<T>, x: T) -> i64 {
    let raws: Vec<u8> = (0..=u8::MAX).filter(|&v| from_raw(v) == Some(x)).collect();
    assert_eq!(
        raws.len(),
        1,
        "from_raw maps {} values to one variant",
        raws.len()
    );
    i64::from(raws[0])
}

/// Every enum of events.h: every enumerator and its Rust value.
pub(crate) fn enums() -> Vec<(&'static str, Vec<(&'static str, i64)>)> {
    let u = |v: u32| i64::from(v);
    let z = |v: usize| i64::try_from(v).unwrap();
    let mut target: Vec<_> = Target::ALL
        .iter()
        .map(|&t| (t.c_name(), t as i64))
        .collect();
    target.push(("ST_TARGET_COUNT", z(Target::ALL.len())));
    vec![
        ("st_target", target),
        ("st_kind", {
            let mut kinds = [Kind::Entry, Kind::Exit]
                .map(|k| (kind_c_name(k), raw_of(Kind::from_raw, k)))
                .to_vec();
            kinds.push(("ST_KIND_DIAG", i64::from(raw::KIND_DIAG)));
            kinds.push(("ST_KIND_BATCH", i64::from(batch::KIND_BATCH)));
            kinds
        }),
        (
            "st_diag_code",
            DiagCode::ALL
                .iter()
                .map(|&c| (c.c_name(), raw_of(DiagCode::from_raw, c)))
                .collect(),
        ),
        (
            "st_inflight_flag",
            vec![("ST_INFLIGHT_BATCHED", u(batch::INFLIGHT_BATCHED))],
        ),
        (
            "st_batch_reason",
            BatchReason::ALL
                .iter()
                .map(|&r| (r.c_name(), i64::from(r as u8)))
                .collect(),
        ),
        (
            "st_method",
            [Method::Fentry, Method::Kprobe]
                .map(|m| (method_c_name(m), raw_of(Method::from_raw, m)))
                .to_vec(),
        ),
        (
            "st_flag",
            vec![
                ("ST_FLAG_NO_ENTRY", u(raw::FLAG_NO_ENTRY)),
                ("ST_FLAG_ARGS_LOST", u(raw::FLAG_ARGS_LOST)),
            ],
        ),
        (
            "st_lost",
            vec![
                ("ST_LOST_EVENTS", u(raw::LOST_EVENTS)),
                ("ST_LOST_INFLIGHT", u(raw::LOST_INFLIGHT)),
                ("ST_LOST_LOGS", u(raw::LOST_LOGS)),
                ("ST_LOST_MAX", u(raw::LOST_MAX)),
            ],
        ),
        (
            "st_event_len",
            vec![
                ("ST_COMM_LEN", z(raw::COMM_LEN)),
                ("ST_MAX_STACK", z(raw::MAX_STACK)),
            ],
        ),
        (
            "st_scan_key",
            vec![
                ("ST_SCAN_KEY_TABLE", u(raw::SCAN_KEY_TABLE)),
                ("ST_SCAN_KEY_WALK", u(raw::SCAN_KEY_WALK)),
            ],
        ),
        (
            "st_pgtable",
            vec![
                ("ST_PTRS", z(raw::PTRS)),
                ("ST_KERNEL_HALF", z(raw::KERNEL_HALF)),
                ("ST_HALF", z(raw::HALF)),
                ("ST_SLOT_WORDS", z(raw::SLOT_WORDS)),
            ],
        ),
        (
            "st_scan_mode",
            vec![
                ("ST_SCAN_TABLE", raw::SCAN_TABLE as i64),
                ("ST_SCAN_WALK_BEGIN", raw::SCAN_WALK_BEGIN as i64),
                ("ST_SCAN_WALK_NEXT", raw::SCAN_WALK_NEXT as i64),
            ],
        ),
        (
            "st_scan_status",
            vec![
                ("ST_SCAN_DONE", u(raw::SCAN_DONE)),
                ("ST_SCAN_WALKED", u(raw::SCAN_WALKED)),
                ("ST_SCAN_TRUNCATED", u(raw::SCAN_TRUNCATED)),
                ("ST_SCAN_FAULT", u(raw::SCAN_FAULT)),
                ("ST_SCAN_NO_LAYOUT", u(raw::SCAN_NO_LAYOUT)),
                ("ST_SCAN_MORE", u(raw::SCAN_MORE)),
                ("ST_SCAN_NO_CORE", u(raw::SCAN_NO_CORE)),
                ("ST_SCAN_RESTARTED", u(raw::SCAN_RESTARTED)),
                ("ST_SCAN_NOT_BEGUN", u(raw::SCAN_NOT_BEGUN)),
            ],
        ),
        (
            "st_core",
            vec![
                ("ST_CORE_PAGE", u(raw::CORE_PAGE)),
                ("ST_CORE_LIST", u(raw::CORE_LIST)),
                ("ST_CORE_PT_MM", u(raw::CORE_PT_MM)),
                ("ST_CORE_REFCOUNT", u(raw::CORE_REFCOUNT)),
                ("ST_CORE_MM_PGD", u(raw::CORE_MM_PGD)),
                ("ST_CORE_PTDESC", u(raw::CORE_PTDESC)),
                ("ST_CORE_NEEDED", u(raw::CORE_NEEDED)),
            ],
        ),
    ]
}

//! The contract between the sync-trace kernel programs and userspace: record
//! layouts (twins of `sync-trace-ebpf/src/bpf/events.h`), target names, the
//! kernel's virtual layout and length-checked decoding of raw records.
//!
//! Nothing here needs a kernel: the daemon, `replay` and the tests share it.

pub mod batch;
pub mod diag;
pub mod layout;
pub mod raw;
pub mod target;

pub use batch::{BatchReason, RawBatch};
pub use diag::DiagCode;
pub use layout::{Layout, Level, Paging, Region};
pub use raw::{DecodeError, RawDiag, RawEvent, RawRecord};
pub use target::{Kind, Method, Target};

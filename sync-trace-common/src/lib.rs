//! The contract between the sync-trace kernel programs and userspace: record
//! layouts (twins of `sync-trace-ebpf/src/bpf/events.h`), target names and
//! length-checked decoding of raw ring-buffer bytes.
//!
//! Nothing here needs a kernel: the daemon, `replay` and the tests share it.

pub mod raw;
pub mod target;

pub use raw::{DecodeError, RawEvent};
pub use target::{Kind, Method, Target};

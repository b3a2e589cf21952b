//! A probe that went away while `run` was tracing: the `detached` record.

use serde::{Deserialize, Serialize};
use sync_trace_common::{Method, Target};

/// An attached probe that stopped being live (docs/events.md): its kprobe is
/// gone because the module holding the function was unloaded, or it is no
/// longer registered. From then on `sync_trace_probe_attached` of its target
/// is 0 and calls of the function are not seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetachedRecord {
    /// When the check that noticed it ran (CLOCK_MONOTONIC ns).
    pub ts_ns: u64,
    /// The target whose programs were attached.
    pub target: Target,
    /// The function they were attached to (the target's own symbol, or a
    /// stand-in for it: `run --test-sync-stand-in`).
    pub symbol: String,
    pub method: Method,
    /// What the kernel shows: `gone` (its module was unloaded) or
    /// `unregistered` (no longer in the kernel's kprobe list).
    pub reason: String,
}

//! What `run` reports: one record per line, as text or as NDJSON with an
//! `"event"` field. Field names are a contract (docs/events.md).

use std::fmt;

use serde::{Serialize, Serializer};
use sync_trace_common::Method;

use crate::{caller::Caller, summary::Summary};

/// A kernel virtual address, serialized as a `"0x…"` string so that JSON
/// readers without 64-bit integers keep it exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

/// Task context of a record.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
}

/// One completed call of `arch_sync_kernel_mappings` or `sync_global_pgds`.
#[derive(Clone, Debug, Serialize)]
pub struct SyncRecord {
    /// Entry time, CLOCK_MONOTONIC ns (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// Exit time.
    pub end_ns: u64,
    pub duration_ns: u64,
    #[serde(flatten)]
    pub task: Task,
    pub function: &'static str,
    pub start: Hex,
    pub end: Hex,
    /// `start == end`: the call made by `pgd_populate_kernel()`/`p4d_populate_kernel()`.
    pub helper: bool,
    pub caller: Caller,
    pub method: Method,
    /// False when only the exit was seen (the call began before attach).
    pub entry_seen: bool,
    /// Kernel stack at entry, innermost first, as `symbol+0xoff`.
    pub stack: Vec<String>,
}

/// One completed call of a traced populate function (`vmemmap_p4d_populate`, …).
#[derive(Clone, Debug, Serialize)]
pub struct CallRecord {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub duration_ns: u64,
    #[serde(flatten)]
    pub task: Task,
    pub function: &'static str,
    pub addr: Hex,
    pub method: Method,
    pub entry_seen: bool,
    pub stack: Vec<String>,
}

/// Records the kernel could not deliver, counted by its programs.
#[derive(Clone, Debug, Serialize)]
pub struct LostRecord {
    /// `events` (ring buffer full), `inflight` (durations lost), `logs`.
    pub what: &'static str,
    /// New losses since the previous `lost` record of this kind.
    pub count: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    Sync(SyncRecord),
    Call(CallRecord),
    Lost(LostRecord),
    Summary(Summary),
}

impl Record {
    /// One human-readable line.
    pub fn text(&self) -> String {
        match self {
            Record::Sync(s) => format!(
                "{:>14.6} cpu{} {}[{}] {} {}..{}{} {:.1}us caller={} via {}{}",
                s.ts_ns as f64 / 1e9,
                s.task.cpu,
                s.task.comm,
                s.task.pid,
                s.function,
                s.start,
                s.end,
                if s.helper {
                    " (start == end: populate helper)"
                } else {
                    ""
                },
                s.duration_ns as f64 / 1e3,
                s.caller.name(),
                s.method.name(),
                first_frames(&s.stack),
            ),
            Record::Call(c) => format!(
                "{:>14.6} cpu{} {}[{}] {} addr={} {:.1}us via {}{}",
                c.ts_ns as f64 / 1e9,
                c.task.cpu,
                c.task.comm,
                c.task.pid,
                c.function,
                c.addr,
                c.duration_ns as f64 / 1e3,
                c.method.name(),
                first_frames(&c.stack),
            ),
            Record::Lost(l) => format!("lost: {} more {} ({} in all)", l.count, l.what, l.total),
            Record::Summary(s) => s.text(),
        }
    }
}

/// ` <- a <- b <- c`: the callers, skipping the traced function itself.
fn first_frames(stack: &[String]) -> String {
    let frames: Vec<&str> = stack
        .iter()
        .map(String::as_str)
        .filter(|f| {
            !f.starts_with("bpf_trampoline")
                && !f.starts_with("arch_sync_kernel_mappings")
                && !f.starts_with("sync_global_pgds")
        })
        .take(3)
        .collect();
    if frames.is_empty() {
        String::new()
    } else {
        format!(" <- {}", frames.join(" <- "))
    }
}

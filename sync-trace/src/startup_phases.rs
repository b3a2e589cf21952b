//! `SYNC_TRACE_STARTUP=1`: one line on stderr per startup phase of the
//! daemon, with the time since `main` began, the phase's own time and the
//! process's peak and current resident memory (`VmHWM`, `VmRSS` of
//! /proc/self/status) when the phase ended:
//!
//! ```text
//! startup: kallsyms at=412.3ms took=398.1ms VmHWM=5120kB VmRSS=4980kB
//! ```
//!
//! Some phases run beside others on a thread of their own: a phase's time
//! is since the previous phase of the same thread (its start, for a thread
//! that calls [`begin_thread`]), and those lines carry the thread's name
//! (`startup: [btf] loader (btf for CO-RE) ...`).
//!
//! What docs/performance.md's startup breakdown is measured with. Off (one
//! branch per phase) unless the variable is set.

use std::{cell::Cell, sync::OnceLock, time::Instant};

/// When `main` began; `None` when off.
static START: OnceLock<Option<Instant>> = OnceLock::new();

thread_local! {
    /// The end of this thread's last phase.
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Starts the clock (from `main`), when `SYNC_TRACE_STARTUP` is set.
pub fn begin() {
    START.get_or_init(|| {
        std::env::var_os("SYNC_TRACE_STARTUP").map(|_| {
            let now = Instant::now();
            LAST.set(Some(now));
            now
        })
    });
}

/// Starts the clock of a thread's phases (the thread's start).
pub fn begin_thread() {
    if let Some(Some(_)) = START.get() {
        LAST.set(Some(Instant::now()));
    }
}

/// `VmHWM` and `VmRSS` in kB.
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Ends the phase `name`.
pub fn mark(name: &str) {
    let Some(Some(start)) = START.get() else {
        return;
    };
    let now = Instant::now();
    let last = LAST.replace(Some(now)).unwrap_or(*start);
    let (hwm, rss) = memory_kb();
    let thread = std::thread::current();
    let tag = match thread.name() {
        Some("main") | None => String::new(),
        Some(t) => format!("[{t}] "),
    };
    eprintln!(
        "startup: {tag}{name} at={:.1}ms took={:.1}ms VmHWM={hwm}kB VmRSS={rss}kB",
        (now - *start).as_secs_f64() * 1e3,
        (now - last).as_secs_f64() * 1e3,
    );
}

//! `SYNC_TRACE_STARTUP=1`: one line on stderr per startup phase of the
//! daemon, with the time since `main` began, the phase's own time and the
//! process's peak and current resident memory (`VmHWM`, `VmRSS` of
//! /proc/self/status) when the phase ended:
//!
//! ```text
//! startup: kallsyms at=412.3ms took=398.1ms VmHWM=5120kB VmRSS=4980kB
//! ```
//!
//! What docs/performance.md's startup breakdown is measured with. Off (one
//! branch per phase) unless the variable is set.

use std::{sync::OnceLock, time::Instant};

/// When `main` began, and the end of the last phase; `None` when off.
static START: OnceLock<Option<std::sync::Mutex<(Instant, Instant)>>> = OnceLock::new();

/// Starts the clock (from `main`), when `SYNC_TRACE_STARTUP` is set.
pub fn begin() {
    START.get_or_init(|| {
        std::env::var_os("SYNC_TRACE_STARTUP").map(|_| {
            let now = Instant::now();
            std::sync::Mutex::new((now, now))
        })
    });
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
    let Some(Some(clock)) = START.get() else {
        return;
    };
    let Ok(mut clock) = clock.lock() else {
        return;
    };
    let now = Instant::now();
    let (hwm, rss) = memory_kb();
    eprintln!(
        "startup: {name} at={:.1}ms took={:.1}ms VmHWM={hwm}kB VmRSS={rss}kB",
        (now - clock.0).as_secs_f64() * 1e3,
        (now - clock.1).as_secs_f64() * 1e3,
    );
    clock.1 = now;
}

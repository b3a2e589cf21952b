//! What `sync-trace probe --json` prints: per target, what was decided at
//! start-up and whether attaching worked. The daemon keeps the same type
//! while it runs (`kernel::target_status`), so the report cannot drift.

use serde::{Deserialize, Serialize};
use sync_trace_common::{Method, Target};

/// What `probe --json` prints: one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The running kernel's release.
    pub kernel: String,
    pub targets: Vec<TargetReport>,
}

/// One target of [`ProbeReport`]: what was decided for it at start-up and
/// whether attaching it worked (the daemon's `TargetStatus`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    pub target: Target,
    pub symbol: String,
    /// Present as a function in /proc/kallsyms.
    pub kallsyms: bool,
    /// Has a BTF FUNC record (fentry/fexit possible).
    pub btf: bool,
    /// Listed in available_filter_functions; `None` when tracefs could not be read.
    pub traceable: Option<bool>,
    /// The method that attached, if any.
    pub method: Option<Method>,
    pub attached: bool,
    /// Why it did not attach, or why the preferred method was not used.
    pub reason: Option<String>,
    /// The livepatches that replace the function (`/sys/kernel/livepatch`)
    /// when it was attached: calls still enter it, so the probes still see
    /// them (`kernel::livepatch`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub livepatched_by: Vec<String>,
}

impl ProbeReport {
    pub fn new(kernel: &str, statuses: &[TargetReport]) -> Self {
        Self {
            kernel: kernel.to_string(),
            targets: statuses.to_vec(),
        }
    }
}

impl ProbeReport {
    /// The target named `symbol`.
    pub fn target(&self, symbol: &str) -> Option<&TargetReport> {
        self.targets.iter().find(|t| t.symbol == symbol)
    }
}

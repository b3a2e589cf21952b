//! What was decided for each target at start-up, and whether attaching
//! it worked (`attach.rs` decides; `probe` prints it).

use sync_trace_common::Target;

use super::facts::KernelFacts;

/// Everything known about one target after trying to attach it: the same
/// type `probe --json` prints, so the report cannot drift from it.
pub use crate::record::probe::TargetReport as TargetStatus;

impl TargetStatus {
    pub(super) fn new(target: Target, facts: &KernelFacts) -> Self {
        Self::at(target, target.symbol(), facts)
    }

    /// The status of `target`'s programs attached to `symbol` (the target's
    /// own function, or a stand-in for it).
    pub(super) fn at(target: Target, symbol: &str, facts: &KernelFacts) -> Self {
        Self {
            target,
            symbol: symbol.to_string(),
            kallsyms: facts.symbols.has_function(symbol),
            // Filled in by the attach (`attach.rs`).
            btf: false,
            // Filled in when asked for (`probe`) or needed (a refusal).
            traceable: None,
            method: None,
            attached: false,
            reason: None,
            // Filled in by the load (`attach.rs`).
            livepatched_by: Vec::new(),
        }
    }
}

/// True when a sync point (`arch_sync_kernel_mappings` or `sync_global_pgds`) is attached.
pub fn any_sync_attached(statuses: &[TargetStatus]) -> bool {
    statuses.iter().any(|s| s.attached && s.target.is_sync())
}

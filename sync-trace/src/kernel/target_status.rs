//! What was decided for each target at start-up, and whether attaching
//! it worked (`attach.rs` decides; `probe` prints it).

use serde::Serialize;
use sync_trace_common::{Method, Target};

use super::facts::KernelFacts;

/// Everything known about one target after trying to attach it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub target: Target,
    pub symbol: &'static str,
    /// Present as a function in /proc/kallsyms.
    pub kallsyms: bool,
    /// Has a BTF FUNC record (fentry/fexit possible).
    pub btf: bool,
    /// Listed in available_filter_functions (has an ftrace site); `None`
    /// when tracefs could not be read.
    pub traceable: Option<bool>,
    /// The method that attached, if any.
    pub method: Option<Method>,
    pub attached: bool,
    /// Why it did not attach, or why the preferred method was not used.
    pub reason: Option<String>,
}

impl TargetStatus {
    pub(super) fn new(target: Target, facts: &KernelFacts) -> Self {
        let symbol = target.symbol();
        Self {
            target,
            symbol,
            kallsyms: facts.kallsyms.has_function(symbol),
            btf: facts.btf_has_function(symbol),
            traceable: facts.traceable(symbol),
            method: None,
            attached: false,
            reason: None,
        }
    }
}

/// True when a sync point (`arch_sync_kernel_mappings` or `sync_global_pgds`) is attached.
pub fn any_sync_attached(statuses: &[TargetStatus]) -> bool {
    statuses.iter().any(|s| s.attached && s.target.is_sync())
}

//! Kernel stacks as records carry them: frames as `symbol+0xoff` (or
//! `symbol+0xoff [module]`), innermost first, or `0x…` where no symbol
//! is known.

/// The function of a frame: `vmemmap_populate` of `vmemmap_populate+0x1f4`.
pub fn function_of(frame: &str) -> &str {
    // A byte scan: both separators are ASCII (a char-set split was the
    // costliest step of classifying a stack).
    let end = frame
        .bytes()
        .position(|b| b == b'+' || b == b' ')
        .unwrap_or(frame.len());
    &frame[..end]
}

/// A frame the probe itself adds on top of the traced call: the BPF
/// program and its trampoline (not in kallsyms, or `bpf_trampoline_*`) and
/// ftrace's trampoline.
pub fn is_tracing_frame(frame: &str) -> bool {
    let f = function_of(frame);
    f.starts_with("0x") || f.starts_with("bpf_trampoline") || f.starts_with("ftrace_trampoline")
}

/// The sync functions, which are themselves traced (with the 5- and 4-level
/// halves `sync_global_pgds()` calls): never the caller of a sync.
pub fn is_traced_function(function: &str) -> bool {
    matches!(
        function,
        "arch_sync_kernel_mappings"
            | "sync_global_pgds"
            | "sync_global_pgds_l4"
            | "sync_global_pgds_l5"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(
            function_of("st_populate_write+0x40 [st_populate]"),
            "st_populate_write"
        );
        assert!(is_tracing_frame("0xffffffffc0001234"));
        assert!(is_tracing_frame("bpf_trampoline_6442+0x40"));
        assert!(is_tracing_frame("ftrace_trampoline+0x1b"));
        assert!(!is_tracing_frame("vmemmap_populate+0x1f4"));
        assert!(is_traced_function("sync_global_pgds_l4"));
    }
}

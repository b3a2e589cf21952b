//! Which kernel code path called a sync, from its stack: a short, bounded
//! set of names, suitable as a metrics label.

use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

use super::stack::{function_of, is_traced_function, is_tracing_frame};

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    IntoStaticStr,
    EnumString,
    VariantNames,
    EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum Caller {
    /// `pgd_populate_kernel()`/`p4d_populate_kernel()` (macros) inside the
    /// vmemmap, KASAN or percpu populate functions: `arch_sync_kernel_mappings(a, a)`.
    PopulateHelper,
    /// The direct map: `__kernel_physical_mapping_init()` (hot-add, boot).
    DirectMap,
    /// `vmemmap_populate()`'s unconditional closing sync.
    Vmemmap,
    /// vmap/ioremap/apply_to_page_range mask syncs.
    Vmalloc,
    Other,
}

named!(Caller);

/// Populate functions that contain the `*_populate_kernel()` macros
/// (docs/kernel.md).
const HELPER_CALLERS: [&str; 5] = [
    "vmemmap_p4d_populate",
    "vmemmap_pgd_populate",
    "zero_p4d_populate",
    "kasan_populate_early_shadow",
    "pcpu_populate_pte",
];

fn class_of(frame: &str, helper_range: bool) -> Option<Caller> {
    if is_tracing_frame(frame) {
        return None;
    }
    // Without a clone suffix (`.isra.0`, `.constprop.0`).
    let name = function_of(frame).split('.').next().unwrap_or(frame);
    if is_traced_function(name) {
        return None;
    }
    if helper_range && HELPER_CALLERS.contains(&name) {
        return Some(Caller::PopulateHelper);
    }
    if name.contains("kernel_physical_mapping")
        || name.starts_with("phys_")
        || name == "init_memory_mapping"
    {
        return Some(Caller::DirectMap);
    }
    if name.starts_with("vmemmap_") || name.contains("populate_section_memmap") {
        return Some(Caller::Vmemmap);
    }
    if name.contains("vmap")
        || name.contains("vunmap")
        || name.contains("ioremap")
        || name.contains("vmalloc")
        || name.contains("apply_to_page_range")
    {
        return Some(Caller::Vmalloc);
    }
    None
}

/// Classifies a sync from its symbolized stack (innermost frame first): the
/// innermost frame that belongs to a known path decides. `helper_range` is
/// `start == end`, the signature of the populate helpers.
///
/// `start == end` with no known path in the stack is still the helper form
/// (no other kernel caller passes it): code outside the known populate
/// functions doing what `p4d_populate_kernel()` does.
pub fn classify<S: AsRef<str>>(frames: &[S], helper_range: bool) -> Caller {
    frames
        .iter()
        .find_map(|f| class_of(f.as_ref(), helper_range))
        .unwrap_or(if helper_range {
            Caller::PopulateHelper
        } else {
            Caller::Other
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_sync_from_vmemmap_p4d() {
        let s = [
            "arch_sync_kernel_mappings+0x4",
            "vmemmap_p4d_populate+0x6b",
            "vmemmap_populate_address+0x50",
            "vmemmap_populate+0x120",
        ];
        assert_eq!(classify(&s, true), Caller::PopulateHelper);
        // Without start == end the same frames are the vmemmap path.
        assert_eq!(classify(&s, false), Caller::Vmemmap);
    }

    #[test]
    fn direct_map_and_vmemmap_closing_sync() {
        let d = [
            "sync_global_pgds+0x0",
            "__kernel_physical_mapping_init+0x2f0",
            "init_memory_mapping+0x1a0",
        ];
        assert_eq!(classify(&d, false), Caller::DirectMap);
        let v = [
            "bpf_trampoline_6442+0x40",
            "vmemmap_populate+0x1f4",
            "__populate_section_memmap+0x40",
        ];
        assert_eq!(classify(&v, false), Caller::Vmemmap);
    }

    #[test]
    fn vmalloc_and_other() {
        assert_eq!(
            classify(&["__apply_to_page_range+0x400"], false),
            Caller::Vmalloc
        );
        assert_eq!(classify(&["do_syscall_64+0x30"], false), Caller::Other);
        assert_eq!(classify::<&str>(&[], false), Caller::Other);
        assert_eq!(
            classify(&["st_populate_write+0x40 [st_populate]"], true),
            Caller::PopulateHelper
        );
    }
}

//! What a walk of pgd_list needs from the kernel's BTF (CO-RE), and the
//! check that the relocations were really applied.

use sync_trace_common::raw::{self, RawScan};

/// The CO-RE facts a walk needs that the kernel's BTF lacks, by name.
pub fn missing_core(core: u32) -> Vec<&'static str> {
    let ptdesc = core & raw::CORE_PTDESC != 0;
    [
        (raw::CORE_PAGE, "struct page"),
        (
            raw::CORE_LIST,
            if ptdesc {
                "struct ptdesc field pt_list"
            } else {
                "struct page field lru"
            },
        ),
        (
            raw::CORE_PT_MM,
            if ptdesc {
                "struct ptdesc field pt_mm"
            } else {
                "struct page field pt_mm"
            },
        ),
        (raw::CORE_REFCOUNT, "struct page field _refcount"),
        (raw::CORE_MM_PGD, "struct mm_struct field pgd"),
    ]
    .into_iter()
    .filter(|(bit, _)| core & bit == 0)
    .map(|(_, name)| name)
    .collect()
}

/// Offsets and sizes from CO-RE that no x86_64 kernel has: a relocation
/// that was not applied (the local definitions are deliberately smaller).
pub fn implausible_layout(r: &RawScan) -> Option<String> {
    let size = r.page_size;
    let ok = size >= 64
        && size.is_multiple_of(8)
        // In u64: offsets come from the kernel and may be anything.
        && u64::from(r.list_off) + 8 <= u64::from(size)
        && u64::from(r.pt_mm_off) + 8 <= u64::from(size)
        && u64::from(r.refcount_off) + 4 <= u64::from(size)
        && r.mm_pgd_off.is_multiple_of(8)
        && r.mm_pgd_off < 4096;
    (!ok).then(|| {
        format!(
            "CO-RE gave an impossible struct page layout (size {size}, list link at {}, pt_mm at {}, _refcount at {}, mm_struct.pgd at {}): the kernel's BTF was not applied; refusing to walk pgd_list from wrong addresses",
            r.list_off, r.pt_mm_off, r.refcount_off, r.mm_pgd_off
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_core_lacks() {
        assert!(missing_core(raw::CORE_NEEDED).is_empty());
        assert_eq!(
            missing_core(raw::CORE_NEEDED & !raw::CORE_MM_PGD),
            vec!["struct mm_struct field pgd"]
        );
        assert_eq!(
            missing_core(raw::CORE_PTDESC | raw::CORE_PAGE | raw::CORE_REFCOUNT),
            vec![
                "struct ptdesc field pt_list",
                "struct ptdesc field pt_mm",
                "struct mm_struct field pgd"
            ]
        );
    }

    #[test]
    fn refuses_unrelocated_layouts() {
        let mut r = RawScan::zeroed();
        (
            r.page_size,
            r.list_off,
            r.pt_mm_off,
            r.refcount_off,
            r.mm_pgd_off,
        ) = (64, 8, 32, 52, 0x48);
        assert!(implausible_layout(&r).is_none());
        // What the local definitions give when no relocation was applied.
        (
            r.page_size,
            r.list_off,
            r.pt_mm_off,
            r.refcount_off,
            r.mm_pgd_off,
        ) = (24, 0, 16, 8, 0);
        assert!(implausible_layout(&r).is_some());
    }
}

//! What the kernel programs trace (`enum st_target`) and how.

use serde::{Deserialize, Serialize};

use crate::Layout;

/// A traced kernel function. The numbers are `enum st_target` in events.h.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `arch_sync_kernel_mappings(start, end)`; `start == end` from the
    /// `pgd_populate_kernel()`/`p4d_populate_kernel()` macros.
    ArchSyncKernelMappings = 0,
    /// `sync_global_pgds(start, end)`, end inclusive.
    SyncGlobalPgds = 1,
    /// `vmemmap_pgd_populate(addr, node)` (5-level top level).
    VmemmapPgdPopulate = 2,
    /// `vmemmap_p4d_populate(pgd, addr, node)` (4-level top level).
    VmemmapP4dPopulate = 3,
    /// `pgd_populate_kernel(addr, pgd, p4d)` where a kernel has it as a function.
    PgdPopulateKernel = 4,
    /// `p4d_populate_kernel(addr, p4d, pud)` likewise.
    P4dPopulateKernel = 5,
    /// `init_memory_mapping(start, end, prot)`: maps physical `[start, end)`
    /// into the direct map, creating top-level entries where needed (the
    /// populating code below it is notrace on 6.1). Its entry bounds when a
    /// direct-map population can have happened.
    InitMemoryMapping = 6,
    /// `__populate_section_memmap(pfn, nr_pages, nid, altmap, pgmap)`: makes
    /// the memory map (`struct page`s) of physical pages `[pfn, pfn +
    /// nr_pages)`, populating vmemmap top-level entries where needed. Every
    /// vmemmap population after boot goes through it (hot-add, devmap, the
    /// compound path); notrace on 6.1, traceable from 6.11. Where it is
    /// attached, the per-page `vmemmap_pgd_populate`/`vmemmap_p4d_populate`
    /// below it are not (one probe pair per section instead of one per page).
    #[serde(rename = "__populate_section_memmap")]
    PopulateSectionMemmap = 7,
}

impl Target {
    /// Every target, in attach order.
    pub const ALL: [Target; 8] = [
        Target::ArchSyncKernelMappings,
        Target::SyncGlobalPgds,
        Target::VmemmapPgdPopulate,
        Target::VmemmapP4dPopulate,
        Target::PgdPopulateKernel,
        Target::P4dPopulateKernel,
        Target::InitMemoryMapping,
        Target::PopulateSectionMemmap,
    ];

    pub fn from_raw(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// The kernel symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Target::ArchSyncKernelMappings => "arch_sync_kernel_mappings",
            Target::SyncGlobalPgds => "sync_global_pgds",
            Target::VmemmapPgdPopulate => "vmemmap_pgd_populate",
            Target::VmemmapP4dPopulate => "vmemmap_p4d_populate",
            Target::PgdPopulateKernel => "pgd_populate_kernel",
            Target::P4dPopulateKernel => "p4d_populate_kernel",
            Target::InitMemoryMapping => "init_memory_mapping",
            Target::PopulateSectionMemmap => "__populate_section_memmap",
        }
    }

    /// The enumerator in events.h.
    pub fn c_name(self) -> &'static str {
        match self {
            Target::ArchSyncKernelMappings => "ST_TARGET_ARCH_SYNC_KERNEL_MAPPINGS",
            Target::SyncGlobalPgds => "ST_TARGET_SYNC_GLOBAL_PGDS",
            Target::VmemmapPgdPopulate => "ST_TARGET_VMEMMAP_PGD_POPULATE",
            Target::VmemmapP4dPopulate => "ST_TARGET_VMEMMAP_P4D_POPULATE",
            Target::PgdPopulateKernel => "ST_TARGET_PGD_POPULATE_KERNEL",
            Target::P4dPopulateKernel => "ST_TARGET_P4D_POPULATE_KERNEL",
            Target::InitMemoryMapping => "ST_TARGET_INIT_MEMORY_MAPPING",
            Target::PopulateSectionMemmap => "ST_TARGET_POPULATE_SECTION_MEMMAP",
        }
    }

    /// A sync point: copies kernel top-level entries into every PGD.
    pub fn is_sync(self) -> bool {
        matches!(
            self,
            Target::ArchSyncKernelMappings | Target::SyncGlobalPgds
        )
    }

    /// A call names a range (`init_memory_mapping`'s physical one, a
    /// section's memory map), not one address.
    pub fn has_range(self) -> bool {
        matches!(
            self,
            Target::InitMemoryMapping | Target::PopulateSectionMemmap
        )
    }

    /// The per-page vmemmap populate functions, which the section-wide
    /// `__populate_section_memmap` covers.
    pub fn is_per_page_vmemmap(self) -> bool {
        matches!(
            self,
            Target::VmemmapPgdPopulate | Target::VmemmapP4dPopulate
        )
    }

    /// `(start, end)` of a sync, `(addr, addr)` of a populate call, the
    /// physical `(start, end)` of `init_memory_mapping`, or the memory map's
    /// virtual `[start, end)` of `__populate_section_memmap`
    /// ([`Layout::memmap_range`]), from the raw arguments.
    pub fn range_in(self, args: &[u64; 3], layout: &Layout) -> (u64, u64) {
        match self {
            Target::PopulateSectionMemmap => layout.memmap_range(args[0], args[1]),
            _ => self.range(args),
        }
    }

    /// [`Target::range_in`] of the targets whose range needs no layout; the
    /// raw `(pfn, nr_pages)` of `__populate_section_memmap`.
    pub fn range(self, args: &[u64; 3]) -> (u64, u64) {
        match self {
            Target::PopulateSectionMemmap => (args[0], args[1]),
            Target::ArchSyncKernelMappings | Target::SyncGlobalPgds | Target::InitMemoryMapping => {
                (args[0], args[1])
            }
            Target::VmemmapPgdPopulate | Target::PgdPopulateKernel | Target::P4dPopulateKernel => {
                (args[0], args[0])
            }
            Target::VmemmapP4dPopulate => (args[1], args[1]),
        }
    }
}

/// Entry or exit record (`enum st_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Entry,
    Exit,
}

impl Kind {
    pub fn from_raw(v: u8) -> Option<Self> {
        match v {
            1 => Some(Kind::Entry),
            2 => Some(Kind::Exit),
            _ => None,
        }
    }
}

/// How a program was attached (`enum st_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// fentry/fexit through a BPF trampoline.
    Fentry,
    /// kprobe/kretprobe.
    Kprobe,
}

impl Method {
    pub fn from_raw(v: u8) -> Option<Self> {
        match v {
            1 => Some(Method::Fentry),
            2 => Some(Method::Kprobe),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Fentry => "fentry",
            Method::Kprobe => "kprobe",
        }
    }
}

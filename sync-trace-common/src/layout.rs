//! The x86_64 kernel virtual layout as the running kernel has it: paging
//! mode, top-level slot arithmetic and regions (docs/kernel.md).

use serde::{Deserialize, Serialize};

/// Bits of virtual address translated below the top level: `PGDIR_SHIFT`.
const SHIFT_4LEVEL: u32 = 39; // one top-level entry maps 512 GiB
const SHIFT_5LEVEL: u32 = 48; // one top-level entry maps 256 TiB

/// `CPU_ENTRY_AREA_BASE`, fixed in both paging modes (pgtable_64_types.h).
const CPU_ENTRY_AREA_BASE: u64 = 0xffff_fe00_0000_0000;
/// KASAN shadow: `KASAN_SHADOW_START`..`KASAN_SHADOW_END` per mode
/// (Documentation/arch/x86/x86_64/mm.rst); only KASAN kernels map it.
const KASAN_4LEVEL: (u64, u64) = (0xffff_ec00_0000_0000, 0xffff_fc00_0000_0000);
const KASAN_5LEVEL: (u64, u64) = (0xffdf_0000_0000_0000, 0xffff_fc00_0000_0000);
/// Size of the vmemmap region KASLR reserves for a 64 TB (4-level) or
/// 4 PB (5-level) direct map: 64 bytes of `struct page` per 4 KiB page.
const VMEMMAP_SIZE_4LEVEL: u64 = 1 << 40;
const VMEMMAP_SIZE_5LEVEL: u64 = 1 << 46;

/// Paging mode of the running kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Paging {
    #[serde(rename = "4")]
    Four,
    #[serde(rename = "5")]
    Five,
}

impl Paging {
    /// The top level, as Linux names it in this mode.
    pub fn level(self) -> Level {
        match self {
            Paging::Four => Level::P4d,
            Paging::Five => Level::Pgd,
        }
    }

    /// The number of levels: 4 or 5.
    pub fn levels(self) -> u8 {
        match self {
            Paging::Four => 4,
            Paging::Five => 5,
        }
    }
}

/// Which page-table level a top-level slot is, in Linux's words: under
/// 4-level the P4D is folded into the PGD, so the hardware top level is
/// written with `p4d_populate()`; under 5-level it is the PGD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Pgd,
    P4d,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Pgd => "pgd",
            Level::P4d => "p4d",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    DirectMap,
    Vmalloc,
    Vmemmap,
    Kasan,
    CpuEntryArea,
    Other,
}

impl Region {
    pub const ALL: [Region; 6] = [
        Region::DirectMap,
        Region::Vmalloc,
        Region::Vmemmap,
        Region::Kasan,
        Region::CpuEntryArea,
        Region::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Region::DirectMap => "direct_map",
            Region::Vmalloc => "vmalloc",
            Region::Vmemmap => "vmemmap",
            Region::Kasan => "kasan",
            Region::CpuEntryArea => "cpu_entry_area",
            Region::Other => "other",
        }
    }
}

/// The live layout: read from the kernel's `page_offset_base`,
/// `vmalloc_base`, `vmemmap_base` and `pgdir_shift`, so KASLR is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub paging: Paging,
    pub page_offset_base: u64,
    pub vmalloc_base: u64,
    pub vmemmap_base: u64,
    /// The kernel has KASAN, so its shadow region is mapped.
    #[serde(default)]
    pub kasan: bool,
    /// `sizeof(struct page)` from the kernel's BTF (64 on most builds), when
    /// known: the memory map of pfn `p` is at `vmemmap_base + p * size`.
    #[serde(default)]
    pub struct_page: Option<u64>,
}

impl Layout {
    pub fn new(
        pgdir_shift: u32,
        page_offset_base: u64,
        vmalloc_base: u64,
        vmemmap_base: u64,
    ) -> Self {
        let paging = if pgdir_shift == SHIFT_5LEVEL {
            Paging::Five
        } else {
            Paging::Four
        };
        Self {
            paging,
            page_offset_base,
            vmalloc_base,
            vmemmap_base,
            kasan: false,
            struct_page: None,
        }
    }

    /// The same layout with `sizeof(struct page)` known (or not).
    pub fn with_struct_page(mut self, size: Option<u64>) -> Self {
        self.struct_page = size;
        self
    }

    /// The vmemmap region: `vmemmap_base` and the size KASLR reserves.
    pub fn vmemmap_region(&self) -> (u64, u64) {
        let size = match self.paging {
            Paging::Four => VMEMMAP_SIZE_4LEVEL,
            Paging::Five => VMEMMAP_SIZE_5LEVEL,
        };
        (self.vmemmap_base, self.vmemmap_base.saturating_add(size))
    }

    /// The virtual `[start, end)` of the memory map (`struct page`s) of
    /// physical pages `[pfn, pfn + nr_pages)`. Without `sizeof(struct
    /// page)` it is unknown: then the whole vmemmap region, so that no
    /// slot the call may populate is left out.
    pub fn memmap_range(&self, pfn: u64, nr_pages: u64) -> (u64, u64) {
        let (base, region_end) = self.vmemmap_region();
        match self.struct_page {
            Some(size) => {
                let at = |p: u64| base.saturating_add(p.saturating_mul(size));
                (at(pfn), at(pfn.saturating_add(nr_pages)))
            }
            None => (base, region_end),
        }
    }

    /// The same layout on a KASAN kernel (or not).
    pub fn with_kasan(mut self, kasan: bool) -> Self {
        self.kasan = kasan;
        self
    }

    pub fn shift(&self) -> u32 {
        match self.paging {
            Paging::Four => SHIFT_4LEVEL,
            Paging::Five => SHIFT_5LEVEL,
        }
    }

    /// The top level, as Linux names it in this mode.
    pub fn level(&self) -> Level {
        self.paging.level()
    }

    /// Top-level slot of a virtual address.
    pub fn slot(&self, va: u64) -> usize {
        ((va >> self.shift()) & 511) as usize
    }

    /// First virtual address of a slot, sign-extended to canonical form.
    pub fn slot_addr(&self, slot: usize) -> u64 {
        let shift = self.shift();
        let va = (slot as u64 & 511) << shift;
        let top_bit = shift + 8; // bit 47 (4-level) or 56 (5-level)
        if va >> top_bit & 1 == 1 {
            va | !((1u64 << (top_bit + 1)) - 1)
        } else {
            va
        }
    }

    /// `KERNEL_PGD_BOUNDARY` = `pgd_index(PAGE_OFFSET)`: slots below it (the
    /// guard hole, the LDT remap) are not cloned into process PGDs.
    pub fn kernel_boundary(&self) -> usize {
        self.slot(self.page_offset_base)
    }

    /// Region of a virtual address.
    pub fn region_of(&self, va: u64) -> Region {
        let kasan = match self.paging {
            Paging::Four => KASAN_4LEVEL,
            Paging::Five => KASAN_5LEVEL,
        };
        let (vmemmap, vmemmap_end) = self.vmemmap_region();
        if va >= self.page_offset_base && va < self.vmalloc_base {
            Region::DirectMap
        } else if va >= self.vmalloc_base && va < self.vmemmap_base {
            Region::Vmalloc
        } else if va >= vmemmap && va < vmemmap_end {
            Region::Vmemmap
        } else if self.kasan && va >= kasan.0 && va < kasan.1 {
            Region::Kasan
        } else if self.slot(va) == self.slot(CPU_ENTRY_AREA_BASE) && self.paging == Paging::Four {
            Region::CpuEntryArea
        } else {
            Region::Other
        }
    }

    /// Region of a slot: of its first address, or of the region base that
    /// lies inside it (KASLR aligns bases to 1 GiB, not to a slot).
    pub fn region_of_slot(&self, slot: usize) -> Region {
        for base in [self.vmemmap_base, self.vmalloc_base, self.page_offset_base] {
            if self.slot(base) == slot {
                return self.region_of(base);
            }
        }
        self.region_of(self.slot_addr(slot))
    }

    /// Slots a sync of `[start, end]` (inclusive) covers, as `(first, last)`.
    pub fn slots_of(&self, start: u64, end: u64) -> (usize, usize) {
        (self.slot(start), self.slot(end.max(start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four() -> Layout {
        Layout::new(
            39,
            0xffff888000000000,
            0xffffc90000000000,
            0xffffea0000000000,
        )
    }

    fn five() -> Layout {
        Layout::new(
            48,
            0xff11000000000000,
            0xffa0000000000000,
            0xffd4000000000000,
        )
    }

    #[test]
    fn four_level_slots() {
        let l = four();
        assert_eq!(l.kernel_boundary(), 273);
        assert_eq!(l.slot(0xffffea8000000000), 469);
        assert_eq!(l.slot_addr(469), 0xffffea8000000000);
        assert_eq!(l.slot_addr(274), 0xffff890000000000);
        assert_eq!(l.slot_addr(1), 0x0000008000000000);
        assert_eq!(l.region_of_slot(469), Region::Vmemmap);
        assert_eq!(l.region_of_slot(337), Region::DirectMap);
        assert_eq!(l.region_of_slot(402), Region::Vmalloc);
        assert_eq!(l.region_of_slot(508), Region::CpuEntryArea);
        // The shadow range is KASAN's only on a KASAN kernel.
        assert_eq!(l.region_of_slot(480), Region::Other);
        assert_eq!(l.with_kasan(true).region_of_slot(480), Region::Kasan);
        assert_eq!(l.region_of_slot(467), Region::Vmalloc);
        assert_eq!(l.level(), Level::P4d);
        assert_eq!(
            l.slots_of(0xffff890000000000, 0xffff890007ffffff),
            (274, 274)
        );
    }

    #[test]
    fn five_level_slots() {
        let l = five();
        assert_eq!(l.kernel_boundary(), 273);
        assert_eq!(l.slot_addr(273), 0xff11000000000000);
        assert_eq!(l.slot(0xffd4000000000000), 468);
        assert_eq!(l.region_of_slot(468), Region::Vmemmap);
        assert_eq!(l.level(), Level::Pgd);
    }

    #[test]
    fn memory_map_of_a_pfn_range() {
        // 128 MiB at 32 TiB: 32768 pages of 64-byte struct pages, 2 MiB in slot 469.
        let l = four().with_struct_page(Some(64));
        let (a, b) = l.memmap_range(1 << 33, 32768);
        assert_eq!((a, b), (0xffffea8000000000, 0xffffea8000200000));
        assert_eq!(l.slots_of(a, b - 1), (469, 469));
        // Unknown size: the whole region, both of its slots.
        let (a, b) = four().memmap_range(1 << 33, 32768);
        assert_eq!((a, b), (0xffffea0000000000, 0xffffeb0000000000));
        assert_eq!(four().slots_of(a, b - 1), (468, 469));
    }

    #[test]
    fn kaslr_bases_inside_a_slot() {
        // page_offset_base 1 GiB-aligned, mid-slot (KASLR).
        let l = Layout::new(
            39,
            0xffff9a0b40000000,
            0xffffb0c2c0000000,
            0xffffe44a00000000,
        );
        let s = l.slot(0xffff9a0b40000000);
        assert_eq!(l.kernel_boundary(), s);
        assert_eq!(l.region_of_slot(s), Region::DirectMap);
        assert_eq!(
            l.region_of_slot(l.slot(0xffffe44a00000000)),
            Region::Vmemmap
        );
    }
}

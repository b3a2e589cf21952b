//! The address plan: where the host plugs memory, and which kernel top-level entries
//! that must create.

use super::HotplugPath;
use crate::mem::{HotAdd, VirtioMem};
use std::collections::BTreeSet;
use sync_trace::record::LayoutRecord;
use sync_trace_common::Paging;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The address plan. Under 4-level paging one top-level entry maps 512 GiB (2^39) of
/// virtual space. The direct map is physical 1:1 from 0xffff888000000000 (slot 273,
/// nokaslr), so physical [N·512 GiB, (N+1)·512 GiB) needs slot 273+N; boot RAM (1 GiB)
/// has slot 273. vmemmap holds a 64-byte struct page per 4 KiB page, 1/64 of the physical
/// span, so one entry covers 64 × 512 GiB = 32 TiB of physical memory: slot 468 (from
/// 0xffffea0000000000) for [0, 32 TiB), slot 469 for [32 TiB, 64 TiB) — the last one, as
/// 4-level x86_64 addresses at most 64 TiB (MAX_PHYSMEM_BITS 46).
///
/// - DIMM at 1 TiB: direct-map slot 275 (vmemmap in 468).
/// - DIMM at 32.5 TiB: direct-map slot 338; vmemmap slot 469 unless the NVDIMM made it.
/// - virtio-mem at 512 GiB, 1 GiB (eight 128 MiB blocks): direct-map slot 274.
/// - NVDIMM at 32 TiB, 256 MiB: direct-map slot 337 and vmemmap slot 469.
///
/// Under 5-level paging a top-level (PGD) entry maps 256 TiB (2^48): the direct map at
/// 0xff11000000000000 has slot 273 for physical [0, 256 TiB), and the vmemmap at
/// 0xffd4000000000000 has slot 468 for physical [0, 256 TiB × 64 = 16 PiB): every range
/// here lands in entries boot RAM already has, so the plan creates none (the new P4D
/// entries are one level down, in tables all PGDs share).
pub const DIMMS: [HotAdd; 2] = [
    HotAdd {
        addr: TIB,
        size: 128 * MIB,
    },
    HotAdd {
        addr: 32 * TIB + 512 * GIB,
        size: 128 * MIB,
    },
];
pub const VMEM: VirtioMem = VirtioMem {
    addr: 512 * GIB,
    size: GIB,
    requested: GIB,
};
pub const NVDIMM: HotAdd = HotAdd {
    addr: 32 * TIB,
    size: 256 * MIB,
};
/// Boot RAM (VmSpec's default): its entries exist before anything is plugged.
const BOOT_RAM: HotAdd = HotAdd { addr: 0, size: GIB };

/// The kernel top-level slots (region, slot) that map a physical range's direct map and
/// vmemmap, nokaslr.
pub fn slots_of(l: &Layout, r: HotAdd) -> Slots {
    let slot = |va: u64| (va >> l.shift) & 511;
    let mut s = BTreeSet::new();
    let end = r.addr + r.size;
    for x in slot(l.direct + r.addr)..=slot(l.direct + end - 1) {
        s.insert(("direct_map", x));
    }
    let (v0, v1) = (
        l.vmemmap + r.addr / 4096 * 64,
        l.vmemmap + end / 4096 * 64 - 1,
    );
    for x in slot(v0)..=slot(v1) {
        s.insert(("vmemmap", x));
    }
    s
}

/// Top-level entries by (region, slot number).
pub type Slots = BTreeSet<(&'static str, u64)>;

/// The guest's region bases and the top-level slots present before the plan.
#[derive(Debug, Clone)]
pub struct Layout {
    pub direct: u64,
    pub vmemmap: u64,
    /// log2 of what one top-level entry maps: 39 (4-level), 48 (5-level).
    pub shift: u32,
    /// Kernel slots present at start (the `layout` record); `None`: those of boot RAM.
    pub present: Option<BTreeSet<u64>>,
}

impl Layout {
    /// The fixed bases of a nokaslr boot.
    pub fn nokaslr(paging: u8) -> Layout {
        let (direct, vmemmap, shift) = match paging {
            5 => (0xff11_0000_0000_0000, 0xffd4_0000_0000_0000, 48),
            _ => (0xffff_8880_0000_0000, 0xffff_ea00_0000_0000, 39),
        };
        Layout {
            direct,
            vmemmap,
            shift,
            present: None,
        }
    }

    /// From a `layout` record of `sync-trace run --json` (the guest's bases under KASLR
    /// too).
    pub fn of(l: &LayoutRecord) -> Layout {
        Layout {
            direct: l.page_offset_base.0,
            vmemmap: l.vmemmap_base.0,
            shift: match l.paging {
                Paging::Five => 48,
                Paging::Four => 39,
            },
            present: Some(l.present.iter().map(|&s| s as u64).collect()),
        }
    }
}

/// What the plan should populate: (during the traced NVDIMM setup, during `stress`).
pub fn expected(l: &Layout, paths: &[HotplugPath]) -> (Slots, Slots) {
    let mut have: BTreeSet<u64> = match &l.present {
        Some(p) => p.clone(),
        None => slots_of(l, BOOT_RAM).iter().map(|x| x.1).collect(),
    };
    let new = |r: HotAdd, have: &mut BTreeSet<u64>| {
        let s: Slots = slots_of(l, r)
            .into_iter()
            .filter(|x| !have.contains(&x.1))
            .collect();
        have.extend(s.iter().map(|x| x.1));
        s
    };
    let setup = if paths.contains(&HotplugPath::Nvdimm) {
        new(NVDIMM, &mut have)
    } else {
        BTreeSet::new()
    };
    let mut during = BTreeSet::new();
    // Cycle 1 creates them all; later cycles reuse the same addresses and entries stay.
    if paths.contains(&HotplugPath::Dimm) {
        for d in DIMMS {
            during.extend(new(d, &mut have));
        }
    }
    if paths.contains(&HotplugPath::VirtioMem) {
        during.extend(new(VMEM.range(), &mut have));
    }
    (setup, during)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_crosses_the_boundaries() {
        let all = [
            HotplugPath::Dimm,
            HotplugPath::VirtioMem,
            HotplugPath::Nvdimm,
        ];
        let (setup, during) = expected(&Layout::nokaslr(4), &all);
        assert_eq!(
            setup,
            [("direct_map", 337), ("vmemmap", 469)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            during,
            [
                ("direct_map", 274),
                ("direct_map", 275),
                ("direct_map", 338)
            ]
            .into_iter()
            .collect()
        );
        // Without the NVDIMM the DIMM at 32.5 TiB opens the vmemmap entry.
        let (_, d) = expected(&Layout::nokaslr(4), &[HotplugPath::Dimm]);
        assert!(d.contains(&("vmemmap", 469)) && d.len() == 3);
        // 5-level: all inside the boot entries.
        let (s5, d5) = expected(&Layout::nokaslr(5), &all);
        assert!(s5.is_empty() && d5.is_empty());
        // KASLR: the bases and present slots of the record (a 6.12 guest's).
        let rec = r#"{"ts_ns":1,"kernel":"6.12.117+deb12-cloud-amd64","paging":"4","page_offset_base":"0xffff8e6e40000000","vmalloc_base":"0xffffb0f940000000","vmemmap_base":"0xfffff95740000000","kernel_boundary":273,"present":[284,426,498,511]}"#;
        let l = Layout::of(&serde_json::from_str(rec).unwrap());
        let (s, d) = expected(&l, &all);
        assert_eq!(
            s,
            [("direct_map", 348), ("vmemmap", 499)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            d,
            [
                ("direct_map", 285),
                ("direct_map", 286),
                ("direct_map", 349)
            ]
            .into_iter()
            .collect()
        );
    }
}

//! Where hot-added memory can go: QEMU's device-memory window, `maxmem` and `phys-bits`.

use crate::mem::HotAdd;
use anyhow::{bail, Result};

pub(super) const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
/// DIMM slots: how many hot-adds one run can do.
pub const SLOTS: usize = 4;

/// `maxmem` and CPU `phys-bits` that make QEMU accept every DIMM of `hotadds` and let the
/// guest address every range of `others` (ranges no DIMM fills, virtio-mem's memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemLayout {
    pub maxmem: u64,
    /// `None`: qemu64's default of 40 bits (1 TiB) is enough.
    pub phys_bits: Option<u8>,
    /// Present the CPU as Intel so QEMU keeps device memory at 4 GiB (the
    /// HyperTransport-hole move applies to AMD models only). Needed when
    /// DIMMs below and above 1 TiB share one boot. The kernel then also sees
    /// a Meltdown-affected CPU and turns PTI on (8 KiB PGDs).
    pub intel_vendor: bool,
}

/// QEMU 7.2 puts device memory (where DIMMs go) at 4 GiB, right above boot RAM — unless, with
/// an AMD CPU model such as `qemu64`, the highest used address would reach the HyperTransport
/// hole below 1 TiB (~1012 GiB), in which case it moves the whole window to 1 TiB. So a DIMM
/// below 1 TiB needs a small `maxmem` (512 GiB → 600G; with 33T `device_add` is refused with
/// "usable range [0x10000000000:…]"), and a DIMM above 1 TiB needs `maxmem` ≥ its end
/// (32 TiB → 33T) and enough `phys-bits` for QEMU to accept that `maxmem`.
pub fn memory_layout(dimms: &[HotAdd], others: &[HotAdd]) -> Result<Option<MemLayout>> {
    if dimms.len() > SLOTS {
        bail!(
            "{} hot-adds requested but only {SLOTS} DIMM slots: use fewer --hotadd",
            dimms.len()
        );
    }
    let ranges: Vec<HotAdd> = dimms.iter().chain(others).copied().collect();
    let Some(top) = ranges.iter().map(|h| h.addr + h.size).max() else {
        return Ok(None);
    };
    if let Some(h) = ranges.iter().find(|h| h.addr < 4 * GIB) {
        bail!("hot-add at {:#x} is below 4 GiB, where QEMU's device memory starts: use a higher address", h.addr);
    }
    let low_max = 900 * GIB;
    let maxmem = (top + 64 * GIB).div_ceil(100 * GIB) * 100 * GIB;
    let low = ranges.iter().all(|h| h.addr < TIB);
    if low && maxmem <= low_max {
        return Ok(Some(MemLayout {
            maxmem,
            phys_bits: None,
            intel_vendor: false,
        }));
    }
    let mixed = ranges.iter().any(|h| h.addr < TIB);
    if let Some(h) = ranges
        .iter()
        .find(|h| h.addr < TIB && h.addr + h.size > 836 * GIB)
    {
        bail!(
            "hot-add at {:#x} reaches into the HyperTransport hole below 1 TiB that QEMU keeps free: use an address below ~836 GiB or at or above 1 TiB",
            h.addr
        );
    }
    let maxmem = top.div_ceil(TIB) * TIB;
    // Highest guest-physical address: window base (1 TiB, or 4 GiB with an Intel vendor) +
    // window + per-slot alignment + the 64-bit PCI hole; 64 GiB covers the latter two.
    let base = if mixed { 4 * GIB } else { TIB };
    let end = base + maxmem + 64 * GIB;
    let bits = (64 - (end - 1).leading_zeros()).max(40) as u8;
    Ok(Some(MemLayout {
        maxmem,
        phys_bits: (bits > 40).then_some(bits),
        intel_vendor: mixed,
    }))
}

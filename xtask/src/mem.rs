//! Guest memory beyond boot RAM as the user names it: DIMMs to hot-add and virtio-mem
//! devices (`ADDR:SIZE[:REQUESTED]`). Plain data, used by the spec (vm.rs) and the QEMU
//! command line (the qemu module).

use anyhow::{bail, Context, Result};
use std::str::FromStr;

/// One DIMM to plug when the guest script runs `hotadd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotAdd {
    /// Guest-physical address.
    pub addr: u64,
    pub size: u64,
}

impl HotAdd {
    pub fn size_text(&self) -> String {
        format!("{} MiB", self.size >> 20)
    }
}

/// A size with an optional K/M/G/T suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        Some('T' | 't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n = parse_u64(num).with_context(|| format!("bad size {s:?}: use e.g. 128M"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {s:?} overflows"))
}

fn parse_u64(s: &str) -> Result<u64> {
    Ok(
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16)?,
            None => s.parse()?,
        },
    )
}

impl FromStr for HotAdd {
    type Err = anyhow::Error;
    /// `ADDR:SIZE`, e.g. `0x200000000000:128M`.
    fn from_str(s: &str) -> Result<Self> {
        let (a, sz) = s.split_once(':').with_context(|| {
            format!("bad hot-add {s:?}: use ADDR:SIZE, e.g. 0x200000000000:128M")
        })?;
        let addr = parse_u64(a).with_context(|| format!("bad hot-add address {a:?}"))?;
        let size = parse_size(sz)?;
        // Memory hotplug works in 128 MiB sections on x86_64.
        let section = 128 << 20;
        if addr % section != 0 || size % section != 0 || size == 0 {
            bail!("hot-add {s:?}: address and size must be multiples of 128 MiB (the x86_64 section size)");
        }
        if addr.checked_add(size).is_none() {
            bail!("hot-add {s:?}: the range runs past the end of the address space");
        }
        Ok(HotAdd { addr, size })
    }
}

/// A virtio-mem device: `size` bytes of device memory at guest-physical `addr`, of which the
/// device asks the guest to plug `requested` as soon as its driver (the `virtio_mem` module)
/// loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMem {
    pub addr: u64,
    pub size: u64,
    pub requested: u64,
}

impl VirtioMem {
    /// The device memory, as the hot-add layout sees it.
    pub fn range(&self) -> HotAdd {
        HotAdd {
            addr: self.addr,
            size: self.size,
        }
    }
}

impl FromStr for VirtioMem {
    type Err = anyhow::Error;
    /// `ADDR:SIZE:REQUESTED`, e.g. `0x8000000000:2G:1G`.
    fn from_str(s: &str) -> Result<Self> {
        let (range, req) = s.rsplit_once(':').with_context(|| {
            format!("bad virtio-mem {s:?}: use ADDR:SIZE:REQUESTED, e.g. 0x8000000000:2G:1G")
        })?;
        let HotAdd { addr, size } = range.parse()?;
        let requested = parse_size(req)?;
        if requested > size || requested % (128 << 20) != 0 {
            bail!(
                "virtio-mem {s:?}: the requested size must be a multiple of 128 MiB, at most SIZE"
            );
        }
        Ok(VirtioMem {
            addr,
            size,
            requested,
        })
    }
}

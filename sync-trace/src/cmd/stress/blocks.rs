//! Memory blocks under /sys/devices/system/memory: which ones to cycle, and
//! the writes that offline and online one.
//!
//! The attributes (drivers/base/memory.c):
//! - `block_size_bytes` (directory level): the block size, in hex without `0x`.
//! - `memoryN/state`: reads `online`, `offline` or `going-offline`; takes
//!   `online`, `online_kernel`, `online_movable` or `offline` (`state_store()`
//!   → `memory_block_change_state()`; offlining is `offline_pages()`, which
//!   fails with EBUSY when it cannot migrate or isolate every page: a normal
//!   outcome, recorded as `busy`; EINVAL, for a block that spans zones or has
//!   holes such as memory0, is recorded as `refused`).
//! - `memoryN/online`: the driver core's `online` attribute
//!   (drivers/base/core.c `online_store()` → `device_offline()`/`device_online()`),
//!   `0`/`1`; used only where `state` is absent.
//! - `memoryN/removable`: `0` when the kernel knows the block cannot be
//!   removed. Since Linux 5.10 (`removable_show()` lost
//!   `is_mem_section_removable()`) it reads `1` always, and newer kernels may
//!   omit it: a block is offlinable only if offlining succeeds.
//! - `memoryN/valid_zones`: of an online block, the zone it is in
//!   (`Normal`, `Movable`, ...); of an offline one, the zones it may go to.

use serde::{Deserialize, Serialize};

use super::sysfs::{SysfsRoot, WriteError};

pub const MEMORY: &str = "devices/system/memory";

/// What `--blocks` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockSpec {
    /// No `--blocks`: the online blocks in ZONE_MOVABLE, which exist to be
    /// offlined (hot-added memory onlined movable, `movablecore=`).
    Movable,
    /// `--blocks all-offlinable`: every online block the kernel does not
    /// mark non-removable (offlining decides the rest).
    AllOfflinable,
    /// `--blocks 32,33,40-47`.
    List(Vec<u64>),
    /// `--blocks none`: memory blocks are not cycled (only `--dax`).
    None,
}

/// Parses `--blocks`: `all-offlinable`, `none`, or numbers and ranges.
pub fn parse_blocks(s: &str) -> Result<BlockSpec, String> {
    match s.trim() {
        "all-offlinable" => return Ok(BlockSpec::AllOfflinable),
        "none" => return Ok(BlockSpec::None),
        _ => {}
    }
    let mut ids = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| {
            let t = t.trim().trim_start_matches("memory");
            t.parse::<u64>()
                .map_err(|_| format!("{t:?} is not a memory block number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("{part:?}: the range is backwards"));
                }
                ids.extend(a..=b);
            }
            None => ids.push(num(part)?),
        }
    }
    if ids.is_empty() {
        return Err("give memory block numbers (32,40-47), all-offlinable or none".to_string());
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(BlockSpec::List(ids))
}

/// A memory block as found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub id: u64,
    pub online: bool,
    /// The zone it is in, when online (`valid_zones`).
    pub zone: Option<String>,
    /// `removable`, where the kernel has it.
    pub removable: Option<bool>,
}

impl Block {
    pub fn name(&self) -> String {
        format!("memory{}", self.id)
    }
}

fn rel(id: u64, attr: &str) -> String {
    format!("{MEMORY}/memory{id}/{attr}")
}

/// The memory block size in bytes.
pub fn block_size(root: &SysfsRoot) -> Option<u64> {
    root.read(&format!("{MEMORY}/block_size_bytes"))
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .filter(|&n| n > 0)
}

/// Whether the block is online: `state`, else `online`.
pub fn is_online(root: &SysfsRoot, id: u64) -> Option<bool> {
    if let Some(s) = root.read(&rel(id, "state")) {
        // `online`, or a fake tree's `online_movable`: online. `offline`
        // and `going-offline`: not.
        return Some(s.starts_with("online"));
    }
    root.read(&rel(id, "online")).map(|s| s == "1")
}

pub fn read_block(root: &SysfsRoot, id: u64) -> Option<Block> {
    let online = is_online(root, id)?;
    let zone = online
        .then(|| root.read(&rel(id, "valid_zones")))
        .flatten()
        .and_then(|z| z.split_whitespace().next().map(str::to_string));
    let removable = root.read(&rel(id, "removable")).map(|s| s != "0");
    Some(Block {
        id,
        online,
        zone,
        removable,
    })
}

/// Every block number present, ascending.
pub fn all_blocks(root: &SysfsRoot) -> Vec<u64> {
    let mut v: Vec<u64> = root
        .list(MEMORY)
        .iter()
        .filter_map(|n| n.strip_prefix("memory")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// A block or device left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub target: String,
    pub reason: String,
}

/// The blocks to cycle (online at start), and those left out.
pub fn select(
    root: &SysfsRoot,
    spec: &BlockSpec,
    exclude: &[u64],
) -> Result<(Vec<Block>, Vec<Skipped>), String> {
    let present = all_blocks(root);
    let candidates: Vec<u64> = match spec {
        BlockSpec::None => return Ok((Vec::new(), Vec::new())),
        BlockSpec::List(ids) => {
            if let Some(id) = ids.iter().find(|id| !present.contains(id)) {
                return Err(format!(
                    "memory block {id} does not exist: no {}",
                    root.path(&format!("{MEMORY}/memory{id}")).display()
                ));
            }
            ids.clone()
        }
        BlockSpec::AllOfflinable | BlockSpec::Movable => present,
    };
    let explicit = matches!(spec, BlockSpec::List(_));
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for id in candidates {
        let Some(b) = read_block(root, id) else {
            skipped.push(Skipped {
                target: format!("memory{id}"),
                reason: "neither state nor online is readable".into(),
            });
            continue;
        };
        let why = if exclude.contains(&id) {
            Some("belongs to a device-dax device cycled through kmem")
        } else if b.removable == Some(false) {
            Some("the kernel marks it non-removable (removable = 0)")
        } else if !b.online {
            Some("offline at start")
        } else if *spec == BlockSpec::Movable && b.zone.as_deref() != Some("Movable") {
            Some("not in ZONE_MOVABLE")
        } else {
            None
        };
        match why {
            // Quietly: the default and all-offlinable look at every block.
            Some("not in ZONE_MOVABLE") | Some("offline at start") if !explicit => {}
            Some(r) => skipped.push(Skipped {
                target: b.name(),
                reason: r.into(),
            }),
            None => chosen.push(b),
        }
    }
    Ok((chosen, skipped))
}

/// The `state` value that onlines a block back into `zone`.
pub fn online_value(zone: Option<&str>) -> &'static str {
    match zone {
        Some("Movable") => "online_movable",
        Some("Normal") | Some("DMA") | Some("DMA32") => "online_kernel",
        _ => "online",
    }
}

/// Offlines a block (`state` ← `offline`; without `state`, `online` ← `0`).
pub fn offline(root: &SysfsRoot, id: u64) -> Result<(), WriteError> {
    if root.exists(&rel(id, "state")) {
        root.write(&rel(id, "state"), "offline")
    } else {
        root.write(&rel(id, "online"), "0")
    }
}

/// Onlines a block into `zone` (`state` ← `online_movable`/`online_kernel`/`online`).
pub fn online(root: &SysfsRoot, id: u64, zone: Option<&str>) -> Result<(), WriteError> {
    if root.exists(&rel(id, "state")) {
        root.write(&rel(id, "state"), online_value(zone))
    } else {
        root.write(&rel(id, "online"), "1")
    }
}

/// The files a cycle of `id` writes.
pub fn files(root: &SysfsRoot, id: u64) -> Vec<String> {
    if root.exists(&rel(id, "state")) {
        vec![rel(id, "state")]
    } else {
        vec![rel(id, "online")]
    }
}

//! Device-dax devices under /sys/bus/dax: their mode, and the sysfs
//! sequences that switch one between `devdax` (driver `device_dax`,
//! drivers/dax/device.c) and `system-ram` (driver `kmem`, drivers/dax/kmem.c),
//! the sequences `daxctl reconfigure-device` uses.
//!
//! devdax → system-ram:
//! 1. `daxX.Y` → `/sys/bus/dax/drivers/device_dax/unbind` (the driver core's
//!    `unbind_store()`, drivers/base/bus.c; the dax bus is a driver-core bus).
//! 2. `daxX.Y` → `/sys/bus/dax/drivers/kmem/new_id` (drivers/dax/bus.c
//!    `new_id_store()` → `do_id_store(ID_ADD)`: adds the name to kmem's id
//!    list, then `driver_attach()`), then `bind` if that did not attach.
//!    kmem's probe (`dev_dax_kmem_probe()`) calls `add_memory_driver_managed()`
//!    for every range: new memory blocks appear under
//!    /sys/devices/system/memory, onlined or not per `auto_online_blocks`.
//! 3. Every block of the device still offline: `state` ← `online_movable`
//!    (drivers/base/memory.c `state_store()`), as daxctl does by default.
//!
//! system-ram → devdax:
//! 1. Every block of the device: `state` ← `offline`. This must come first:
//!    `dev_dax_kmem_remove()` calls `remove_memory()`, which fails on an
//!    online block, and kmem then keeps the range ("cannot be hotremoved
//!    until the next reboot") while the device is unbound. EBUSY here leaves
//!    the device in system-ram (the blocks offlined so far are onlined again).
//! 2. `daxX.Y` → `/sys/bus/dax/drivers/kmem/unbind` (removes the blocks).
//! 3. `daxX.Y` → `/sys/bus/dax/drivers/kmem/remove_id`, where it exists
//!    (`do_id_store(ID_REMOVE)`): kmem must not claim the device again.
//! 4. `daxX.Y` → `/sys/bus/dax/drivers/device_dax/new_id`, then `bind` if
//!    that did not attach.
//!
//! The device's memory blocks are those its ranges span: `mappingN/start`
//! and `mappingN/end` (inclusive) where the kernel has them (5.10+),
//! else `resource` (start) and `size`, divided by `block_size_bytes`.

use serde::{Deserialize, Serialize};

use super::{
    blocks::{self, Skipped, MEMORY},
    sysfs::{SysfsRoot, WriteError},
};

pub const DEVICES: &str = "bus/dax/devices";
pub const DRIVERS: &str = "bus/dax/drivers";
pub const DEVICE_DAX: &str = "device_dax";
pub const KMEM: &str = "kmem";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Devdax,
    SystemRam,
    /// Bound to neither driver (left alone).
    Unbound,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Devdax => "devdax",
            Mode::SystemRam => "system-ram",
            Mode::Unbound => "unbound",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaxDevice {
    pub name: String,
    pub mode: Mode,
}

pub fn mode(root: &SysfsRoot, name: &str) -> Mode {
    match root
        .link_name(&format!("{DEVICES}/{name}/driver"))
        .as_deref()
    {
        Some(DEVICE_DAX) => Mode::Devdax,
        Some(KMEM) => Mode::SystemRam,
        _ => Mode::Unbound,
    }
}

/// Every device-dax device present (`dax0.0`, ...).
pub fn all_devices(root: &SysfsRoot) -> Vec<String> {
    root.list(DEVICES)
        .into_iter()
        .filter(|n| n.starts_with("dax"))
        .collect()
}

/// What `--dax` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaxSpec {
    All,
    /// Named devices (`none`: an empty list).
    List(Vec<String>),
}

/// `--dax`: `all`, `none` or `dax0.0,dax1.0`.
pub fn parse_dax(s: &str) -> Result<DaxSpec, String> {
    match s.trim() {
        "all" => Ok(DaxSpec::All),
        "none" => Ok(DaxSpec::List(Vec::new())),
        list => {
            let v: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            // daxR.N only: the name becomes a sysfs path.
            let valid = |n: &str| {
                n.strip_prefix("dax")
                    .and_then(|r| r.split_once('.'))
                    .is_some_and(|(a, b)| {
                        [a, b]
                            .iter()
                            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
                    })
            };
            match v.iter().find(|n| !valid(n)) {
                Some(n) => Err(format!("{n:?} is not a device-dax name (dax0.0)")),
                None if v.is_empty() => Err("give device names (dax0.0), all or none".into()),
                None => Ok(DaxSpec::List(v)),
            }
        }
    }
}

/// The devices to cycle; unbound ones are left out.
pub fn select(
    root: &SysfsRoot,
    wanted: Option<&[String]>,
) -> Result<(Vec<DaxDevice>, Vec<Skipped>), String> {
    let present = all_devices(root);
    let names: Vec<String> = match wanted {
        None => present.clone(),
        Some(w) => {
            if let Some(n) = w.iter().find(|n| !present.contains(n)) {
                return Err(format!(
                    "device-dax device {n} does not exist: no {}",
                    root.path(&format!("{DEVICES}/{n}")).display()
                ));
            }
            w.to_vec()
        }
    };
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        let m = mode(root, &name);
        if m == Mode::Unbound {
            skipped.push(Skipped {
                target: name,
                reason: "bound to neither device_dax nor kmem".into(),
            });
        } else {
            chosen.push(DaxDevice { name, mode: m });
        }
    }
    Ok((chosen, skipped))
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// Physical ranges `[start, end)` of the device.
pub fn ranges(root: &SysfsRoot, name: &str) -> Vec<(u64, u64)> {
    let dir = format!("{DEVICES}/{name}");
    let mut v: Vec<(u64, u64)> = root
        .list(&dir)
        .iter()
        .filter(|n| n.starts_with("mapping"))
        .filter_map(|m| {
            let start = hex(&root.read(&format!("{dir}/{m}/start"))?)?;
            let end = hex(&root.read(&format!("{dir}/{m}/end"))?)?;
            Some((start, end.checked_add(1)?))
        })
        .collect();
    if v.is_empty() {
        let start = root.read(&format!("{dir}/resource")).and_then(|s| hex(&s));
        let size = root
            .read(&format!("{dir}/size"))
            .and_then(|s| s.parse::<u64>().ok());
        if let (Some(start), Some(size)) = (start, size) {
            v.push((start, start + size));
        }
    }
    v
}

/// The memory blocks the device's ranges span (present or not).
pub fn block_ids(root: &SysfsRoot, name: &str) -> Vec<u64> {
    let Some(bs) = blocks::block_size(root) else {
        return Vec::new();
    };
    let mut v: Vec<u64> = ranges(root, name)
        .into_iter()
        .flat_map(|(s, e)| (s / bs)..e.div_ceil(bs))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The device's memory blocks that exist now.
pub fn present_blocks(root: &SysfsRoot, name: &str) -> Vec<u64> {
    block_ids(root, name)
        .into_iter()
        .filter(|id| root.exists(&format!("{MEMORY}/memory{id}")))
        .collect()
}

fn drv(driver: &str, file: &str) -> String {
    format!("{DRIVERS}/{driver}/{file}")
}

/// `new_id`, then `bind` unless that attached the device.
fn attach(root: &SysfsRoot, name: &str, driver: &str) -> Result<(), WriteError> {
    if root.exists(&drv(driver, "new_id")) {
        root.write(&drv(driver, "new_id"), name)?;
    }
    if root
        .link_name(&format!("{DEVICES}/{name}/driver"))
        .as_deref()
        != Some(driver)
    {
        root.write(&drv(driver, "bind"), name)?;
    }
    Ok(())
}

/// devdax → system-ram. Returns the blocks the device has afterwards.
/// From any state: a device left unbound (a switch stopped between its
/// unbind and its bind, by a signal or a failed write) is bound to kmem.
pub fn to_system_ram(root: &SysfsRoot, name: &str) -> Result<Vec<u64>, WriteError> {
    if mode(root, name) == Mode::Devdax {
        root.write(&drv(DEVICE_DAX, "unbind"), name)?;
    }
    attach(root, name, KMEM)?;
    let added = present_blocks(root, name);
    for &id in &added {
        if blocks::is_online(root, id) == Some(false) {
            blocks::online(root, id, Some("Movable"))?;
        }
    }
    Ok(added)
}

/// system-ram → devdax. Returns the blocks removed. On EBUSY the device
/// stays in system-ram with all its blocks online again. A device left
/// unbound (a switch stopped between its unbind and its bind) is bound to
/// device_dax.
pub fn to_devdax(root: &SysfsRoot, name: &str) -> Result<Vec<u64>, WriteError> {
    if mode(root, name) == Mode::Unbound {
        // kmem's id of the device, if the stopped switch had added it, goes
        // first (best effort: removing an id kmem does not hold is no error
        // to act on), so that no later probe binds the device to kmem.
        if root.exists(&drv(KMEM, "remove_id")) {
            let _ = root.write(&drv(KMEM, "remove_id"), name);
        }
        attach(root, name, DEVICE_DAX)?;
        return Ok(Vec::new());
    }
    let present = present_blocks(root, name);
    let mut offlined = Vec::new();
    for &id in &present {
        if blocks::is_online(root, id) != Some(true) {
            continue;
        }
        let zone = blocks::read_block(root, id).and_then(|b| b.zone);
        match blocks::offline(root, id) {
            Ok(()) => offlined.push((id, zone)),
            Err(e) => {
                for (id, zone) in offlined.iter().rev() {
                    // Best effort: the restore guard checks again.
                    let _ = blocks::online(root, *id, zone.as_deref());
                }
                return Err(e);
            }
        }
    }
    // Never unbind kmem over an online block (see the module comment).
    if let Some(id) = present
        .iter()
        .find(|&&id| blocks::is_online(root, id) == Some(true))
    {
        return Err(WriteError::Failed(format!(
            "memory{id} of {name} is still online: kmem not unbound"
        )));
    }
    root.write(&drv(KMEM, "unbind"), name)?;
    if root.exists(&drv(KMEM, "remove_id")) {
        root.write(&drv(KMEM, "remove_id"), name)?;
    }
    attach(root, name, DEVICE_DAX)?;
    Ok(present)
}

/// The files switching `name` writes: the drivers' bind files.
pub fn files(root: &SysfsRoot) -> Vec<String> {
    let mut v = vec![
        drv(DEVICE_DAX, "unbind"),
        drv(KMEM, "unbind"),
        drv(DEVICE_DAX, "bind"),
        drv(KMEM, "bind"),
    ];
    for d in [DEVICE_DAX, KMEM] {
        if root.exists(&drv(d, "new_id")) {
            v.push(drv(d, "new_id"));
        }
    }
    v
}

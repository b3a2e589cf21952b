//! Which accelerator runs the guest: KVM where it works and fits, TCG otherwise, and the
//! memory of a KVM that opened but could not run a guest.

use super::MemLayout;
use std::path::Path;
use std::time::Duration;

/// How QEMU runs the guest's CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// KVM when `/dev/kvm` opens read-write and the host CPU can give the guest what it needs
/// (LA57 for 5-level paging, enough physical address bits for the hot-add window); TCG
/// otherwise. `SYNC_TRACE_ACCEL=tcg` (or `kvm`) decides instead. Returns the choice and why.
pub fn choose_accel(paging: u8, layout: Option<&MemLayout>) -> (Accel, String) {
    match std::env::var("SYNC_TRACE_ACCEL").as_deref() {
        Ok("tcg") => return (Accel::Tcg, "SYNC_TRACE_ACCEL=tcg".into()),
        Ok("kvm") => return (Accel::Kvm, "SYNC_TRACE_ACCEL=kvm".into()),
        _ => {}
    }
    if let Some(why) = KVM_BROKEN.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return (
            Accel::Tcg,
            format!("KVM failed earlier in this process: {why}"),
        );
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return (Accel::Tcg, format!("/dev/kvm is not usable: {e}"));
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    kvm_fits(&cpuinfo, paging, layout.and_then(|l| l.phys_bits))
}

/// Whether a KVM guest on a host with this `/proc/cpuinfo` can have `paging` levels and
/// `phys_bits` physical address bits.
fn kvm_fits(cpuinfo: &str, paging: u8, phys_bits: Option<u8>) -> (Accel, String) {
    let flags = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("flags")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("");
    if paging == 5 && !flags.split_whitespace().any(|f| f == "la57") {
        return (
            Accel::Tcg,
            "5-level paging needs LA57, which the host CPU lacks".into(),
        );
    }
    let host_bits: Option<u8> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("address sizes"))
        .and_then(|r| r.trim_start_matches([' ', '\t', ':']).split(' ').next())
        .and_then(|b| b.parse().ok());
    if let (Some(want), Some(have)) = (phys_bits, host_bits) {
        if want > have {
            return (
                Accel::Tcg,
                format!(
                    "the hot-add window needs {want} physical address bits, the host has {have}"
                ),
            );
        }
    }
    (Accel::Kvm, "/dev/kvm is usable".into())
}

/// Set when a guest failed under KVM (see [`KvmFailed`]): later guests of this process go
/// straight to TCG.
static KVM_BROKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// QEMU's words for a KVM that opened but cannot run the guest (e.g. a nested or emulated
/// /dev/kvm): QEMU then stops the guest and idles.
const KVM_FAILURE_MARKERS: &[&str] = &[
    "KVM internal error",
    "failed to initialize kvm",
    "failed to initialize KVM",
    "Could not access KVM kernel module",
    "kvm run failed",
    "failed to set MSR",
];

/// Under KVM, the kernel prints `Linux version` within this or KVM is taken as not working.
pub(super) const KVM_BOOT_WITHIN: Duration = Duration::from_secs(30);

/// The guest could not run under KVM; the caller may run it again under TCG.
#[derive(Debug)]
pub struct KvmFailed(pub String);

impl std::fmt::Display for KvmFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QEMU cannot run the guest under KVM: {}", self.0)
    }
}

impl std::error::Error for KvmFailed {}

/// Remembers for this process that KVM does not work.
pub fn mark_kvm_broken(why: &str) {
    *KVM_BROKEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
}

/// The first line of QEMU's stderr that says KVM failed.
pub(super) fn kvm_failure(qemu_err: &Path) -> Option<String> {
    let text = std::fs::read_to_string(qemu_err).unwrap_or_default();
    text.lines()
        .find(|l| KVM_FAILURE_MARKERS.iter().any(|m| l.contains(m)))
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_only_where_the_host_cpu_fits() {
        let amd = "flags\t\t: fpu vme svm\naddress sizes\t: 48 bits physical, 48 bits virtual\n";
        assert_eq!(kvm_fits(amd, 4, Some(46)).0, Accel::Kvm);
        assert_eq!(kvm_fits(amd, 5, None).0, Accel::Tcg);
        assert_eq!(kvm_fits(amd, 4, Some(52)).0, Accel::Tcg);
        let la57 = "flags\t\t: fpu la57\naddress sizes\t: 52 bits physical, 57 bits virtual\n";
        assert_eq!(kvm_fits(la57, 5, Some(52)).0, Accel::Kvm);
    }
}

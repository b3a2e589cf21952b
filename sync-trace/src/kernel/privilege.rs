//! What this process may do: capabilities and kernel switches that loading
//! and attaching BPF programs needs, named exactly when they are missing.

use std::fs;

/// Capability numbers from `include/uapi/linux/capability.h`.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYSLOG: u32 = 34;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process (`CapEff` in /proc/self/status).
fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Enough to load and attach tracing programs: CAP_SYS_ADMIN, or CAP_BPF
/// with CAP_PERFMON (Linux 5.8 and later).
fn bpf_capable(caps: u64) -> bool {
    has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON))
}

/// Checks, before anything is loaded, that this process can load tracing
/// programs and read kernel addresses. The error is one line that names
/// what is missing and what to do.
pub fn preflight() -> Result<(), String> {
    let caps = effective_caps();
    if !bpf_capable(caps) {
        let mut missing = Vec::new();
        if !has(caps, CAP_BPF) {
            missing.push("CAP_BPF");
        }
        if !has(caps, CAP_PERFMON) {
            missing.push("CAP_PERFMON");
        }
        return Err(format!(
            "missing privilege: loading tracing BPF programs needs root, or {} (CAP_SYS_ADMIN on kernels before 5.8); run with sudo",
            missing.join(" and ")
        ));
    }
    let kptr = fs::read_to_string("/proc/sys/kernel/kptr_restrict")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if kptr >= 2 {
        return Err("kernel addresses are hidden: /proc/sys/kernel/kptr_restrict is 2; set it to 1 (sysctl kernel.kptr_restrict=1) so that a CAP_SYSLOG process can read /proc/kallsyms".into());
    }
    if kptr == 1 && !has(caps, CAP_SYSLOG) {
        return Err("kernel addresses are hidden: /proc/sys/kernel/kptr_restrict is 1 and this process lacks CAP_SYSLOG; run as root or grant CAP_SYSLOG".into());
    }
    Ok(())
}

/// Text for an attach or load failure that came back as EPERM/EACCES.
pub fn explain_denied() -> String {
    let lockdown = fs::read_to_string("/sys/kernel/security/lockdown").unwrap_or_default();
    if lockdown.contains("[confidentiality]") {
        "denied by kernel lockdown: /sys/kernel/security/lockdown is 'confidentiality', which forbids kprobes and BPF reads of kernel memory; boot with lockdown=integrity or none".into()
    } else if bpf_capable(effective_caps()) {
        "denied although this process has the BPF capabilities: an LSM policy or the container's seccomp profile forbids BPF tracing programs here; run on the host or allow bpf() and perf_event_open()".into()
    } else {
        "permission denied: needs root, or CAP_BPF and CAP_PERFMON (and CAP_SYS_ADMIN before Linux 5.8)".into()
    }
}

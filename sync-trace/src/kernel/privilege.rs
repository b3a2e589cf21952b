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

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`);
/// CAP_BPF, the newest of those used here, where it cannot be read.
fn cap_last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_BPF)
}

/// Enough to load and attach tracing programs: CAP_BPF and CAP_PERFMON on a
/// kernel that knows them (5.8 and later; `run` keeps CAP_BPF after
/// attaching, and the deployments grant both), CAP_SYS_ADMIN before. What
/// is missing, by name.
fn missing_to_load(caps: u64, last_cap: u32) -> Vec<&'static str> {
    if last_cap < CAP_BPF {
        return if has(caps, CAP_SYS_ADMIN) {
            vec![]
        } else {
            vec!["CAP_SYS_ADMIN"]
        };
    }
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|&(c, _)| !has(caps, c))
        .map(|(_, n)| n)
        .collect()
}

fn sysctl(name: &str) -> Option<i64> {
    fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Why /proc/kallsyms hides addresses from a process with `caps`, if it
/// does (`kallsyms_show_value()` in kernel/ksyms_common.c): kptr_restrict 2
/// hides them from everyone; 1 from a process without CAP_SYSLOG; 0 from a
/// process without CAP_SYSLOG when perf_event_paranoid is above 1.
fn addresses_hidden(caps: u64, kptr: i64, paranoid: i64) -> Option<String> {
    let syslog = has(caps, CAP_SYSLOG);
    match kptr {
        k if k >= 2 => Some("kernel addresses are hidden: /proc/sys/kernel/kptr_restrict is 2; set it to 1 (sysctl kernel.kptr_restrict=1) so that a CAP_SYSLOG process can read /proc/kallsyms".into()),
        1 if !syslog => Some("kernel addresses are hidden: /proc/sys/kernel/kptr_restrict is 1 and this process lacks CAP_SYSLOG; run as root or grant CAP_SYSLOG".into()),
        0 if !syslog && paranoid > 1 => Some(format!("kernel addresses are hidden: /proc/sys/kernel/perf_event_paranoid is {paranoid} (above 1) and this process lacks CAP_SYSLOG; run as root or grant CAP_SYSLOG")),
        _ => None,
    }
}

/// Checks, before anything is loaded, that this process can load tracing
/// programs and read kernel addresses. The error is one line that names
/// what is missing and what to do.
pub fn preflight() -> Result<(), String> {
    let caps = effective_caps();
    let missing = missing_to_load(caps, cap_last_cap());
    if !missing.is_empty() {
        return Err(format!(
            "missing privilege: loading tracing BPF programs needs root, or {} (CAP_SYS_ADMIN on kernels before 5.8); run with sudo",
            missing.join(" and ")
        ));
    }
    let kptr = sysctl("kptr_restrict").unwrap_or(0);
    // The kernel's default where the file is missing (no perf events).
    let paranoid = sysctl("perf_event_paranoid").unwrap_or(2);
    match addresses_hidden(caps, kptr, paranoid) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Why perf_event_open() (kprobes) refuses a process with `caps`, if a
/// setting explains it: Debian's kernels refuse every perf event to a
/// process without CAP_SYS_ADMIN while perf_event_paranoid is above 2
/// (their patch "security,perf: Allow further restriction of
/// perf_event_open"; Debian's default is 3). Seen on Debian's 6.12: run
/// --attach kprobe without CAP_SYS_ADMIN gets EACCES at 3, attaches at 2.
fn perf_paranoid_denies(caps: u64, paranoid: i64) -> Option<String> {
    (paranoid > 2 && !has(caps, CAP_SYS_ADMIN)).then(|| format!(
        "perf_event_open() is refused to processes without CAP_SYS_ADMIN while /proc/sys/kernel/perf_event_paranoid is {paranoid} (above 2: Debian's restriction); grant CAP_SYS_ADMIN (run as root), set kernel.perf_event_paranoid=2, or attach by fentry"
    ))
}

/// Text for a kprobe attach (perf_event_open) that came back as EPERM/EACCES.
pub fn explain_perf_denied() -> String {
    let paranoid = sysctl("perf_event_paranoid").unwrap_or(2);
    perf_paranoid_denies(effective_caps(), paranoid).unwrap_or_else(explain_denied)
}

/// Text for an attach or load failure that came back as EPERM/EACCES.
pub fn explain_denied() -> String {
    let lockdown = fs::read_to_string("/sys/kernel/security/lockdown").unwrap_or_default();
    if lockdown.contains("[confidentiality]") {
        "denied by kernel lockdown: /sys/kernel/security/lockdown is 'confidentiality', which forbids kprobes and BPF reads of kernel memory; boot with lockdown=integrity or none".into()
    } else if missing_to_load(effective_caps(), cap_last_cap()).is_empty() {
        "denied although this process has the BPF capabilities: an LSM policy or the container's seccomp profile forbids BPF tracing programs here; run on the host or allow bpf() and perf_event_open()".into()
    } else {
        "permission denied: needs root, or CAP_BPF and CAP_PERFMON (and CAP_SYS_ADMIN before Linux 5.8)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn bit(c: u32) -> u64 {
        1 << c
    }

    #[test]
    fn each_capability_to_load_is_named() {
        let all = bit(CAP_BPF) | bit(CAP_PERFMON) | bit(CAP_SYS_ADMIN) | bit(CAP_SYSLOG);
        assert!(missing_to_load(all, 40).is_empty());
        assert_eq!(missing_to_load(all & !bit(CAP_BPF), 40), ["CAP_BPF"]);
        assert_eq!(
            missing_to_load(all & !bit(CAP_PERFMON), 40),
            ["CAP_PERFMON"]
        );
        assert_eq!(missing_to_load(0, 40), ["CAP_BPF", "CAP_PERFMON"]);
        assert!(missing_to_load(bit(CAP_SYS_ADMIN), 37).is_empty());
        assert_eq!(missing_to_load(0, 37), ["CAP_SYS_ADMIN"]);
    }

    #[test]
    fn debian_perf_paranoid_names_cap_sys_admin() {
        let bpf = bit(CAP_BPF) | bit(CAP_PERFMON);
        let e = perf_paranoid_denies(bpf, 3).unwrap();
        assert!(
            e.contains("CAP_SYS_ADMIN") && e.contains("perf_event_paranoid is 3"),
            "{e}"
        );
        assert!(perf_paranoid_denies(bpf, 2).is_none());
        assert!(perf_paranoid_denies(bpf | bit(CAP_SYS_ADMIN), 3).is_none());
    }

    #[test]
    fn hidden_addresses_name_the_setting() {
        let syslog = bit(CAP_SYSLOG);
        assert!(addresses_hidden(syslog, 0, 3).is_none());
        assert!(addresses_hidden(syslog, 1, 3).is_none());
        assert!(addresses_hidden(0, 0, 1).is_none());
        let e = addresses_hidden(0, 0, 2).unwrap();
        assert!(
            e.contains("perf_event_paranoid is 2") && e.contains("CAP_SYSLOG"),
            "{e}"
        );
        assert!(addresses_hidden(0, 1, 0).unwrap().contains("CAP_SYSLOG"));
        assert!(addresses_hidden(syslog, 2, 0)
            .unwrap()
            .contains("kptr_restrict is 2"));
    }
}

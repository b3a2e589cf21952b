//! Least privilege after attaching: which capabilities `run` needs to
//! attach, which it keeps once attached, and the switch to an unprivileged
//! user (`run --user`, default `nobody`).
//!
//! Once its programs are attached and its maps open, the daemon only reads
//! the maps and runs the scan program (`bpf()` map lookups and
//! `BPF_PROG_TEST_RUN`), consumes the ring buffer (mmap and epoll, no
//! capability), closes its links at exit (no capability) and serves metrics
//! on an unprivileged port. Kernels before 6.5 check CAP_BPF (or
//! CAP_SYS_ADMIN) on every `bpf()` command while
//! `kernel.unprivileged_bpf_disabled` is set (Debian's default), so CAP_BPF
//! is kept; everything else goes, and no exec can bring it back
//! (`PR_SET_NO_NEW_PRIVS`). The `caps` crate does capget/capset and the
//! bounding set; libc does setresuid/setresgid and setgroups.

use std::{collections::HashSet, fs};

use anyhow::{anyhow, bail, Context as _};
use caps::{CapSet, Capability};

/// What `run` needs to load and attach its programs and read kernel
/// addresses (CAP_SYS_ADMIN: kprobes' perf_event_open() on Debian's kernels
/// while perf_event_paranoid is above 2, and kernels before 5.8 that do not
/// know CAP_BPF and CAP_PERFMON).
pub const TO_ATTACH: [Capability; 4] = [
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_SYSLOG,
];
/// What the switch to `--user` needs (setresuid, setresgid, setgroups).
pub const TO_SWITCH_USER: [Capability; 2] = [Capability::CAP_SETUID, Capability::CAP_SETGID];
/// What `run` keeps once attached: map reads and the on-demand scan.
pub const AFTER_ATTACH: [Capability; 1] = [Capability::CAP_BPF];

/// The user `run` switches to after attaching.
pub const DEFAULT_USER: &str = "nobody";
/// The kernel's overflow uid and gid (`/proc/sys/kernel/overflowuid`):
/// `nobody` where /etc/passwd does not list it (a minimal initramfs).
const NOBODY_ID: u32 = 65534;

/// Capability names as the kernel's headers and systemd spell them.
pub fn names(caps: &[Capability]) -> Vec<String> {
    caps.iter().map(|c| c.to_string()).collect()
}

/// Every capability the daemon's deployment must grant: to attach, and to
/// switch user.
pub fn granted() -> Vec<Capability> {
    TO_ATTACH.iter().chain(&TO_SWITCH_USER).copied().collect()
}

/// A user to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// `NAME` from /etc/passwd, or a numeric uid (its gid the same number);
    /// `nobody` is the overflow uid 65534 where /etc/passwd lacks it.
    pub fn resolve(spec: &str) -> anyhow::Result<Self> {
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        Self::resolve_in(spec, &passwd)
    }

    pub fn resolve_in(spec: &str, passwd: &str) -> anyhow::Result<Self> {
        if let Ok(uid) = spec.parse::<u32>() {
            return Ok(Self {
                name: spec.to_string(),
                uid,
                gid: uid,
            });
        }
        let entry = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == spec).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        });
        match entry {
            Some((Some(uid), Some(gid))) => Ok(Self {
                name: spec.to_string(),
                uid,
                gid,
            }),
            Some(_) => bail!("--user {spec}: its /etc/passwd entry has no numeric uid and gid"),
            None if spec == DEFAULT_USER => Ok(Self {
                name: spec.to_string(),
                uid: NOBODY_ID,
                gid: NOBODY_ID,
            }),
            None => bail!(
                "--user {spec}: no such user in /etc/passwd; give a user name or a numeric uid"
            ),
        }
    }
}

fn effective() -> HashSet<Capability> {
    caps::read(None, CapSet::Effective).unwrap_or_default()
}

/// Before anything is attached: can this process switch to `user` later?
/// A process already running as that uid needs nothing for it.
pub fn preflight(user: &User) -> anyhow::Result<()> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == user.uid {
        return Ok(());
    }
    let have = effective();
    let missing: Vec<String> = TO_SWITCH_USER
        .iter()
        .filter(|c| !have.contains(c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing privilege: switching to user {} (uid {}) after attaching needs {}; grant it, or pass --user with the uid this process runs as",
            user.name,
            user.uid,
            missing.join(" and ")
        );
    }
    Ok(())
}

fn check(r: libc::c_int, what: &str) -> anyhow::Result<()> {
    if r != 0 {
        bail!("{what} failed: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// After attaching: becomes `user` with [`AFTER_ATTACH`] as its only
/// capabilities (effective and permitted; inheritable and ambient empty;
/// the bounding set too where CAP_SETPCAP allows), and no new privileges
/// for anything it might exec. The process is single-threaded here (the
/// runtime is current-thread), so the calling thread's sets are the
/// process's.
pub fn drop_to(user: &User) -> anyhow::Result<()> {
    let keep: HashSet<Capability> = AFTER_ATTACH.into_iter().collect();
    let have = effective();
    // SAFETY: prctl with these constant arguments has no memory effects.
    check(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        "PR_SET_NO_NEW_PRIVS",
    )?;
    if have.contains(&Capability::CAP_SETPCAP) {
        // Only those this kernel knows: dropping another is EINVAL.
        let known = caps::runtime::thread_all_supported();
        for c in known.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *c)
                .map_err(|e| anyhow!("dropping {c} from the bounding set: {e}"))?;
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| anyhow!("clearing ambient capabilities: {e}"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| anyhow!("clearing inheritable capabilities: {e}"))?;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != user.uid {
        // Permitted capabilities survive the uid change (effective ones
        // are cleared by it and set again below).
        caps::securebits::set_keepcaps(true).map_err(|e| anyhow!("PR_SET_KEEPCAPS: {e}"))?;
        // SAFETY: setgroups with an empty list, setresgid and setresuid
        // take plain integers; glibc applies them to every thread.
        unsafe {
            check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
            check(libc::setresgid(user.gid, user.gid, user.gid), "setresgid")?;
            check(libc::setresuid(user.uid, user.uid, user.uid), "setresuid")?;
        }
        caps::securebits::set_keepcaps(false).map_err(|e| anyhow!("PR_SET_KEEPCAPS: {e}"))?;
    }
    // Effective first: it must stay a subset of permitted.
    caps::set(None, CapSet::Effective, &keep)
        .map_err(|e| anyhow!("keeping only {keep:?} effective: {e}"))?;
    caps::set(None, CapSet::Permitted, &keep)
        .map_err(|e| anyhow!("keeping only {keep:?} permitted: {e}"))?;
    let now = caps::read(None, CapSet::Permitted).context("reading capabilities back")?;
    if now != keep {
        bail!("capabilities after the drop are {now:?}, not {keep:?}");
    }
    log::info!(
        "attached; now user {} (uid {}, gid {}) with {} only",
        user.name,
        user.uid,
        user.gid,
        names(&AFTER_ATTACH).join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsync-trace:x:998:997::/:/usr/sbin/nologin\nbroken:x:a:b::/:/bin/sh\n";

    #[test]
    fn users_resolve() {
        let u = User::resolve_in("sync-trace", PASSWD).unwrap();
        assert_eq!((u.uid, u.gid), (998, 997));
        assert_eq!(User::resolve_in("1234", PASSWD).unwrap().gid, 1234);
        assert_eq!(User::resolve_in("nobody", "").unwrap().uid, 65534);
        let e = User::resolve_in("alice", PASSWD).unwrap_err().to_string();
        assert!(e.contains("--user alice") && !e.contains('\n'), "{e}");
        assert!(User::resolve_in("broken", PASSWD).is_err());
    }

    #[test]
    fn kept_capabilities_are_granted_ones() {
        assert!(AFTER_ATTACH.iter().all(|c| granted().contains(c)));
        assert_eq!(
            names(&granted()),
            [
                "CAP_BPF",
                "CAP_PERFMON",
                "CAP_SYS_ADMIN",
                "CAP_SYSLOG",
                "CAP_SETUID",
                "CAP_SETGID"
            ]
        );
    }
}

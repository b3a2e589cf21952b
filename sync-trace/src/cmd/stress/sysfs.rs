//! The sysfs tree `stress` reads and writes, rooted at an injectable path
//! (`/sys` on a machine, a temporary directory in tests), with a log of
//! every write and, in tests, injected write failures. Every write is made
//! under a watchdog (`watchdog.rs`): one that does not return within the
//! write timeout is given up on and recorded.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::watchdog::{self, Ended};

/// `--write-timeout`'s default. A write that takes this long is not slow but stuck: the
/// slowest normal ones (an offline migrating pages, kmem adding a device's memory) take
/// seconds even under emulation.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A write that did not return within the timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HungWrite {
    /// The absolute path written.
    pub path: String,
    pub value: String,
    pub timeout_ms: u64,
    /// Whether the writer ended when killed at the timeout: a killable wait (an offline
    /// retrying page migration for good) rather than an uninterruptible one (a lock never
    /// released).
    #[serde(default)]
    pub ended_when_killed: bool,
}

impl HungWrite {
    /// What it means, in one line (stderr, the report's verdict).
    pub fn explain(&self) -> String {
        let why = if self.ended_when_killed {
            "it ended only when killed: the kernel kept retrying, as an offline does on pages it can never migrate, e.g. those of a task that oopsed; see dmesg"
        } else {
            "nor when killed: it waits uninterruptibly, as on a lock (the kernel's memory-hotplug lock, a device's lock) held by a task that oopsed while holding it; see dmesg"
        };
        format!("memory hotplug looks wedged: {self} ({why})")
    }
}

impl std::fmt::Display for HungWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writing {:?} to {} did not return within {}",
            self.value,
            self.path,
            humantime::format_duration(Duration::from_millis(self.timeout_ms))
        )
    }
}

/// How a sysfs write failed.
#[derive(Debug)]
pub enum WriteError {
    /// EBUSY: the kernel refused for now (an offline that could not migrate
    /// every page). A normal outcome of a stress cycle, not an error.
    Busy,
    /// EINTR: a signal reached the writing thread (an offline that was
    /// still migrating pages when Ctrl-C came). Not retried.
    Interrupted,
    /// EINVAL: the kernel will not do this to this object at all (an
    /// offline of a block that spans zones or has holes, such as memory0:
    /// `offline_pages()` in mm/memory_hotplug.c). An outcome for an offline,
    /// a failure for any other write.
    Refused(String),
    /// Anything else, with the file and the errno text.
    Failed(String),
    /// The write did not return within the timeout (given up on).
    Hung(HungWrite),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Busy => write!(f, "busy (EBUSY)"),
            WriteError::Interrupted => write!(f, "interrupted (EINTR)"),
            WriteError::Refused(s) | WriteError::Failed(s) => write!(f, "{s}"),
            WriteError::Hung(h) => write!(f, "{h}"),
        }
    }
}

/// One write, as logged (relative to the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub path: String,
    pub value: String,
}

/// A write that will fail: the `nth` write (0-based) to `path`.
#[cfg_attr(not(test), allow(dead_code))] // injected by tests only
#[derive(Clone, Debug)]
pub struct Fault {
    pub path: String,
    pub nth: usize,
    pub kind: FaultKind,
}

#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// EBUSY.
    Busy,
    /// EINTR.
    Interrupted,
    /// EINVAL.
    Invalid,
    /// Any other error.
    Failed,
    /// A write that never returns: made, through the watchdog, to a FIFO that no one
    /// reads (its `open()` blocks), in place of the file.
    Hang,
}

#[derive(Default, Debug)]
struct State {
    log: Vec<Write>,
    faults: Vec<Fault>,
    /// Every write given up on, in order.
    hung: Vec<HungWrite>,
}

/// The root of sysfs: `/sys` by default.
#[derive(Clone, Debug)]
pub struct SysfsRoot {
    root: PathBuf,
    state: Arc<Mutex<State>>,
    /// How long a write may take before it is given up on.
    timeout: Duration,
}

impl Default for SysfsRoot {
    fn default() -> Self {
        Self::new("/sys")
    }
}

impl SysfsRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            state: Arc::default(),
            timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }

    /// Gives up on a write after `timeout` (`--write-timeout`).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Every write given up on so far (the same list for every clone of this root).
    pub fn hung(&self) -> Vec<HungWrite> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hung
            .clone()
    }

    /// Where `stress` journals the state it found (`journal.rs`): on /run for the real /sys,
    /// inside the tree for any other (the tests' fake sysfs).
    pub fn journal(&self) -> PathBuf {
        if self.root == Path::new("/sys") {
            PathBuf::from(super::journal::JOURNAL)
        } else {
            self.root.join("stress-restore.json")
        }
    }

    /// The absolute path of `rel` (`devices/system/memory/memory32/state`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// The trimmed content of a file, `None` when it is absent or unreadable.
    pub fn read(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.path(rel))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Names in a directory, sorted (absent directory: empty).
    pub fn list(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path(rel))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The last component of a symlink's target (`driver` → `kmem`).
    pub fn link_name(&self, rel: &str) -> Option<String> {
        fs::read_link(self.path(rel))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// Whether this process may write the file (effective ids, as the
    /// kernel checks them; a read-only mount says EROFS).
    pub fn writable(&self, rel: &str) -> Result<(), String> {
        let p = self.path(rel);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{}: bad path", p.display()))?;
        // SAFETY: a valid NUL-terminated path; faccessat reads it only.
        let rc =
            unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("{}: {}", p.display(), io::Error::last_os_error()))
        }
    }

    /// Writes `value` as one write(2), as sysfs wants. The write is logged
    /// whatever its outcome.
    pub fn write(&self, rel: &str, value: &str) -> Result<(), WriteError> {
        let fault = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let nth = st.log.iter().filter(|w| w.path == rel).count();
            st.log.push(Write {
                path: rel.to_string(),
                value: value.to_string(),
            });
            st.faults
                .iter()
                .position(|f| f.path == rel && f.nth == nth)
                .map(|i| st.faults.remove(i))
        };
        let p = self.path(rel);
        let target = match &fault {
            Some(f) if f.kind == FaultKind::Hang => self.hang_fifo()?,
            _ => p.clone(),
        };
        if let Some(f) = fault.filter(|f| f.kind != FaultKind::Hang) {
            return Err(match f.kind {
                FaultKind::Busy => WriteError::Busy,
                FaultKind::Interrupted => WriteError::Interrupted,
                FaultKind::Invalid => WriteError::Refused(format!("{rel}: injected EINVAL")),
                FaultKind::Failed | FaultKind::Hang => {
                    WriteError::Failed(format!("{rel}: injected write failure"))
                }
            });
        }
        let failed = |e: io::Error| format!("cannot write {value:?} to {}: {e}", p.display());
        // One write(2), not write_all: that would retry after EINTR, and an offline
        // interrupted by Ctrl-C must stop.
        match watchdog::write(&target, value, self.timeout) {
            Ok(Ended::Written) => Ok(()),
            Ok(Ended::Errno(libc::EBUSY)) => Err(WriteError::Busy),
            Ok(Ended::Errno(libc::EINTR) | Ended::Signal(libc::SIGINT | libc::SIGTERM)) => {
                Err(WriteError::Interrupted)
            }
            Ok(Ended::Errno(libc::EINVAL)) => Err(WriteError::Refused(failed(
                io::Error::from_raw_os_error(libc::EINVAL),
            ))),
            Ok(Ended::Errno(e)) => Err(WriteError::Failed(failed(io::Error::from_raw_os_error(e)))),
            Ok(Ended::Short) => Err(WriteError::Failed(failed(io::Error::other("short write")))),
            Ok(Ended::Signal(sig)) => Err(WriteError::Failed(failed(io::Error::other(format!(
                "the writing process was killed by signal {sig}"
            ))))),
            Ok(Ended::Hung { killed }) => {
                let h = HungWrite {
                    path: p.display().to_string(),
                    value: value.to_string(),
                    timeout_ms: self.timeout.as_millis() as u64,
                    ended_when_killed: killed,
                };
                self.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .hung
                    .push(h.clone());
                Err(WriteError::Hung(h))
            }
            Err(e) => Err(WriteError::Failed(failed(io::Error::other(format!(
                "cannot start the writing process: {e}"
            ))))),
        }
    }

    /// The FIFO a `FaultKind::Hang` write goes to (made once).
    fn hang_fifo(&self) -> Result<PathBuf, WriteError> {
        let p = self.root.join(".hang-fifo");
        if !p.exists() {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| WriteError::Failed(format!("{}: bad path", p.display())))?;
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(WriteError::Failed(format!(
                    "cannot make {}: {}",
                    p.display(),
                    io::Error::last_os_error()
                )));
            }
        }
        Ok(p)
    }

    /// Every write so far, in order.
    #[cfg(test)]
    pub fn writes(&self) -> Vec<Write> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .clone()
    }

    /// Makes a later write fail (tests).
    #[cfg(test)]
    pub fn inject(&self, fault: Fault) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .faults
            .push(fault);
    }
}

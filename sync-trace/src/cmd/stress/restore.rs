//! The restore guard: the state every cycled block and device was found in,
//! put back by `restore()` on the normal path and by `Drop` on every other
//! one (an error returned with `?`, a panic unwinding). Ctrl-C and SIGTERM
//! reach the cycler as a stop flag, so they take the normal path. A kill that
//! leaves no path at all (SIGKILL) is covered by the journal (`journal.rs`).
//!
//! Its writes are watchdogged like every other (`watchdog.rs`): one that does not
//! return is named as not restored, and once one of its writes has hung the
//! restore attempts no further one (memory hotplug is wedged: each would hang
//! as long), naming each block or device it left.

use std::{path::PathBuf, thread::sleep, time::Duration};

use super::{
    blocks::{self, Block},
    dax::{self, DaxDevice, Mode},
    sysfs::{SysfsRoot, WriteError},
};

/// Attempts per write that comes back EBUSY.
const TRIES: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

const NOT_ATTEMPTED: &str =
    "not attempted: an earlier write of the restore did not return (memory hotplug wedged)";

pub struct RestoreGuard {
    root: SysfsRoot,
    blocks: Vec<Block>,
    dax: Vec<DaxDevice>,
    done: bool,
    /// The journal of this state, removed once all is restored.
    journal: Option<PathBuf>,
}

fn retry<T>(mut f: impl FnMut() -> Result<T, WriteError>) -> Result<T, WriteError> {
    let mut n = 0;
    loop {
        match f() {
            Err(WriteError::Busy) if n + 1 < TRIES => {
                n += 1;
                sleep(RETRY_PAUSE);
            }
            r => return r,
        }
    }
}

impl RestoreGuard {
    /// Takes the state to restore: the blocks and devices as found.
    pub fn new(root: &SysfsRoot, blocks: &[Block], dax: &[DaxDevice]) -> Self {
        Self {
            root: root.clone(),
            blocks: blocks.to_vec(),
            dax: dax.to_vec(),
            done: false,
            journal: None,
        }
    }

    /// Writes the state to restore to `journal` first (before anything changes), so that it
    /// is restored even if this process is killed before it can (`journal.rs`).
    pub fn journaled(mut self, journal: PathBuf) -> anyhow::Result<Self> {
        super::journal::save(&journal, &self.blocks, &self.dax)?;
        self.journal = Some(journal);
        Ok(self)
    }

    /// Puts every device, then every block, back as found. Returns one line
    /// per block or device it could not restore (empty: all restored).
    /// Idempotent: a second call finds nothing to do.
    pub fn restore(&mut self) -> Vec<String> {
        let failures = self.restore_listed().1;
        if failures.is_empty() {
            if let Some(j) = &self.journal {
                super::journal::remove(j);
            }
        }
        failures
    }

    /// [`Self::restore`], also naming what it changed back: (`memory5 online`, …), failures.
    pub fn restore_listed(&mut self) -> (Vec<String>, Vec<String>) {
        self.done = true;
        let root = &self.root;
        let mut failures = Vec::new();
        let mut restored = Vec::new();
        let hung_at_start = root.hung().len();
        let wedged = || root.hung().len() > hung_at_start;
        for d in &self.dax {
            let now = dax::mode(root, &d.name);
            if now == d.mode {
                continue;
            }
            if wedged() {
                failures.push(format!(
                    "{}: left in {} (was {}): {NOT_ATTEMPTED}",
                    d.name,
                    now.name(),
                    d.mode.name()
                ));
                continue;
            }
            let res = match d.mode {
                Mode::Devdax => retry(|| dax::to_devdax(root, &d.name)).map(|_| ()),
                Mode::SystemRam => retry(|| dax::to_system_ram(root, &d.name)).map(|_| ()),
                Mode::Unbound => Ok(()),
            };
            let after = dax::mode(root, &d.name);
            if after == d.mode {
                restored.push(format!("{} {}", d.name, d.mode.name()));
            } else {
                let why = res.err().map_or_else(String::new, |e| format!(": {e}"));
                failures.push(format!(
                    "{}: left in {} (was {}){why}",
                    d.name,
                    after.name(),
                    d.mode.name()
                ));
            }
        }
        let state = |o: Option<bool>| match o {
            Some(true) => "online",
            Some(false) => "offline",
            None => "unreadable",
        };
        for b in &self.blocks {
            let now = blocks::is_online(root, b.id);
            if now == Some(b.online) {
                continue;
            }
            if wedged() {
                failures.push(format!(
                    "{}: left {} (was {}): {NOT_ATTEMPTED}",
                    b.name(),
                    state(now),
                    state(Some(b.online))
                ));
                continue;
            }
            let res = if b.online {
                retry(|| blocks::online(root, b.id, b.zone.as_deref()))
            } else {
                retry(|| blocks::offline(root, b.id))
            };
            let after = blocks::is_online(root, b.id);
            if after == Some(b.online) {
                restored.push(format!(
                    "{} {}",
                    b.name(),
                    if b.online { "online" } else { "offline" }
                ));
            } else {
                let why = res.err().map_or_else(String::new, |e| format!(": {e}"));
                failures.push(format!(
                    "{}: left {} (was {}){why}",
                    b.name(),
                    state(after),
                    state(Some(b.online))
                ));
            }
        }
        (restored, failures)
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for f in self.restore() {
            eprintln!("sync-trace stress: could not restore {f}");
        }
    }
}

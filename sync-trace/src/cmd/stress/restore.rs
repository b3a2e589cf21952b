//! The restore guard: the state every cycled block and device was found in,
//! put back by `restore()` on the normal path and by `Drop` on every other
//! one (an error returned with `?`, a panic unwinding). Ctrl-C and SIGTERM
//! reach the cycler as a stop flag, so they take the normal path.

use std::{thread::sleep, time::Duration};

use super::{
    blocks::{self, Block},
    dax::{self, DaxDevice, Mode},
    sysfs::{SysfsRoot, WriteError},
};

/// Attempts per write that comes back EBUSY.
const TRIES: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

pub struct RestoreGuard {
    root: SysfsRoot,
    blocks: Vec<Block>,
    dax: Vec<DaxDevice>,
    done: bool,
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
        }
    }

    /// Puts every device, then every block, back as found. Returns one line
    /// per block or device it could not restore (empty: all restored).
    /// Idempotent: a second call finds nothing to do.
    pub fn restore(&mut self) -> Vec<String> {
        self.done = true;
        let root = &self.root;
        let mut failures = Vec::new();
        for d in &self.dax {
            let now = dax::mode(root, &d.name);
            if now == d.mode {
                continue;
            }
            let res = match d.mode {
                Mode::Devdax => retry(|| dax::to_devdax(root, &d.name)).map(|_| ()),
                Mode::SystemRam => retry(|| dax::to_system_ram(root, &d.name)).map(|_| ()),
                Mode::Unbound => Ok(()),
            };
            let after = dax::mode(root, &d.name);
            if after != d.mode {
                let why = res.err().map_or_else(String::new, |e| format!(": {e}"));
                failures.push(format!(
                    "{}: left in {} (was {}){why}",
                    d.name,
                    after.name(),
                    d.mode.name()
                ));
            }
        }
        for b in &self.blocks {
            let now = blocks::is_online(root, b.id);
            if now == Some(b.online) {
                continue;
            }
            let res = if b.online {
                retry(|| blocks::online(root, b.id, b.zone.as_deref()))
            } else {
                retry(|| blocks::offline(root, b.id))
            };
            let after = blocks::is_online(root, b.id);
            if after != Some(b.online) {
                let state = |o: Option<bool>| match o {
                    Some(true) => "online",
                    Some(false) => "offline",
                    None => "unreadable",
                };
                let why = res.err().map_or_else(String::new, |e| format!(": {e}"));
                failures.push(format!(
                    "{}: left {} (was {}){why}",
                    b.name(),
                    state(after),
                    state(Some(b.online))
                ));
            }
        }
        failures
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

//! The state `stress` found, written down before it changes anything, so that it is put back
//! even when the process is killed before its own restore (SIGKILL, the OOM killer), which no
//! `Drop` or signal handler survives:
//!
//! - a watcher process (`sync-trace stress-restore-watch`, hidden) started by `stress` reads a
//!   pipe from it; the pipe closes when `stress` ends, however it ends; unless `stress` said
//!   on the pipe that it ran its own restore (`restore_attempted`: what that left, e.g. on a
//!   wedged kernel, is not tried twice), a journal still there then means `stress` did not
//!   restore, and the watcher restores from it;
//! - the next `stress` restores from a journal left behind (the watcher killed too, a reboot
//!   is not needed: the journal is on /run, which a reboot clears along with the state).
//!
//! The journal is JSON: the blocks and dax devices as found (`RestoreGuard`'s state).

use std::{
    io::{Read, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{blocks::Block, dax::DaxDevice, restore::RestoreGuard, sysfs::SysfsRoot};

/// Where the journal of the real sysfs lives (a tmpfs: gone with the state after a reboot).
pub const JOURNAL: &str = "/run/sync-trace/stress-restore.json";

#[derive(Debug, Serialize, Deserialize)]
struct Found {
    blocks: Vec<Block>,
    dax: Vec<DaxDevice>,
}

/// Writes the journal before the first change.
pub fn save(path: &Path, blocks: &[Block], dax: &[DaxDevice]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let found = Found {
        blocks: blocks.to_vec(),
        dax: dax.to_vec(),
    };
    // Written whole, then renamed: a reader never sees half a journal.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&found)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes the journal once everything is restored.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Restores what a journal left behind says and removes it; returns one line per block or
/// device put back or not restorable. Nothing to do without a journal.
pub fn recover(root: &SysfsRoot, path: &Path) -> anyhow::Result<Vec<String>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let found: Found = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a stress journal: remove it after checking the memory blocks and dax devices",
            path.display()
        )
    })?;
    let mut guard = RestoreGuard::new(root, &found.blocks, &found.dax);
    let (restored, failures) = guard.restore_listed();
    if failures.is_empty() {
        remove(path);
    }
    Ok(restored
        .into_iter()
        .map(|r| format!("restored {r}"))
        .chain(
            failures
                .into_iter()
                .map(|f| format!("could not restore {f}")),
        )
        .collect())
}

/// The watcher of one `stress`: dropped (or the process gone), its pipe closes.
pub struct Watcher {
    child: Child,
}

impl Watcher {
    /// Starts `sync-trace stress-restore-watch --journal PATH --write-timeout T` on a pipe.
    pub fn spawn(journal: &Path, write_timeout: Duration) -> anyhow::Result<Self> {
        let child = Command::new("/proc/self/exe")
            .arg("stress-restore-watch")
            .arg("--journal")
            .arg(journal)
            .arg("--write-timeout")
            .arg(format!("{}ms", write_timeout.as_millis()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the restore watcher (/proc/self/exe stress-restore-watch)")?;
        Ok(Self { child })
    }
}

impl Watcher {
    /// Tells the watcher that `stress` ran its restore: it will not restore again.
    pub fn restore_attempted(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(RESTORE_ATTEMPTED);
        }
    }
}

/// What `stress` writes on the watcher's pipe once it ran its own restore.
const RESTORE_ATTEMPTED: &[u8] = b"restore attempted\n";

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `sync-trace stress-restore-watch`: waits until its stdin closes (the `stress` that started
/// it ended, however), then, unless `stress` said it ran its own restore, restores what the
/// journal says, if it is still there. Ctrl-C and SIGTERM meant for `stress` (its process
/// group) are ignored: `stress` handles them itself.
pub fn watch(journal: PathBuf, write_timeout: Duration) -> anyhow::Result<i32> {
    // SAFETY: setting a signal's disposition to SIG_IGN runs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut stdin = std::io::stdin();
    let mut buf = [0u8; 64];
    let mut told = false;
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => told = true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if told {
        return Ok(0);
    }
    let root = SysfsRoot::default().with_write_timeout(write_timeout);
    for line in recover(&root, &journal)? {
        eprintln!("sync-trace stress: {line} (left by a stress that ended before restoring)");
    }
    Ok(0)
}

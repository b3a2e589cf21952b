//! One QEMU run: the serial ports read live, hot-add and checkpoint requests answered,
//! the timeout, and a panic or oops on the console noticed.

use super::accel::{kvm_failure, KvmFailed, KVM_BOOT_WITHIN};
use super::{qemu_args, Accel, QemuConfig, QemuResult, OOPS_MARKERS, PANIC_MARKERS, TAIL_LINES};
use crate::initramfs::{ACK, CHECKPOINT, EXIT_MARKER, HOTADD_REQUEST};
use crate::qmp::Qmp;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

/// How long a guest that oopsed on purpose gets to power off after its script's end (under
/// TCG, `poweroff -f` takes a second or two).
const POWEROFF_WITHIN: Duration = Duration::from_secs(30);

impl Lines {
    /// The complete lines so far; with `final_read`, the unterminated rest too.
    fn take(&mut self, final_read: bool) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            lines.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            );
        }
        if final_read && !self.partial.is_empty() {
            lines.push(
                String::from_utf8_lossy(&std::mem::take(&mut self.partial))
                    .trim_end()
                    .to_string(),
            );
        }
        lines
    }
}

/// Reads lines appended to a file since the last call.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    lines: Lines,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            lines: Lines::default(),
        }
    }

    fn poll(&mut self, final_read: bool) -> Vec<String> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        if let Some(f) = &mut self.file {
            let _ = f.read_to_end(&mut self.lines.partial);
        }
        self.lines.take(final_read)
    }
}

/// The script's serial port (ttyS1) as QEMU's socket chardev: its output is read without
/// blocking; checkpoint acknowledgements are written to it.
struct ScriptPort {
    sock: UnixStream,
    lines: Lines,
}

impl ScriptPort {
    /// Connects to QEMU's listening socket (QEMU waits for this before it starts the guest).
    fn connect(path: &Path, child: &mut KillOnDrop, within: Duration) -> Result<Option<Self>> {
        let t = Instant::now();
        loop {
            match UnixStream::connect(path) {
                Ok(sock) => {
                    sock.set_nonblocking(true)?;
                    return Ok(Some(ScriptPort {
                        sock,
                        lines: Lines::default(),
                    }));
                }
                Err(_) if child.0.try_wait()?.is_some() => return Ok(None),
                Err(e) if t.elapsed() > within => {
                    return Err(e).with_context(|| {
                        format!("QEMU's script port {} did not open", path.display())
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The complete lines that arrived; `final_read`: QEMU has exited, read to the end.
    fn poll(&mut self, final_read: bool) -> Vec<String> {
        let mut buf = [0u8; 8192];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.lines.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing more for now
            }
        }
        self.lines.take(final_read)
    }

    /// Tells the guest's `checkpoint NAME` to go on.
    fn ack(&mut self, name: &str) -> Result<()> {
        self.sock.set_nonblocking(false)?;
        let r = self.sock.write_all(format!("{ACK} {name}\n").as_bytes());
        self.sock.set_nonblocking(true)?;
        r.context("cannot acknowledge a checkpoint")
    }
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the guest until it powers off; `on_line` sees each ttyS1 line as it arrives.
pub fn run_qemu(cfg: &QemuConfig, on_line: &mut dyn FnMut(&str)) -> Result<QemuResult> {
    let qmp_sock = cfg.work_dir.join("qmp.sock");
    let script_sock = cfg.work_dir.join("ttyS1.sock");
    let qemu_err = cfg.work_dir.join("qemu.stderr");
    let args = qemu_args(cfg, &qmp_sock, &script_sock)?;
    let errf = File::create(&qemu_err)?;
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(errf.try_clone()?)
        .stderr(errf);
    // QEMU dies with this thread, also when xtask is killed by a signal (Ctrl-C, SIGTERM,
    // SIGKILL), where `KillOnDrop` never runs: no guest is left spinning on the host.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .context("cannot start qemu-system-x86_64: install qemu-system-x86")?;
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    let kvm = cfg.accel == Accel::Kvm;
    let qemu_failed = |child: &mut KillOnDrop| -> anyhow::Error {
        let _ = child.0.wait();
        if let Some(why) = kvm.then(|| kvm_failure(&qemu_err)).flatten() {
            return KvmFailed(why).into();
        }
        let err = std::fs::read(&qemu_err).unwrap_or_default();
        anyhow::anyhow!("QEMU failed: {}", crate::cmd::last_line(&err))
    };
    let Some(mut port) = ScriptPort::connect(&script_sock, &mut child, Duration::from_secs(30))?
    else {
        return Err(qemu_failed(&mut child));
    };
    let mut qmp = if cfg.hotadds.is_empty() {
        None
    } else {
        match Qmp::connect(&qmp_sock, Duration::from_secs(20)) {
            Ok(q) => Some(q),
            Err(e) => {
                if child.0.try_wait()?.is_some() {
                    return Err(qemu_failed(&mut child));
                }
                return Err(e);
            }
        }
    };
    let mut con_tail = Tail::new(cfg.console_log);
    let mut console: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    let mut exit_status = None;
    let mut next_hotadd = 0;
    let mut panic_seen: Option<Instant> = None;
    let mut oops: Option<Vec<String>> = None;
    // Under KVM the kernel's first line comes within a second or two; a KVM that opens but
    // cannot run the guest may also just spin without a word.
    let mut kernel_started = false;
    // When the exit line came (the guest then powers off).
    let mut exit_seen: Option<Instant> = None;
    loop {
        let mut exited = child.0.try_wait()?.is_some();
        // A task that oopsed dies holding the locks it had, a device's lock among them (the
        // device-dax bind: `bind_store()` → `device_lock()`), and `poweroff -f` waits for
        // every device's lock in `device_shutdown()`: such a guest never powers off. Its
        // output is all here once the exit line is acknowledged, so QEMU is stopped.
        if !exited
            && cfg.expect_oops
            && oops.is_some()
            && exit_seen.is_some_and(|t| t.elapsed() > POWEROFF_WITHIN)
        {
            eprintln!(
                "xtask: the guest did not power off within {} s of its script's end (an oopsed task holds a device lock its shutdown waits for): QEMU stopped",
                POWEROFF_WITHIN.as_secs()
            );
            let _ = child.0.kill();
            let _ = child.0.wait();
            exited = true;
        }
        for line in port.poll(exited) {
            if let Some(st) = line.strip_prefix(EXIT_MARKER) {
                exit_status = st.trim().parse::<i32>().ok();
                exit_seen.get_or_insert_with(Instant::now);
                // /init powers off once it has this: all the output is here.
                if !exited {
                    let _ = port.ack("exit");
                }
                continue;
            }
            // At a checkpoint the guest waits: the caller acts in on_line, then it goes on.
            on_line(&line);
            if let Some(name) = line.strip_prefix(CHECKPOINT) {
                if !exited {
                    port.ack(name.trim())?;
                }
            }
            if line.trim() == HOTADD_REQUEST {
                match (cfg.hotadds.get(next_hotadd), qmp.as_mut()) {
                    (Some(h), Some(q)) => {
                        eprintln!(
                            "xtask: hot-add #{next_hotadd}: {} at {:#x} ({:.1} s)",
                            h.size_text(),
                            h.addr,
                            start.elapsed().as_secs_f64()
                        );
                        q.hot_add_dimm(next_hotadd, h.addr, h.size)
                            .with_context(|| {
                                format!("hot-add of {} at {:#x} refused", h.size_text(), h.addr)
                            })?;
                        next_hotadd += 1;
                    }
                    _ => eprintln!(
                        "xtask: the guest asked for a hot-add but none is left: pass more --hotadd"
                    ),
                }
            }
            lines.push(line);
        }
        for line in con_tail.poll(exited) {
            kernel_started |= line.contains("Linux version");
            let oops_line = OOPS_MARKERS.iter().any(|m| line.contains(m));
            if cfg.expect_oops && (oops_line || oops.is_some()) {
                let o = oops.get_or_insert_with(Vec::new);
                if o.len() < TAIL_LINES {
                    o.push(line.clone());
                }
            } else if panic_seen.is_none() && PANIC_MARKERS.iter().any(|m| line.contains(m)) {
                panic_seen = Some(Instant::now());
            }
            console.push(line);
            if console.len() > 4 * TAIL_LINES {
                console.drain(..console.len() - TAIL_LINES);
            }
        }
        let tail = || console[console.len().saturating_sub(TAIL_LINES)..].join("\n");
        // Give the kernel a second to print the whole report before stopping it.
        if panic_seen.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            bail!(
                "kernel crashed (console log {}); last console lines:\n{}",
                cfg.console_log.display(),
                tail()
            );
        }
        if exited {
            if exit_status.is_none() && panic_seen.is_some() {
                bail!(
                    "kernel crashed (console log {}); last console lines:\n{}",
                    cfg.console_log.display(),
                    tail()
                );
            }
            let Some(exit_status) = exit_status else {
                let err = std::fs::read(&qemu_err).unwrap_or_default();
                bail!(
                    "the guest stopped without reporting the script's status (QEMU: {}); last console lines:\n{}",
                    crate::cmd::last_line(&err),
                    tail()
                );
            };
            return Ok(QemuResult {
                lines,
                exit_status,
                oops: oops.map(|o| o.join("\n")),
            });
        }
        if kvm && !kernel_started && lines.is_empty() && start.elapsed() > KVM_BOOT_WITHIN {
            return Err(KvmFailed(format!(
                "no kernel output within {} s",
                KVM_BOOT_WITHIN.as_secs()
            ))
            .into());
        }
        if kvm {
            if let Some(why) = kvm_failure(&qemu_err) {
                if lines.is_empty() {
                    // Nothing of the script ran: the caller may start over under TCG.
                    return Err(KvmFailed(why).into());
                }
                bail!("QEMU stopped the guest under KVM mid-script: {why} (SYNC_TRACE_ACCEL=tcg avoids KVM)");
            }
        }
        if start.elapsed() > cfg.timeout {
            // Where the script was: its last lines, as they came.
            let script = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
            bail!(
                "guest timed out after {} s (raise the timeout?); last console lines:\n{}\nlast script lines:\n{script}",
                cfg.timeout.as_secs(),
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! A sysfs write that can be given up on: made by a child process, which the caller waits
//! for at most a timeout.
//!
//! Why a process and not a thread: a memory-block write can wait uninterruptibly on a
//! kernel lock (the memory-hotplug lock: `mem_hotplug_begin()` → `percpu_down_write()`,
//! mm/memory_hotplug.c; a device's lock), and a task that oopsed while holding one never
//! releases it: the write then never returns. (An offline that keeps retrying migration of
//! pages it can never migrate does not return either, but ends when killed.) A thread stuck so keeps its whole process alive after
//! `exit()` (the group leader is not reaped while a thread is left, so the shell's `wait`
//! and a pipe reading stdout never end, the fd table being shared). A child process stuck
//! so is abandoned: `stress` exits, the child is reparented to init, and it holds no file
//! of `stress` (it closes every inherited descriptor before it opens the sysfs file).
//!
//! The child is forked from a multithreaded process, so between `fork()` and `_exit()` it
//! calls only async-signal-safe functions and allocates nothing: the path and value are
//! prepared before the fork. Its exit status carries the errno of the failed call.
//!
//! Signals: Ctrl-C (the terminal's SIGINT reaches the child too) and the nudge `stress`
//! sends its writing thread on SIGTERM (glue.rs: it interrupts `poll()` here, and is
//! passed on to the child as SIGINT) end the child, with the default action, unless the
//! caller ignores SIGINT (the restore watcher): an offline that keeps retrying page
//! migration then stops (`offline_pages()` returns EINTR when a signal is pending).

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt as _,
    path::Path,
    time::{Duration, Instant},
};

/// How the child's write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The whole value was written.
    Written,
    /// `open()` or `write()` failed with this errno.
    Errno(i32),
    /// `write()` took only this many bytes.
    Short,
    /// The child was ended by this signal (SIGINT: interrupted).
    Signal(i32),
    /// It did not end within the timeout; it was sent SIGKILL, and ended then
    /// (`killed`: a killable wait, such as an offline that keeps retrying page
    /// migration) or not within `KILL_GRACE` (blocked uninterruptibly, as on the
    /// memory-hotplug lock: left behind).
    Hung { killed: bool },
}

/// How long a child sent SIGKILL at the timeout gets to end: a killable wait in the
/// kernel ends at once, even under emulation.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// The child's exit status for a short write (errno values stay below 134).
const SHORT: i32 = 255;

/// Writes `value` to `path` in one `write(2)` made by a child process; waits for it at
/// most `timeout`.
pub fn write(path: &Path, value: &str, timeout: Duration) -> io::Result<Ended> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("{}: a NUL byte in the path", path.display())))?;
    let bytes = value.as_bytes();
    let max_fd = open_files_limit();
    // SAFETY: the child runs `child()` only, which calls async-signal-safe functions on
    // memory prepared before the fork and ends with `_exit()`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child, see above.
        unsafe { child(&cpath, bytes, max_fd) }
    }
    wait(pid, timeout)
}

/// Descriptors to close in the child where `close_range()` (Linux 5.9) is missing.
fn open_files_limit() -> libc::c_int {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    if ok {
        r.rlim_cur.min(65_536) as libc::c_int
    } else {
        1024
    }
}

/// The child: default dispositions for SIGINT and SIGTERM (unless ignored), no inherited
/// descriptor, one `open()` and one `write()`, then `_exit()` with the errno.
unsafe fn child(path: &CString, value: &[u8], max_fd: libc::c_int) -> ! {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction != libc::SIG_IGN
        {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    // Every descriptor, stdin to stderr included: a child left behind must not hold the
    // pipe a caller reads `stress`'s output from.
    if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
        for fd in 0..max_fd {
            libc::close(fd);
        }
    }
    let errno = || *libc::__errno_location();
    let fd = libc::open(
        path.as_ptr(),
        libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
    );
    if fd < 0 {
        libc::_exit(errno());
    }
    let n = libc::write(fd, value.as_ptr().cast(), value.len());
    if n < 0 {
        libc::_exit(errno());
    }
    libc::_exit(if n as usize == value.len() { 0 } else { SHORT })
}

/// Waits for the child until `timeout`; a signal to this thread (EINTR) is passed on to
/// the child as SIGINT.
fn wait(pid: libc::pid_t, timeout: Duration) -> io::Result<Ended> {
    let deadline = Instant::now() + timeout;
    // A pidfd (Linux 5.3) is readable when the child ends; without one, a short sleep.
    // SAFETY: pidfd_open takes a pid and flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    let res = loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is this process's child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break Ok(ended(status));
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                break Err(e);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Ok(Ended::Hung {
                killed: kill(pid, pidfd),
            });
        }
        let rc = if pidfd >= 0 {
            let mut p = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, ms) }
        } else {
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 2_000_000,
            };
            // SAFETY: a valid timespec; no remainder wanted.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) }
        };
        if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            // SAFETY: this process's own child.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
    };
    if pidfd >= 0 {
        // SAFETY: our descriptor.
        unsafe { libc::close(pidfd) };
    }
    res
}

/// SIGKILL for a child that outlived its timeout: whether it ended within `KILL_GRACE`. One
/// that did not (an uninterruptible wait) is left behind: init reaps it if it ever ends
/// (a thread here reaps it while this process lives).
fn kill(pid: libc::pid_t, pidfd: libc::c_int) -> bool {
    // SAFETY: this process's own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let until = Instant::now() + KILL_GRACE;
    loop {
        let mut st = 0;
        // SAFETY: as above.
        if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if pidfd >= 0 {
            let mut p = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, 1000) as libc::c_int) };
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::thread::spawn(move || {
        let mut st = 0;
        // SAFETY: as above.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    });
    false
}

fn ended(status: libc::c_int) -> Ended {
    if libc::WIFSIGNALED(status) {
        return Ended::Signal(libc::WTERMSIG(status));
    }
    match libc::WEXITSTATUS(status) {
        0 => Ended::Written,
        SHORT => Ended::Short,
        e => Ended::Errno(e),
    }
}

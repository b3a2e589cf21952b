//! aya's `EbpfLoader` without its own parse of the kernel's BTF.
//!
//! `EbpfLoader::new` (aya 0.14) parses /sys/kernel/btf/vmlinux itself, for
//! CO-RE, and keeps the parse private; fentry/fexit need it again
//! (`FEntry::load` looks the function's id up in a `Btf`), so a daemon that
//! uses both parses it twice: 0.3–0.6 s each under TCG, and about 14 MiB.
//! `EbpfLoader::btf` takes a parse made elsewhere, but only after `new` made
//! its own. Here `new` runs while no file can be opened, so that its parse
//! fails at once (aya then keeps `None`), and the caller hands it the one
//! parse it also gives fentry/fexit. Were `new` to open nothing, or parse
//! anyway, the result would be the same loader, only slower.

use std::{fs::File, os::fd::AsRawFd};

use aya::{Btf, EbpfLoader};

/// A loader whose target BTF is `btf` (`None`: no CO-RE relocation, as aya
/// does when the kernel has no BTF).
///
/// The limit on open files is the process's: it is lowered for the time
/// `new` takes only while the process has one thread (another thread's open
/// would fail meanwhile); otherwise `new` parses, and its parse is replaced.
pub fn loader_with(btf: Option<&Btf>) -> EbpfLoader<'_> {
    let mut loader = if one_thread() {
        without_parse()
    } else {
        EbpfLoader::new()
    };
    loader.btf(btf);
    loader
}

/// Whether this process has a single thread that may open files (its tasks
/// in /proc): the `kallsyms` thread (`symbols.rs`) only reads a file opened
/// before it started, which the lowered limit does not touch. A thread just
/// joined may still be listed for a moment after its join returned (the
/// kernel wakes the joiner before it removes the task): asked again a few
/// times, a millisecond apart.
fn one_thread() -> bool {
    (0..JOIN_POLLS).any(|i| {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::fs::read_dir("/proc/self/task").is_ok_and(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .map_or(true, |c| c.trim_end() != READS_ONLY)
                })
                .take(2)
                .count()
                == 1
        })
    })
}

/// The name of the thread that reads /proc/kallsyms (`symbols.rs`).
pub const READS_ONLY: &str = "kallsyms";

/// How many times [`one_thread`] looks (20 ms at most, then `new` parses).
const JOIN_POLLS: u32 = 20;

fn without_parse<'a>() -> EbpfLoader<'a> {
    // The lowest free descriptor is the one the next open would take; with
    // the soft limit at it, every open fails (EMFILE).
    let lowest = match File::open("/dev/null") {
        Ok(f) => f.as_raw_fd(),
        Err(_) => return EbpfLoader::new(),
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with valid pointers to initialized
    // structs; only this process's limit on descriptors changes, and it is
    // put back before any other code runs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) != 0 {
            return EbpfLoader::new();
        }
        let low = libc::rlimit {
            rlim_cur: lowest as libc::rlim_t,
            rlim_max: old.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &low) != 0 {
            return EbpfLoader::new();
        }
        let loader = EbpfLoader::new();
        libc::setrlimit(libc::RLIMIT_NOFILE, &old);
        loader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_is_seen() {
        // The test harness runs tests on threads of its own: never one here.
        assert!(!one_thread());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(!one_thread());
        drop(tx);
        t.join().unwrap().unwrap_err();
    }
}

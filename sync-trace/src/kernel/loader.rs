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
/// Must be called while the process has one thread: the limit on open files
/// is the process's, and it is lowered for the time `new` takes.
pub fn loader_with(btf: Option<&Btf>) -> EbpfLoader<'_> {
    let mut loader = without_parse();
    loader.btf(btf);
    loader
}

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

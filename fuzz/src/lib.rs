//! Fuzz targets for every decoder and parser of sync-trace: what the kernel
//! writes (ring-buffer records, the scan map), what the system gives
//! (`/proc/kallsyms`), what a user gives (a `replay` recording, command-line
//! values, the hot-add plan of `cargo xtask vm`).
//!
//! Each target is a function of arbitrary bytes that panics when an
//! invariant breaks: a decoder panicked, a rejection is not one line, or does
//! not name the field or line at fault. libFuzzer drives them coverage-guided
//! (`cargo xtask fuzz`, docs/security.md); `cargo test` gives each a short
//! smoke run of random inputs and seeds.

pub mod cli;
pub mod input;
pub mod kallsyms;
pub mod replay;
pub mod ring;
pub mod scan;
pub mod seeds;

/// A target: its name (the binary in fuzz_targets/) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 5] = [
    ("ring", ring::run),
    ("scan", scan::run),
    ("kallsyms", kallsyms::run),
    ("replay", replay::run),
    ("cli", cli::run),
];

/// Longest input each target is given (libFuzzer's `-max_len`): the scan
/// target needs several `struct st_scan` (about 8 KiB each), the others a
/// few records or lines.
pub fn max_len(target: &str) -> usize {
    match target {
        "scan" => 64 * 1024,
        _ => 16 * 1024,
    }
}

/// Panics unless `msg` is one non-empty line that contains every one of
/// `names` (the field, flag or line at fault).
#[track_caller]
pub fn assert_error_line(msg: &str, names: &[&str]) {
    assert!(!msg.trim().is_empty(), "empty error message");
    assert!(
        !msg.contains(['\n', '\r']),
        "error of more than one line: {msg:?}"
    );
    for n in names {
        assert!(msg.contains(n), "error {msg:?} does not name {n:?}");
    }
}

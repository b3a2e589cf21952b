//! Command-line values of any content: `sync-trace`'s whole command line,
//! each of its value flags (addresses, durations, sizes, counts, the
//! stress plan's `--blocks` and `--dax`), and `cargo xtask vm`'s hot-add
//! plan (`--hotadd`/`--device-range` ADDR:SIZE, `--virtio-mem`). A value
//! that is refused is one line naming its flag.

use std::{ffi::OsString, os::unix::ffi::OsStringExt, str::FromStr};

use clap::Parser;
use sync_trace::cli::{usage_error_line, Cli};
use xtask::mem::{parse_size, HotAdd, VirtioMem};

use crate::{assert_error_line, input::Input};

/// Every value flag: the subcommand words before it, and the flag.
const FLAGS: [(&[&str], &str); 15] = [
    (&["run"], "--duration"),
    (&["run"], "--metrics-addr"),
    (&["run"], "--grace"),
    (&["run"], "--sweep"),
    (&["run"], "--walk-every"),
    (&["run"], "--max-pgds"),
    (&["run"], "--test-ring-size"),
    (&["audit"], "--max-pgds"),
    (&["replay", "rec.ndjson"], "--grace"),
    (&["replay", "rec.ndjson"], "--metrics-addr"),
    (&["stress"], "--cycles"),
    (&["stress"], "--duration"),
    (&["stress"], "--blocks"),
    (&["stress"], "--dax"),
    (&["stress"], "--report"),
];

/// Arguments per free command line at most.
const MAX_ARGS: usize = 16;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 3 {
        0 => free(input.bytes(data.len())),
        1 => {
            let (words, flag) = FLAGS[usize::from(input.u8()) % FLAGS.len()];
            let value = input.bytes(data.len());
            flag_value(words, flag, value);
        }
        _ => hot_add_plan(&String::from_utf8_lossy(input.bytes(data.len()))),
    }
}

/// Parses `argv` as the binary does; a refusal must be one line.
fn parse(argv: Vec<OsString>) -> Result<Cli, String> {
    Cli::try_parse_from(&argv).map_err(|e| {
        if !e.use_stderr() {
            // --help, --version: printed on stdout, exit 0.
            return String::new();
        }
        let line = usage_error_line(&e, &argv);
        assert_error_line(&line, &["sync-trace: "]);
        line
    })
}

/// Any arguments (NUL-separated, not necessarily UTF-8).
fn free(bytes: &[u8]) {
    let mut argv = vec![OsString::from("sync-trace")];
    argv.extend(
        bytes
            .split(|&b| b == 0)
            .take(MAX_ARGS)
            .map(|a| OsString::from_vec(a.to_vec())),
    );
    let _ = parse(argv);
}

/// `sync-trace WORDS FLAG=VALUE`: refused only with the flag named.
fn flag_value(words: &[&str], flag: &str, value: &[u8]) {
    let mut argv: Vec<OsString> = std::iter::once("sync-trace")
        .chain(words.iter().copied())
        .map(OsString::from)
        .collect();
    let mut arg = OsString::from(format!("{flag}="));
    arg.push(OsString::from_vec(value.to_vec()));
    argv.push(arg);
    if let Err(line) = parse(argv) {
        assert_error_line(&line, &[flag]);
    }
}

/// `cargo xtask vm`'s memory plan: sizes, ADDR:SIZE ranges, virtio-mem.
fn hot_add_plan(s: &str) {
    if let Err(e) = parse_size(s) {
        assert_error_line(&format!("{e:#}"), &[]);
    }
    match HotAdd::from_str(s) {
        Ok(h) => assert!(
            h.size > 0 && h.addr.checked_add(h.size).is_some(),
            "{s:?}: a range past the end of the address space was accepted"
        ),
        Err(e) => assert_error_line(&format!("{e:#}"), &[]),
    }
    match VirtioMem::from_str(s) {
        Ok(v) => assert!(
            v.addr.checked_add(v.size).is_some() && v.requested <= v.size,
            "{s:?}: an impossible virtio-mem device was accepted"
        ),
        Err(e) => assert_error_line(&format!("{e:#}"), &[]),
    }
}

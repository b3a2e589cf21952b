//! `src/bpf/aya_log.h` writes aya-log's private wire format by hand. This
//! test builds that header for the host (`tests/aya_log_host.c`, with stub
//! libbpf helpers), runs the real `st_log()` code for every record kind the
//! programs write, and compares each record byte for byte with what
//! aya-log-common's own encoder (`Header`, `Field`, `Argument`) makes of the
//! same log call: the encoder aya-log-ebpf writes with, and the one aya-log's
//! own tests feed to its parser. aya-log 0.3 keeps that parser (`log_buf`)
//! private and reads only from a kernel ring buffer, so it cannot be called
//! here; the guests' forced-log run (`st_cfg_force_log`) is its end-to-end
//! check.

use std::{path::Path, process::Command};

use aya_log_common::{Argument, DisplayHint, Field, Header, Level};

const TARGET: &str = "sync_trace_ebpf";
const FILE: &str = "sync_trace.bpf.c";
/// `ST_LOG_BUF_SIZE`: the per-CPU scratch a record is built in.
const BUF_SIZE: usize = 256;

/// One record as the stub `bpf_ringbuf_output()` saw it.
struct Written {
    line: u32,
    ret: i32,
    bytes: Vec<u8>,
}

/// Builds and runs the host harness: the records `st_log()` wrote.
fn run_harness() -> Vec<Written> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aya_log_host");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let out = Command::new(&clang)
        .args([
            "-O2",
            "-Wall",
            "-Werror",
            "-I/usr/include/x86_64-linux-gnu",
            "-I",
        ])
        .arg(manifest.join("src/bpf"))
        .arg(manifest.join("tests/aya_log_host.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {clang}: {e}"));
    assert!(
        out.status.success(),
        "clang failed on tests/aya_log_host.c:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success(), "aya_log_host failed");
    let mut rest = &out.stdout[..];
    let mut records = Vec::new();
    let u32_at = |rest: &mut &[u8]| {
        let (v, r) = rest.split_at(4);
        *rest = r;
        u32::from_ne_bytes(v.try_into().unwrap())
    };
    while !rest.is_empty() {
        let size = u32_at(&mut rest) as usize;
        let line = u32_at(&mut rest);
        let ret = u32_at(&mut rest) as i32;
        let (bytes, r) = rest.split_at(size);
        rest = r;
        records.push(Written {
            line,
            ret,
            bytes: bytes.to_vec(),
        });
    }
    records
}

/// The record aya-log-ebpf would write for
/// `warn!(ctx, "{msg}{value:hint}")` at `line`: a Str argument, a display
/// hint, then the value, after the header.
fn expected(
    line: u32,
    level: Level,
    msg: &str,
    hint: DisplayHint,
    value: impl Argument,
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut op = |s: &[u8]| {
        body.extend_from_slice(s);
        Some(())
    };
    Header::new(TARGET, level, TARGET, FILE, line, 3)
        .unwrap()
        .with_bytes(&mut op)
        .unwrap();
    let (kind, v) = msg.as_argument();
    Field::new(kind, v).unwrap().with_bytes(&mut op).unwrap();
    let (kind, v) = hint.as_argument();
    Field::new(kind, v).unwrap().with_bytes(&mut op).unwrap();
    let (kind, v) = value.as_argument();
    Field::new(kind, v).unwrap().with_bytes(&mut op).unwrap();
    // The u16 record size, itself included, comes first.
    let size = u16::try_from(body.len() + 2).unwrap();
    let mut record = size.to_ne_bytes().to_vec();
    record.extend(body);
    record
}

fn assert_same(what: &str, c: &[u8], rust: &[u8]) {
    if c != rust {
        let at = c
            .iter()
            .zip(rust)
            .position(|(a, b)| a != b)
            .unwrap_or(c.len().min(rust.len()));
        panic!(
            "{what}: aya_log.h wrote {} bytes, aya-log-common encodes {}; first difference at byte {at}\n  C:    {:02x?}\n  Rust: {:02x?}",
            c.len(),
            rust.len(),
            c,
            rust
        );
    }
}

#[test]
fn st_log_writes_what_aya_log_common_encodes() {
    let records = run_harness();
    assert_eq!(records.len(), 7, "aya_log_host.c writes seven records");
    let w = |i: usize| &records[i];
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "INFLIGHT full (u64, default hint)",
            expected(
                w(0).line,
                Level::Warn,
                "INFLIGHT map full; exit of target ",
                DisplayHint::Default,
                3u64,
            ),
        ),
        (
            "stack capture failed (i64, default hint)",
            expected(
                w(1).line,
                Level::Warn,
                "kernel stack capture failed, error ",
                DisplayHint::Default,
                -14i64,
            ),
        ),
        (
            "forced diagnostic (u64, lower hex)",
            expected(
                w(2).line,
                Level::Warn,
                "forced kernel-side diagnostic at entry, start=0x",
                DisplayHint::LowerHex,
                0xffff_ea80_0000_0000u64,
            ),
        ),
        (
            "error level",
            expected(
                w(3).line,
                Level::Error,
                "error level ",
                DisplayHint::Default,
                -1i64,
            ),
        ),
        (
            "info level",
            expected(
                w(4).line,
                Level::Info,
                "info level ",
                DisplayHint::LowerHex,
                0u64,
            ),
        ),
    ];
    for (i, (what, rust)) in cases.iter().enumerate() {
        let r = w(i);
        assert_eq!(r.ret, 0, "{what}: st_log() failed");
        assert!(
            r.bytes.len() <= BUF_SIZE,
            "{what}: record longer than the scratch buffer"
        );
        assert_same(what, &r.bytes, rust);
    }
    // No scratch buffer, then a full ring: -1 (the caller counts
    // LOST[ST_LOST_LOGS]) and nothing in the ring.
    for r in &records[5..] {
        assert_eq!((r.ret, r.bytes.len()), (-1, 0), "line {}", r.line);
    }
}

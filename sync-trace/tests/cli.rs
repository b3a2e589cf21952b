//! Bad command lines: each exits 2 with one line on stderr that names the
//! problem, and nothing on stdout, before anything touches the kernel (so
//! this runs as an ordinary user).

use std::process::Command;

const CASES: &[(&[&str], &str)] = &[
    (&["frobnicate"], "frobnicate"),
    (&["run", "--no-such-flag"], "--no-such-flag"),
    (&["run", "--grace"], "--grace"),
    (&["run", "--grace", "soon"], "soon"),
    (&["run", "--grace", "0s"], "zero"),
    (&["run", "--sweep", "0ms"], "zero"),
    (&["run", "--walk-every", "-1s"], "-1"),
    (&["run", "--duration", "9999999d"], "year"),
    (&["run", "--max-pgds", "0"], "max-pgds"),
    (&["run", "--max-pgds", "4294967296"], "4294967296"),
    (
        &["run", "--metrics-addr", "localhost:nope"],
        "not an address",
    ),
    (&["run", "--metrics-addr", "70000"], "not an address"),
    // A value whose own line breaks mimic clap's `tip:` lines: the flag is still named.
    (
        &["run", "--metrics-addr=*\n*\n\u{1}tip:\r\r"],
        "--metrics-addr",
    ),
    (&["run", "--test-ring-size", "1000"], "power of two"),
    (&["run", "--json", "--json"], "--json"),
    (&["audit", "--max-pgds", "-3"], "-3"),
    (&["replay"], "FILE"),
    (&["replay", "a", "b"], "b"),
    (&["replay", "x.ndjson", "--grace", "1"], "1"),
    (&["probe", "extra"], "extra"),
    (&["stress", "--cycles", "0"], "0"),
    (&["stress", "--cycles", "many"], "many"),
    (&["stress", "--blocks", "12-3"], "12-3"),
    (&["stress", "--blocks", "memoryX"], "memoryX"),
    (&["stress", "--dax", "dax0"], "dax0"),
    (&["stress", "--dax", "dax0.0/../../x"], "dax0.0/../../x"),
    (&["stress", "--duration", "0s"], "zero"),
    (
        &["stress", "--from-json", "r.json", "--cycles", "2"],
        "--cycles",
    ),
];

#[test]
fn bad_command_lines_exit_2_with_one_line() {
    for (args, names) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_sync-trace"))
            .args(*args)
            .env("RUST_LOG", "off")
            .output()
            .expect("run sync-trace");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: not one line:\n{stderr}"
        );
        assert!(
            stderr.contains(names),
            "{args:?}: the line does not name {names:?}: {stderr}"
        );
    }
}

#[test]
fn help_and_version_go_to_stdout_and_succeed() {
    for args in [&["--help"][..], &["--version"], &["run", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sync-trace"))
            .args(args)
            .output()
            .expect("run sync-trace");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
}

/// `stress --from-json`: a saved report printed again without privilege, with
/// its own exit status; a file that is not one is one line, exit 1.
#[test]
fn stress_from_json_redraws_a_saved_report() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stress-6.12.json"
    );
    let html = std::env::temp_dir().join(format!("sync-trace-cli-{}.html", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_sync-trace"))
        .args(["stress", "--json", "--from-json", fixture, "--report"])
        .arg(&html)
        .env("RUST_LOG", "off")
        .output()
        .expect("run sync-trace");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["exit_code"], 3);
    let page = std::fs::read_to_string(&html).expect("the page");
    let _ = std::fs::remove_file(&html);
    assert!(page.contains("unsynced: 4 of 5 PGDs lacked the entry"));

    let out = Command::new(env!("CARGO_BIN_EXE_sync-trace"))
        .args(["stress", "--from-json", "Cargo.toml"])
        .env("RUST_LOG", "off")
        .output()
        .expect("run sync-trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a report saved by `sync-trace stress --json`"),
        "{stderr}"
    );
}

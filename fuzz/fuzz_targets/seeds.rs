//! Writes every target's seeds to DIR/TARGET/seed-N: the corpus
//! `cargo xtask fuzz` starts libFuzzer from.

use std::{fs, path::PathBuf};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args_os().nth(1).expect("usage: seeds DIR"));
    for (name, _) in sync_trace_fuzz::TARGETS {
        let d = dir.join(name);
        fs::create_dir_all(&d)?;
        for (i, s) in sync_trace_fuzz::seeds::of(name).iter().enumerate() {
            fs::write(d.join(format!("seed-{i}")), s)?;
        }
    }
    Ok(())
}

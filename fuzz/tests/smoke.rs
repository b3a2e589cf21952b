//! A short smoke run of every fuzz target: its seeds, then random inputs.
//! The coverage-guided run of millions of inputs is `cargo xtask fuzz`.

use proptest::prelude::*;
use sync_trace_fuzz::{max_len, seeds, TARGETS};

#[test]
fn every_target_takes_its_seeds() {
    for (name, run) in TARGETS {
        let seeds = seeds::of(name);
        assert!(!seeds.is_empty(), "{name}: no seeds");
        for s in seeds {
            run(&s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_target_takes_random_bytes(
        which in 0..TARGETS.len(),
        data in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let (name, run) = TARGETS[which];
        run(&data[..data.len().min(max_len(name))]);
    }

    /// Random edits of the seeds reach further than random bytes.
    #[test]
    fn every_target_takes_mutated_seeds(
        which in 0..TARGETS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let (name, run) = TARGETS[which];
        for mut s in seeds::of(name) {
            if s.is_empty() {
                continue;
            }
            for (at, b) in &edits {
                let i = at.index(s.len());
                s[i] = *b;
            }
            run(&s);
        }
    }
}

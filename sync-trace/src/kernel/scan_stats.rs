//! What the page-table scans cost: kernel time of the test runs, which is
//! charged to the daemon, logged at the end of `run`.

use std::fmt;

use sync_trace_common::raw::RawScan;

/// What the scans cost so far (kernel time of the test runs, which is
/// charged to the daemon).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub tables: u64,
    pub walks: u64,
    /// Test runs, table scans included.
    pub runs: u64,
    /// Sum of the test runs' durations, measured by the program.
    pub busy_ns: u64,
    /// Longest single test run.
    pub max_run_ns: u64,
    /// Longest single test run of a walk.
    pub max_walk_run_ns: u64,
    /// Test runs of walks, and those that took over 1 ms (the budget is
    /// half that; interrupts served during a run count in its time).
    pub walk_runs: u64,
    pub walk_runs_over_1ms: u64,
    /// Durations of the first walk test runs (bounded), for their median:
    /// robust to the rare run that an interrupt, or the host descheduling an
    /// emulated CPU, stretches.
    pub walk_run_sample: Vec<u64>,
}

/// Walk test runs kept for the median.
const WALK_RUN_SAMPLE: usize = 4096;

impl ScanStats {
    /// One table scan (a single test run).
    pub fn table(&mut self, r: &RawScan) {
        self.tables += 1;
        self.runs += 1;
        self.busy_ns = self.busy_ns.saturating_add(r.busy_ns);
        self.max_run_ns = self.max_run_ns.max(r.max_run_ns);
    }

    /// One test run of a walk that took `run_ns`.
    pub fn walk_run(&mut self, run_ns: u64) {
        self.walk_runs += 1;
        if run_ns > 1_000_000 {
            self.walk_runs_over_1ms += 1;
        }
        if self.walk_run_sample.len() < WALK_RUN_SAMPLE {
            self.walk_run_sample.push(run_ns);
        }
    }

    /// One finished walk: `r` holds its totals.
    pub fn walk(&mut self, r: &RawScan) {
        self.walks += 1;
        self.runs += u64::from(r.runs);
        self.busy_ns = self.busy_ns.saturating_add(r.busy_ns);
        self.max_run_ns = self.max_run_ns.max(r.max_run_ns);
        self.max_walk_run_ns = self.max_walk_run_ns.max(r.max_run_ns);
    }

    pub fn median_walk_run_ns(&self) -> u64 {
        let mut v = self.walk_run_sample.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
}

impl fmt::Display for ScanStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} table, {} walks, {} test runs, {} us in the kernel, longest run {} us (walk {} us), {} of {} walk runs over 1 ms, median walk run {} us",
            self.tables,
            self.walks,
            self.runs,
            self.busy_ns / 1000,
            self.max_run_ns / 1000,
            self.max_walk_run_ns / 1000,
            self.walk_runs_over_1ms,
            self.walk_runs,
            self.median_walk_run_ns() / 1000
        )
    }
}

//! `--report`'s early copy: a finding (a confirmed unsynced population, a
//! mismatched PGD) is written to the report file at once, while the run goes
//! on, because what follows a missed sync is often an oops that ends the
//! command or the machine before the final report. The final report replaces
//! the copy when the run ends.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use super::{
    cycle::{CycleEvent, Plan},
    html,
    observer::StressObserver,
    report::ReportBuilder,
};
use crate::record::Record;

/// At most one early copy per this interval (a storm of findings is one write a second).
const EVERY: Duration = Duration::from_secs(1);

pub struct EarlyReport<'a> {
    pub builder: &'a mut ReportBuilder,
    plan: &'a Plan,
    path: Option<PathBuf>,
    findings: u64,
    written: u64,
    last: Option<Instant>,
}

impl<'a> EarlyReport<'a> {
    pub fn new(builder: &'a mut ReportBuilder, plan: &'a Plan, path: Option<PathBuf>) -> Self {
        Self {
            builder,
            plan,
            path,
            findings: 0,
            written: 0,
            last: None,
        }
    }

    fn write(&mut self) {
        let Some(path) = &self.path else { return };
        let mut r = self.builder.clone().finish(self.plan, false, None);
        r.in_progress = true;
        // Written beside and renamed over: a crash mid-write leaves the last whole copy.
        let tmp = path.with_extension("html.partial");
        let res = std::fs::write(&tmp, html::page(&r)).and_then(|_| std::fs::rename(&tmp, path));
        match res {
            Ok(()) => {
                self.written = self.findings;
                self.last = Some(Instant::now());
                eprintln!(
                    "stress: finding written to {} (the run goes on)",
                    path.display()
                );
            }
            Err(e) => {
                // A full disk leaves a truncated copy: not worth keeping beside the last whole one.
                let _ = std::fs::remove_file(&tmp);
                eprintln!(
                    "stress: cannot write {}: {e} (the run goes on)",
                    path.display()
                );
            }
        }
    }
}

impl StressObserver for EarlyReport<'_> {
    fn record(&mut self, r: &Record) {
        self.builder.record(r);
        if matches!(r, Record::Unsynced(u) if u.confirmed) || matches!(r, Record::Mismatch(_)) {
            self.findings += 1;
        }
        if self.findings > self.written && self.last.is_none_or(|t| t.elapsed() >= EVERY) {
            self.write();
        }
    }

    fn cycle_event(&mut self, ev: &CycleEvent) {
        self.builder.cycle_event(ev);
    }
}

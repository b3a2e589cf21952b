//! Progress on stderr: an indicatif bar on a terminal, plain lines (one per
//! step) when stderr is a file or a pipe.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::cycle::{CycleEvent, Outcome};

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `cycles`: the planned count (`None`: until a duration ends).
    pub fn new(cycles: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(cycles, ProgressDrawTarget::stderr());
        let template = if cycles.is_some() {
            "{spinner} cycle {pos}/{len} [{bar:30}] {elapsed} {msg}"
        } else {
            "{spinner} cycle {pos} {elapsed} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self { bar: Some(bar) }
    }

    /// A line above the bar, or on its own.
    pub fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    pub fn on(&mut self, ev: &CycleEvent) {
        match ev {
            CycleEvent::Start { index, of, .. } => match &self.bar {
                Some(b) => b.set_message(format!("cycle {index} running")),
                None => eprintln!(
                    "stress: cycle {index}{} start",
                    of.map_or(String::new(), |n| format!("/{n}"))
                ),
            },
            CycleEvent::Action(a) => {
                let what = match &a.outcome {
                    Outcome::Ok => "ok".to_string(),
                    Outcome::Busy => "busy (EBUSY, left as it was)".to_string(),
                    Outcome::Interrupted => "interrupted (stopping)".to_string(),
                    Outcome::Refused => {
                        "refused (EINVAL: spans zones or has holes; left as it was)".to_string()
                    }
                    Outcome::Failed(e) => format!("FAILED: {e}"),
                    Outcome::Hung(_) => "HUNG (given up on)".to_string(),
                };
                let s = format!("stress: {} {}: {what}", a.op.name(), a.target);
                match &self.bar {
                    Some(b) => {
                        if !matches!(a.outcome, Outcome::Ok) {
                            b.println(&s);
                        }
                        b.set_message(format!("{} {}", a.op.name(), a.target));
                    }
                    None => eprintln!("{s}"),
                }
            }
            CycleEvent::End { index, .. } => match &self.bar {
                Some(b) => b.set_position(*index),
                None => eprintln!("stress: cycle {index} done"),
            },
            CycleEvent::Hung(h) => self.line(&format!("stress: {}; cycling stopped", h.explain())),
            CycleEvent::Restored { failures } => {
                for f in failures {
                    self.line(&format!("stress: could not restore {f}"));
                }
                if failures.is_empty() {
                    self.line("stress: every block and device restored");
                }
            }
            CycleEvent::Done(_) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

//! Reading a guest scenario's output: `=== step NAME` sections holding the
//! daemon's NDJSON records, typed as [`Record`]s, and `key=value` lines.

use anyhow::{anyhow, bail, Result};
use sync_trace::{
    record::probe::ProbeReport,
    record::{
        CallRecord, DepopulateRecord, DetachedRecord, LayoutRecord, LostRecord, MismatchRecord,
        PairedRecord, PopulateRecord, Record, Summary, SyncRecord, UnsyncedRecord, VerifyRecord,
    },
};

pub struct Output {
    sections: Vec<(String, Vec<String>)>,
    /// The kernel's oops report, for a scenario that expects one.
    pub oops: Option<String>,
}

impl Output {
    pub fn parse(text: &str) -> Self {
        let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("=== step ") {
                sections.push((name.trim().to_string(), Vec::new()));
            } else if let Some(last) = sections.last_mut() {
                last.1.push(line.to_string());
            }
        }
        Self {
            sections,
            oops: None,
        }
    }

    /// The raw lines of a step.
    pub fn lines_of(&self, step: &str) -> Result<&[String]> {
        self.lines(step)
    }

    fn lines(&self, step: &str) -> Result<&[String]> {
        self.sections
            .iter()
            .find(|(n, _)| n == step)
            .map(|(_, l)| l.as_slice())
            .ok_or_else(|| anyhow!("the guest never reached step `{step}`"))
    }

    /// Every record the daemon printed in a step (`run`, `replay` and
    /// `audit` with `--json`): a line that starts with `{` and is not a
    /// [`Record`] fails the check, naming the step and the line.
    pub fn records(&self, step: &str) -> Result<Vec<Record>> {
        let mut v = Vec::new();
        for l in self.lines(step)? {
            if l.starts_with('{') {
                v.push(
                    serde_json::from_str(l)
                        .map_err(|e| anyhow!("step {step}: not a sync-trace record ({e}): {l}"))?,
                );
            }
        }
        Ok(v)
    }

    /// The report `probe --json` printed in a step: its one JSON line.
    pub fn probe(&self, step: &str) -> Result<ProbeReport> {
        let l = self
            .lines(step)?
            .iter()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow!("step {step}: probe printed no JSON"))?;
        serde_json::from_str(l).map_err(|e| anyhow!("step {step}: not a probe report ({e}): {l}"))
    }

    /// The records of one kind in a step, e.g. `o.events::<PairedRecord>(step)`.
    pub fn events<T: Kind>(&self, step: &str) -> Result<Vec<T>> {
        Ok(of_kind(&self.records(step)?))
    }

    pub fn layouts(&self, step: &str) -> Result<Vec<LayoutRecord>> {
        self.events(step)
    }

    pub fn syncs(&self, step: &str) -> Result<Vec<SyncRecord>> {
        self.events(step)
    }

    pub fn calls(&self, step: &str) -> Result<Vec<CallRecord>> {
        self.events(step)
    }

    pub fn populates(&self, step: &str) -> Result<Vec<PopulateRecord>> {
        self.events(step)
    }

    pub fn paired(&self, step: &str) -> Result<Vec<PairedRecord>> {
        self.events(step)
    }

    pub fn unsynced(&self, step: &str) -> Result<Vec<UnsyncedRecord>> {
        self.events(step)
    }

    pub fn verifies(&self, step: &str) -> Result<Vec<VerifyRecord>> {
        self.events(step)
    }

    /// The value of a `key=value` line (the last one) in a step.
    pub fn value(&self, step: &str, key: &str) -> Result<String> {
        let prefix = format!("{key}=");
        self.lines(step)?
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("step {step}: no `{key}=` line"))
    }

    pub fn exit(&self, step: &str) -> Result<i32> {
        let v = self.value(step, "exit")?;
        v.parse()
            .map_err(|_| anyhow!("step {step}: exit={v} is not a number"))
    }

    pub fn expect_exit(&self, step: &str, want: i32) -> Result<()> {
        let got = self.exit(step)?;
        if got != want {
            bail!(
                "step {step}: exit status {got}, expected {want}; output:\n{}",
                self.lines(step)?.join("\n")
            );
        }
        Ok(())
    }
}

/// One kind of [`Record`]: its variant's payload.
pub trait Kind: Clone {
    fn of(r: &Record) -> Option<&Self>;
}

macro_rules! kinds {
    ($($variant:ident($t:ty)),* $(,)?) => {
        $(impl Kind for $t {
            fn of(r: &Record) -> Option<&Self> {
                match r {
                    Record::$variant(x) => Some(x),
                    _ => None,
                }
            }
        })*
    };
}

kinds!(
    Layout(LayoutRecord),
    Sync(SyncRecord),
    Call(CallRecord),
    Populate(PopulateRecord),
    Depopulate(DepopulateRecord),
    Paired(PairedRecord),
    Unsynced(UnsyncedRecord),
    Verify(VerifyRecord),
    Mismatch(MismatchRecord),
    Lost(LostRecord),
    Detached(DetachedRecord),
    Summary(Summary),
);

/// The records of one kind among `recs`, in order.
pub fn of_kind<T: Kind>(recs: &[Record]) -> Vec<T> {
    recs.iter().filter_map(T::of).cloned().collect()
}

/// Whether any frame of a stack starts with `func`.
pub fn stack_has(stack: &[String], func: &str) -> bool {
    stack.iter().any(|f| f.starts_with(&format!("{func}+")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording the daemon wrote in a guest (`replay`'s fixture).
    const RECORDING: &str =
        include_str!("../../../sync-trace/tests/fixtures/6.1-hotadd-32T.ndjson");

    #[test]
    fn sections_records_and_values() {
        let text =
            format!("boot\n=== step a\n{RECORDING}stderr: ready\nexit=3\n=== step b\nexit=0\n");
        let o = Output::parse(&text);
        assert_eq!(o.records("a").unwrap().len(), RECORDING.lines().count());
        assert_eq!(o.layouts("a").unwrap().len(), 1);
        let syncs = o.syncs("a").unwrap();
        let sync_lines = RECORDING
            .lines()
            .filter(|l| l.starts_with("{\"event\":\"sync\""))
            .count();
        assert_eq!(syncs.len(), sync_lines);
        assert!(syncs
            .iter()
            .any(|s| s.helper && s.start.0 == 0xffffea8000000000));
        assert_eq!(o.paired("a").unwrap().len(), 2);
        assert!(o.unsynced("a").unwrap().is_empty());
        assert_eq!(o.events::<Summary>("a").unwrap().len(), 1);
        assert!(o.records("b").unwrap().is_empty());
        assert_eq!(o.exit("a").unwrap(), 3);
        assert!(o.expect_exit("b", 0).is_ok());
        assert!(o.expect_exit("a", 0).is_err());
        assert!(o.records("c").is_err());
    }

    /// A JSON line that is not a record as the daemon's types read it (a
    /// renamed field, an unknown event) fails, naming the step and the line.
    #[test]
    fn a_line_that_is_not_a_record_fails() {
        let sync = RECORDING
            .lines()
            .find(|l| l.starts_with("{\"event\":\"sync\""))
            .unwrap();
        for bad in [
            sync.replace("\"slot_first\"", "\"first_slot\""),
            sync.replace("\"event\":\"sync\"", "\"event\":\"synced\""),
            "{not json".to_string(),
        ] {
            let o = Output::parse(&format!("=== step run\n{sync}\n{bad}\nexit=0\n"));
            let e = o.records("run").unwrap_err().to_string();
            assert!(e.contains("step run") && e.contains(&bad), "{e}");
            assert!(o.syncs("run").is_err());
            assert_eq!(o.exit("run").unwrap(), 0);
        }
    }
}

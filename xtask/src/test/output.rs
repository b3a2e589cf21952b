//! Reading a guest scenario's output: `=== step NAME` sections holding JSON
//! records and `key=value` lines.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

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

    /// Every JSON object printed in a step.
    pub fn json(&self, step: &str) -> Result<Vec<Value>> {
        let mut v = Vec::new();
        for l in self.lines(step)? {
            if l.starts_with('{') {
                v.push(
                    serde_json::from_str(l)
                        .map_err(|e| anyhow!("step {step}: bad JSON line {l:?}: {e}"))?,
                );
            }
        }
        Ok(v)
    }

    /// Records of one `event` kind in a step.
    pub fn events(&self, step: &str, event: &str) -> Result<Vec<Value>> {
        Ok(self
            .json(step)?
            .into_iter()
            .filter(|v| v["event"] == event)
            .collect())
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

/// A hex address field (`"0x…"`) of a record.
pub fn addr(v: &Value, field: &str) -> Result<u64> {
    let s = v[field]
        .as_str()
        .ok_or_else(|| anyhow!("record lacks `{field}`: {v}"))?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| anyhow!("`{field}` {s}: {e}"))
}

/// Whether any frame of a record's `stack` starts with `func`.
pub fn stack_has(v: &Value, func: &str) -> bool {
    v["stack"].as_array().is_some_and(|s| {
        s.iter().any(|f| {
            f.as_str()
                .is_some_and(|f| f.starts_with(&format!("{func}+")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_json_and_values() {
        let o = Output::parse("boot\n=== step a\n{\"event\":\"sync\",\"start\":\"0x10\"}\nexit=3\n=== step b\nexit=0\n");
        assert_eq!(o.events("a", "sync").unwrap().len(), 1);
        assert_eq!(addr(&o.json("a").unwrap()[0], "start").unwrap(), 0x10);
        assert_eq!(o.exit("a").unwrap(), 3);
        assert!(o.expect_exit("b", 0).is_ok());
        assert!(o.expect_exit("a", 0).is_err());
        assert!(o.json("c").is_err());
    }
}

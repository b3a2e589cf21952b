//! The test module's `last` line (`cat /sys/kernel/debug/st_populate/last` in the scripts):
//! what its latest action did, as `mode=…` then `key=value` words.

use std::collections::HashMap;

use anyhow::{Context as _, Result};

use super::output::Output;

/// The module's `last` line of a step (`mode=…` then `key=value` words), as printed by `cat last`.
pub struct Last {
    line: String,
    kv: HashMap<String, String>,
}

impl Last {
    pub fn of(o: &Output, step: &str) -> Result<Last> {
        let line = format!("mode={}", o.value(step, "mode")?);
        let kv = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Last { line, kv })
    }

    pub fn line(&self) -> &str {
        &self.line
    }

    pub fn get(&self, k: &str) -> Result<&str> {
        self.kv
            .get(k)
            .map(String::as_str)
            .with_context(|| format!("module line lacks {k}: {}", self.line))
    }

    /// A decimal or `0x` hexadecimal field.
    pub fn num(&self, k: &str) -> Result<u64> {
        let v = self.get(k)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .with_context(|| format!("bad {k}: {}", self.line))
    }
}

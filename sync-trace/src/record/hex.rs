//! Kernel addresses in records.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A kernel virtual address, serialized as a `"0x…"` string so that JSON
/// readers without 64-bit integers keep it exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| de::Error::custom(format!("address {s:?} lacks the 0x prefix")))?;
        u64::from_str_radix(digits, 16)
            .map(Hex)
            .map_err(|e| de::Error::custom(format!("address {s:?}: {e}")))
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

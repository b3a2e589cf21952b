//! The records the daemon writes, one per line: as text, or as NDJSON with
//! an `"event"` field naming the kind. Field names and values are a
//! contract (docs/events.md); `replay` (and any reader linking this
//! library) reads the same records back with [`Record`]'s `Deserialize`.

/// Names an enum of the records by its strum derive (`IntoStaticStr`,
/// `EnumString`, `VariantNames`, with `serialize_all = "snake_case"`): its
/// `name()`, its JSON value (both ways), its text and its metric label are
/// that one string, so they cannot drift apart.
macro_rules! named {
    ($t:ty) => {
        impl $t {
            pub fn name(self) -> &'static str {
                self.into()
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&s, <Self as strum::VariantNames>::VARIANTS)
                })
            }
        }
    };
}

mod call;
pub mod caller;
mod hex;
mod histogram;
mod layout;
mod lost;
mod population;
pub mod stack;
pub mod summary;
mod verdict;
mod walk;

use serde::{Deserialize, Serialize};

pub use self::{
    call::{CallRecord, SyncRecord, Task},
    caller::Caller,
    hex::Hex,
    histogram::{Bucket, Histogram},
    layout::LayoutRecord,
    lost::LostRecord,
    population::{DepopulateRecord, PopulateRecord, Population, Source},
    summary::Summary,
    verdict::{LatencyKind, PairedRecord, UnsyncedRecord},
    walk::{MismatchRecord, SlotCount, Trigger, VerifyRecord},
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
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
    Summary(Summary),
}

impl Record {
    /// The time the record carries (CLOCK_MONOTONIC ns): when the call
    /// began, the scan saw it, the walk ended, the counters were read. The
    /// summary carries none.
    pub fn ts_ns(&self) -> Option<u64> {
        Some(match self {
            Record::Layout(r) => r.ts_ns,
            Record::Sync(r) => r.ts_ns,
            Record::Call(r) => r.ts_ns,
            Record::Populate(r) => r.ts_ns,
            Record::Depopulate(r) => r.ts_ns,
            Record::Paired(r) => r.ts_ns,
            Record::Unsynced(r) => r.ts_ns,
            Record::Verify(r) => r.ts_ns,
            Record::Mismatch(r) => r.ts_ns,
            Record::Lost(r) => r.ts_ns,
            Record::Summary(_) => return None,
        })
    }
}

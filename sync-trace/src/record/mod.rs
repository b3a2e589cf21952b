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
pub mod call_stack;
pub mod caller;
mod detached;
mod hex;
mod histogram;
mod layout;
mod lost;
mod population;
pub mod probe;
pub mod stack;
pub mod summary;
mod verdict;
mod walk;

use serde::{Deserialize, Serialize};

#[cfg(test)]
pub(crate) use self::population::vmemmap_469;
pub use self::{
    call::{Batch, CallRecord, CompletedCall, SyncRecord, Task},
    call_stack::CallStack,
    caller::Caller,
    detached::DetachedRecord,
    hex::Hex,
    histogram::{Bucket, Histogram},
    layout::LayoutRecord,
    lost::LostRecord,
    population::{DepopulateRecord, PopulateRecord, Population, Source},
    stack::Stack,
    summary::Summary,
    verdict::{LatencyKind, PairedRecord, UnsyncedRecord},
    walk::{MismatchRecord, SlotCount, Trigger, VerifyRecord},
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    Detached(DetachedRecord),
    /// Boxed: the largest record by far, written once per run, would make
    /// every record that size.
    Summary(Box<Summary>),
}

const _: () = assert!(std::mem::size_of::<Record>() <= 160);

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
            Record::Detached(r) => r.ts_ns,
            Record::Summary(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use sync_trace_common::{Level, Region};

    use super::*;

    /// Lines the daemon wrote in guests, and the kinds they lack as the
    /// daemon writes them.
    fn lines() -> Vec<String> {
        let mut lines: Vec<String> = [
            include_str!("../../tests/fixtures/6.1-hotadd-32T.ndjson"),
            include_str!("../../tests/fixtures/6.12-module.ndjson"),
            include_str!("../../tests/fixtures/newest-hotadd-32T.ndjson"),
        ]
        .iter()
        .flat_map(|t| t.lines())
        .map(str::to_string)
        .collect();
        let written = [
            Record::Depopulate(DepopulateRecord {
                ts_ns: 2_000,
                present_ns: 1_000,
                level: Level::P4d,
                slot: 468,
                addr: Hex(0xffffea0000000000),
                region: Region::Vmemmap,
            }),
            Record::Mismatch(MismatchRecord {
                ts_ns: 3_000,
                level: Level::Pgd,
                slot: 273,
                addr: Hex(0xff11000000000000),
                region: Region::DirectMap,
                pgds: 1,
                pgds_total: 10,
            }),
            Record::Lost(LostRecord {
                what: "events".into(),
                count: 2,
                total: 5,
                ts_ns: 4_000,
                since_ns: 3_000,
            }),
            Record::Detached(DetachedRecord {
                ts_ns: 5_000,
                target: sync_trace_common::Target::ArchSyncKernelMappings,
                symbol: "st_sync".into(),
                method: sync_trace_common::Method::Kprobe,
                reason: "gone".into(),
            }),
        ];
        lines.extend(written.iter().map(|r| serde_json::to_string(r).unwrap()));
        lines
    }

    /// `small`'s fields, recursively, are in `big` with the same values
    /// (`big` may add fields that older recordings lack).
    fn within(small: &Value, big: &Value) -> bool {
        match (small, big) {
            (Value::Object(s), Value::Object(b)) => s
                .iter()
                .all(|(k, v)| b.get(k).is_some_and(|w| within(v, w))),
            _ => small == big,
        }
    }

    /// Every line parses into a `Record`; what it writes back keeps every
    /// field of the line, and parses into a `Record` that writes exactly
    /// the same JSON again; every kind of record is among them.
    #[test]
    fn every_kind_round_trips() {
        let mut kinds = BTreeSet::new();
        for line in lines() {
            let orig: Value = serde_json::from_str(&line).unwrap();
            let rec: Record = serde_json::from_str(&line).expect(&line);
            let written = serde_json::to_string(&rec).unwrap();
            let back: Value = serde_json::from_str(&written).unwrap();
            assert!(within(&orig, &back), "{line}\n{written}");
            let again: Record = serde_json::from_str(&written).expect(&written);
            assert_eq!(serde_json::to_string(&again).unwrap(), written);
            kinds.insert(orig["event"].as_str().unwrap().to_string());
        }
        let all = [
            "layout",
            "sync",
            "call",
            "populate",
            "depopulate",
            "paired",
            "unsynced",
            "verify",
            "mismatch",
            "lost",
            "detached",
            "summary",
        ];
        assert_eq!(kinds, all.iter().map(|k| k.to_string()).collect());
    }

    /// The names JSON, text and metric labels share.
    #[test]
    fn enum_names_are_the_json_values() {
        use strum::IntoEnumIterator;
        fn check<
            T: IntoEnumIterator
                + serde::Serialize
                + serde::de::DeserializeOwned
                + PartialEq
                + std::fmt::Debug
                + Copy,
        >(
            name: fn(T) -> &'static str,
        ) {
            for v in T::iter() {
                assert_eq!(serde_json::to_value(v).unwrap(), Value::from(name(v)));
                let back: T = serde_json::from_value(Value::from(name(v))).unwrap();
                assert_eq!(back, v);
            }
        }
        check(Caller::name);
        check(Source::name);
        check(LatencyKind::name);
        check(Trigger::name);
        assert_eq!(LatencyKind::UpperBound.name(), "upper_bound");
        assert_eq!(Caller::PopulateHelper.name(), "populate_helper");
        assert!(serde_json::from_value::<Trigger>(Value::from("Sweep")).is_err());
        // The enums of sync-trace-common name themselves by hand: their
        // names must stay their JSON values too (text and labels use them).
        for r in Region::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), Value::from(r.name()));
        }
        for l in [Level::Pgd, Level::P4d] {
            assert_eq!(serde_json::to_value(l).unwrap(), Value::from(l.name()));
        }
        for m in [
            sync_trace_common::Method::Fentry,
            sync_trace_common::Method::Kprobe,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), Value::from(m.name()));
        }
        for t in sync_trace_common::Target::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), Value::from(t.symbol()));
        }
    }
}

//! Records the kernel could not deliver: the `lost` record.

use serde::{Deserialize, Serialize};

/// Records the kernel could not deliver, counted by its programs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LostRecord {
    /// `events` (ring buffer full), `inflight` (durations lost), `logs`.
    pub what: String,
    /// New losses since the previous `lost` record of this kind.
    pub count: u64,
    pub total: u64,
    /// The losses happened after `since_ns` and before `ts_ns` (when the
    /// counters were read). Older recordings: 0, any time.
    #[serde(default)]
    pub ts_ns: u64,
    #[serde(default)]
    pub since_ns: u64,
}

//! Where records go: one text line (`text`) or NDJSON object per record on
//! stdout (`sink`), Prometheus metrics updated from the same records
//! (`metrics`) served over HTTP (`exporter`), and `probe`'s table
//! (`probe_report`).

pub mod exporter;
mod json_bytes;
pub mod metrics;
pub mod probe_report;
pub mod sink;
pub mod sync_json;
pub mod text;

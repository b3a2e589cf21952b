//! Where records go: one text line (`text`) or NDJSON object per record on
//! stdout (`sink`), Prometheus metrics updated from the same records
//! (`metrics`) served over HTTP (`exporter`), and `probe`'s table
//! (`probe_report`).

#[cfg(feature = "daemon")]
pub mod exporter;
#[cfg(feature = "daemon")]
pub mod metrics;
pub mod probe_report;
#[cfg(feature = "daemon")]
pub mod sink;
#[cfg(feature = "daemon")]
pub mod text;

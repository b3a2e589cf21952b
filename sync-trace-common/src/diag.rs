//! Kernel-side diagnostics (`enum st_diag_code`, `struct st_diag` in
//! events.h): records of the EVENTS ring that the daemon logs, one message
//! per code.

/// The `log` target of every kernel-side diagnostic.
pub const LOG_TARGET: &str = "sync_trace_ebpf";

/// What a diagnostic reports (`enum st_diag_code`). The numbers travel in
/// `st_diag.code`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiagCode {
    /// The `INFLIGHT` map was full at an entry: its exit will lack a
    /// duration. The value is the target (`enum st_target`).
    InflightFull = 1,
    /// `bpf_get_stack` failed at an entry. The value is its negative errno.
    StackFailed = 2,
    /// `run --test-kernel-log`: one at every entry. The value is the first
    /// argument (the start address).
    Forced = 3,
}

impl DiagCode {
    /// Every code.
    pub const ALL: [DiagCode; 3] = [
        DiagCode::InflightFull,
        DiagCode::StackFailed,
        DiagCode::Forced,
    ];

    pub fn from_raw(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|&c| c as u8 == v)
    }

    /// The enumerator in events.h.
    pub fn c_name(self) -> &'static str {
        match self {
            DiagCode::InflightFull => "ST_DIAG_INFLIGHT_FULL",
            DiagCode::StackFailed => "ST_DIAG_STACK_FAILED",
            DiagCode::Forced => "ST_DIAG_FORCED",
        }
    }

    /// The message a diagnostic of this code with `value` is logged as.
    /// The guest tests look for these texts in the daemon's log.
    pub fn message(self, value: u64) -> String {
        match self {
            DiagCode::InflightFull => format!("INFLIGHT map full; exit of target {value}"),
            // The kernel stored a signed long: its two's complement.
            DiagCode::StackFailed => {
                format!("kernel stack capture failed, error {}", value as i64)
            }
            DiagCode::Forced => {
                format!("forced kernel-side diagnostic at entry, start=0x{value:x}")
            }
        }
    }
}

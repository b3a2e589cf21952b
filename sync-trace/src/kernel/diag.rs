//! Kernel-side diagnostics (`struct st_diag` records of the EVENTS ring),
//! logged through the `log` crate like the daemon's own messages.

use sync_trace_common::{diag::LOG_TARGET, RawDiag};

/// Logs one diagnostic at warn level, with target `sync_trace_ebpf` (the
/// guest tests look for it, and its message, in the daemon's stderr).
pub fn log(d: &RawDiag) {
    log::warn!(target: LOG_TARGET, "{}", d.message());
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, OnceLock};

    use sync_trace_common::{raw::KIND_DIAG, DiagCode, RawRecord};

    use super::*;

    /// Keeps every record of the diagnostics' target.
    struct Capture(Mutex<Vec<(log::Level, String, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            if r.target() == LOG_TARGET {
                self.0.lock().unwrap().push((
                    r.level(),
                    r.target().to_owned(),
                    r.args().to_string(),
                ));
            }
        }
        fn flush(&self) {}
    }

    fn capture() -> &'static Capture {
        static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
            log::set_logger(c).expect("no other logger in the unit tests");
            log::set_max_level(log::LevelFilter::Trace);
            c
        })
    }

    /// A `struct st_diag` laid out as the kernel writes it (events.h).
    fn c_record(code: DiagCode, value: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1_000u64.to_le_bytes()); // ts_ns
        b.extend_from_slice(&value.to_le_bytes());
        b.extend_from_slice(&77u32.to_le_bytes()); // pid
        b.extend_from_slice(&0u32.to_le_bytes()); // cpu
        b.extend_from_slice(&[KIND_DIAG, code as u8, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn every_diagnostic_is_a_warning_of_target_sync_trace_ebpf() {
        let cases = [
            (
                DiagCode::InflightFull,
                6,
                "INFLIGHT map full; exit of target 6",
            ),
            (
                DiagCode::StackFailed,
                (-2i64) as u64,
                "kernel stack capture failed, error -2",
            ),
            (
                DiagCode::Forced,
                0xff11_0000_0000_0000,
                "forced kernel-side diagnostic at entry, start=0xff11000000000000",
            ),
        ];
        let cap = capture();
        for (code, value, message) in cases {
            let Ok(RawRecord::Diag(d)) = RawRecord::from_bytes(&c_record(code, value)) else {
                panic!("{code:?}: not decoded as a diagnostic");
            };
            log(&d);
            let logged = cap.0.lock().unwrap().pop();
            assert_eq!(
                logged,
                Some((
                    log::Level::Warn,
                    "sync_trace_ebpf".to_owned(),
                    message.to_owned()
                ))
            );
        }
    }
}

//! libFuzzer entry point of [`sync_trace_fuzz::scan`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_trace_fuzz::scan::run(data));

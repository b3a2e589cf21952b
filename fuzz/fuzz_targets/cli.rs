//! libFuzzer entry point of [`sync_trace_fuzz::cli`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_trace_fuzz::cli::run(data));

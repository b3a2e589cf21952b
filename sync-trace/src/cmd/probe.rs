//! `sync-trace probe`: attaches every target, reports per target what this
//! kernel allows and what attached, then detaches.

use std::io;

use crate::{
    kernel::{
        session::{kernel_release, Options, Session},
        target_status::any_sync_attached,
    },
    output::probe_report,
};

/// Exit 0 when a sync point attaches, 1 otherwise.
pub fn probe(json: bool) -> anyhow::Result<i32> {
    let session = Session::open(&Options {
        capture_stack: true,
        force_log: false,
        ring_bytes: None,
        report: true,
        attach: Default::default(),
        sync_stand_in: None,
        populate_calls: false,
    })?;
    let kernel = kernel_release();
    let mut out = io::stdout().lock();
    if json {
        probe_report::print_json(&mut out, &kernel, &session.statuses)?;
    } else {
        probe_report::print_text(&mut out, &kernel, &session.statuses)?;
    }
    // Dropping the session detaches every probe.
    Ok(if any_sync_attached(&session.statuses) {
        0
    } else {
        1
    })
}

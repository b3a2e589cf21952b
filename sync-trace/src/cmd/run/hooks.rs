//! What an in-process consumer of `run` (`stress`) hands it: a receiver of
//! every record, a signal that tracing is armed, and a stop handle. With no
//! hooks `run` is the command: NDJSON or text on stdout, `ready` on stderr,
//! stopped by SIGINT, SIGTERM or `--duration`.

use crate::{cmd::StopHandle, output::sink::Observer};

/// Called once, when `run` alone would print `ready`.
pub type OnReady = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub struct RunHooks {
    /// Every record `run` emits, in the order emitted (the sink's order).
    /// When set, records go here only: nothing is written to stdout, which
    /// stays the caller's.
    pub on_record: Option<Observer>,
    /// Called once every probe is attached, the baseline is taken and what
    /// the baseline scan found has been emitted (after the `layout` record
    /// and before any record of the event loop). When set, `ready` is not
    /// printed.
    pub on_ready: Option<OnReady>,
    /// Ends the run as SIGTERM does: the ring buffer is drained, pending
    /// populations are judged and the summary is emitted. SIGINT, SIGTERM
    /// and `--duration` still stop it too.
    pub stop: Option<StopHandle>,
}

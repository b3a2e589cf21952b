//! The narrow interface between the tracing and the stress report: every
//! record the daemon emits, and every cycle boundary and step.

use super::cycle::CycleEvent;
use crate::record::Record;

pub trait StressObserver {
    /// A record of the tracing session, in the order it was emitted.
    fn record(&mut self, r: &Record);
    /// A cycle began or ended, a step was taken, the state was restored.
    fn cycle_event(&mut self, ev: &CycleEvent);
}

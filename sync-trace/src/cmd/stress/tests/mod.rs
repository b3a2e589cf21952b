//! Tests of `stress` on a fake sysfs tree in a temporary directory.
//!
//! The fake tree is files and symlinks: a write to `memoryN/state` leaves
//! the written word in the file (so `online_movable` reads back as online),
//! and driver bind files do not move the `driver` link. The write log and
//! injected faults (`SysfsRoot::inject`) stand in for the kernel's refusals.
//! `glue` is tested with a fake `run` that uses the real sink and stop
//! handle.

mod cycling;
mod dax;
mod fake;
mod glue;
mod records;
mod report;
mod selection;
mod wedged;

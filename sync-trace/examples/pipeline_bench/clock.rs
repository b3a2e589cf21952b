//! CPU time of the calling thread: the rates are events per CPU second, so
//! that they do not depend on how many other processes share the cores.
//!
//! The thread clock, not the process clock: every figure is measured on
//! the thread that calls the bench, and the process clock is both inflated
//! by other threads (the test harness runs tests side by side) and, where
//! the kernel samples a thread group from its per-tick accounting, too
//! coarse for a pass of a few microseconds (a best-of-N of 0 ns was seen).
//! The thread clock reads the scheduler's runtime of the running thread,
//! to the nanosecond.

/// CPU time (user + system) the calling thread has used, in seconds.
pub fn cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID exists on every Linux");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

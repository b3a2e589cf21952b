//! CPU time of this process: the rates are events per CPU second, so that
//! they do not depend on how many other processes share the cores.

/// CPU time (user + system) this process has used, in seconds.
pub fn cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_PROCESS_CPUTIME_ID exists on every Linux");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

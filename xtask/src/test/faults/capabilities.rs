//! The faults scenario's capability checks: each capability a command needs, dropped alone
//! with util-linux's setpriv, refuses with one line naming it.

use anyhow::{ensure, Result};

use crate::test::output::Output;

/// The commands each capability is needed by (`sync-trace capabilities`), by setpriv's name.
const NEEDED: [(&str, &[&str]); 6] = [
    ("bpf", &["probe", "audit", "run", "stress"]),
    ("perfmon", &["probe", "audit", "run", "stress"]),
    ("syslog", &["probe", "audit", "run", "stress"]),
    ("sys_admin", &["stress"]),
    ("setuid", &["run"]),
    ("setgid", &["run"]),
];
/// Commands that go on without CAP_SYS_ADMIN (CAP_BPF and CAP_PERFMON are enough to attach
/// by fentry).
const WITHOUT_SYS_ADMIN: [&str; 3] = ["probe", "audit", "run"];

/// Each needed capability dropped alone: exit 1, one line on stderr naming it, nothing on
/// stdout. Without CAP_SYS_ADMIN, probe, audit and run still work.
pub(super) fn check_capabilities(o: &Output) -> Result<()> {
    let step = "capabilities";
    let lines = o.lines_of(step)?;
    for (cap, cmds) in NEEDED {
        let name = format!("CAP_{}", cap.to_uppercase());
        for cmd in cmds {
            let key = format!("{cap}_{cmd}");
            let exit = o.value(step, &format!("cap_{key}"))?;
            let prefix = format!("cap-err: {key}: ");
            let err: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&prefix))
                .collect();
            ensure!(
                exit == "1" && err.len() == 1 && err[0].contains(&name),
                "{step}: `{cmd}` without {name} exited {exit}, expected 1 with one line naming {name}: {err:?}"
            );
            ensure!(
                o.value(step, &format!("cap_{key}_stdout"))? == "0",
                "{step}: `{cmd}` without {name} wrote to stdout"
            );
        }
    }
    for cmd in WITHOUT_SYS_ADMIN {
        let exit = o.value(step, &format!("cap_sys_admin_{cmd}"))?;
        ensure!(
            exit == "0",
            "{step}: `{cmd}` without CAP_SYS_ADMIN exited {exit}: {:?}",
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("cap-err: sys_admin_{cmd}: ")))
                .collect::<Vec<_>>()
        );
    }
    check_kprobe_without_sys_admin(o)?;
    println!(
        "faults: each needed capability dropped alone refused with one line ({} cases)",
        NEEDED.iter().map(|(_, c)| c.len()).sum::<usize>()
    );
    Ok(())
}

/// `run --attach kprobe` without CAP_SYS_ADMIN: Debian's kernels refuse perf_event_open() to
/// such a process while perf_event_paranoid is above 2 (their default 3): exit 1 with one
/// line naming CAP_SYS_ADMIN and the setting; at 2 or below it attaches (exit 0).
fn check_kprobe_without_sys_admin(o: &Output) -> Result<()> {
    let step = "capabilities";
    let paranoid: i64 = o.value(step, "perf_event_paranoid")?.parse()?;
    let exit = o.value(step, "cap_sys_admin_run-kprobe")?;
    let prefix = "cap-err: sys_admin_run-kprobe: ";
    let err: Vec<&str> = o
        .lines_of(step)?
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter(|l| *l != "ready")
        .collect();
    if paranoid > 2 {
        ensure!(
            exit == "1"
                && err.len() == 1
                && err[0].contains("CAP_SYS_ADMIN")
                && err[0].contains(&format!("perf_event_paranoid is {paranoid}")),
            "{step}: `run --attach kprobe` without CAP_SYS_ADMIN at perf_event_paranoid {paranoid} exited {exit}, expected 1 with one line naming CAP_SYS_ADMIN and the setting: {err:?}"
        );
    } else {
        ensure!(
            exit == "0",
            "{step}: `run --attach kprobe` without CAP_SYS_ADMIN at perf_event_paranoid {paranoid} exited {exit}: {err:?}"
        );
    }
    Ok(())
}

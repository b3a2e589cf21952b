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
/// Commands that go on without CAP_SYS_ADMIN (CAP_BPF and CAP_PERFMON are enough to attach,
/// by fentry and by kprobe: `run-kprobe` is `run --attach kprobe`).
const WITHOUT_SYS_ADMIN: [&str; 4] = ["probe", "audit", "run", "run-kprobe"];

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
    println!(
        "faults: each needed capability dropped alone refused with one line ({} cases)",
        NEEDED.iter().map(|(_, c)| c.len()).sum::<usize>()
    );
    Ok(())
}

//! The pair of programs (entry and exit) of one target in the loaded
//! object: loading them as fentry/fexit or kprobe/kretprobe, attaching both
//! or neither, and a load or attach error as one line that names what to do.

use aya::{
    programs::{FEntry, FExit, KProbe, Program, ProgramError},
    Btf, Ebpf,
};

use super::privilege;

/// The kprobe PMU that perf_event_open-based kprobes use.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

fn program_err(e: ProgramError) -> String {
    let mut text = match &e {
        ProgramError::LoadError { io_error, .. } => format!("load failed: {io_error}"),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(&e);
    while let Some(err) = source {
        let s = err.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
        source = err.source();
    }
    let denied = text.contains("Operation not permitted") || text.contains("Permission denied");
    if denied && text.contains("perf_event_open") {
        format!("{text} ({})", privilege::explain_perf_denied())
    } else if denied {
        format!("{text} ({})", privilege::explain_denied())
    } else if text.contains(KPROBE_PMU) && !std::path::Path::new(KPROBE_PMU).exists() {
        format!(
            "{text} (this kernel has no kprobe PMU: it lacks CONFIG_KPROBES/CONFIG_KPROBE_EVENTS)"
        )
    } else {
        text
    }
}

pub(super) fn load_fentry(ebpf: &mut Ebpf, btf: &Btf, prog: &str, sym: &str) -> Result<(), String> {
    let entry = format!("fentry_{prog}");
    let exit = format!("fexit_{prog}");
    let p: &mut FEntry = program(ebpf, &entry)?;
    p.load(sym, btf).map_err(program_err)?;
    crate::startup_phases::mark(&format!("verify {entry}"));
    let p: &mut FExit = program(ebpf, &exit)?;
    if let Err(e) = p.load(sym, btf) {
        unload(ebpf, &entry);
        return Err(program_err(e));
    }
    crate::startup_phases::mark(&format!("verify {exit}"));
    Ok(())
}

pub(super) fn load_kprobe(ebpf: &mut Ebpf, prog: &str) -> Result<(), String> {
    let entry = format!("kprobe_{prog}");
    let exit = format!("kretprobe_{prog}");
    for (i, name) in [&entry, &exit].into_iter().enumerate() {
        let p: &mut KProbe = program(ebpf, name)?;
        if let Err(e) = p.load() {
            if i == 1 {
                unload(ebpf, &entry);
            }
            return Err(program_err(e));
        }
    }
    Ok(())
}

/// The program `name` of the object, as its type.
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, String>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(program_err)
}

/// Attaches the loaded pair `{entry}_{prog}`, `{exit}_{prog}` to `sym`;
/// when either fails, both are detached and unloaded.
pub(super) fn attach_pair(
    ebpf: &mut Ebpf,
    entry: &str,
    exit: &str,
    prog: &str,
    sym: &str,
) -> Result<(), String> {
    let names = [format!("{entry}_{prog}"), format!("{exit}_{prog}")];
    for name in &names {
        let res = match ebpf.program_mut(name) {
            Some(Program::FEntry(p)) => p.attach().map(drop).map_err(program_err),
            Some(Program::FExit(p)) => p.attach().map(drop).map_err(program_err),
            Some(Program::KProbe(p)) => p.attach(sym, 0).map(drop).map_err(program_err),
            _ => Err(format!("program {name} missing from the object")),
        };
        crate::startup_phases::mark(&format!("attach {name}"));
        if res.is_err() {
            names.iter().for_each(|n| unload(ebpf, n));
            return res;
        }
    }
    Ok(())
}

/// Detaches and unloads a program that was attached as half of a pair.
fn unload(ebpf: &mut Ebpf, name: &str) {
    if let Some(p) = ebpf.program_mut(name) {
        let _ = match p {
            Program::FEntry(p) => p.unload(),
            Program::FExit(p) => p.unload(),
            Program::KProbe(p) => p.unload(),
            _ => Ok(()),
        };
    }
}

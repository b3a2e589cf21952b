//! Loading and attaching the programs of each target, with fallback from
//! fentry/fexit to kprobe/kretprobe: fentry/fexit when the kernel has BTF
//! for the function and accepts the trampoline, kprobe/kretprobe otherwise.

use aya::{
    programs::{FEntry, FExit, KProbe, ProgramError},
    Btf, Ebpf,
};
use sync_trace_common::{Method, Target};

use super::{facts::KernelFacts, privilege, target_status::TargetStatus};

/// Which attach method `run` may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachChoice {
    /// fentry/fexit where the kernel allows it, kprobe/kretprobe otherwise.
    #[default]
    Auto,
    /// fentry/fexit only: a target that refuses them stays unattached.
    Fentry,
    /// kprobe/kretprobe only, even where fentry/fexit would attach.
    Kprobe,
}

/// Attaches every target that this kernel allows. Never fails as a whole:
/// each target's outcome is in its status. The links live inside the
/// `Ebpf`: dropping it detaches everything.
/// `sync_stand_in` is a function arch_sync_kernel_mappings' programs attach
/// to instead of it (`run --test-sync-stand-in`). With `report`, every
/// target's `traceable` is filled in (`probe`); otherwise only a refused one's.
pub fn attach_all(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    choice: AttachChoice,
    sync_stand_in: Option<&str>,
    report: bool,
) -> Vec<TargetStatus> {
    Target::ALL
        .iter()
        .map(|&t| {
            let st = match sync_stand_in {
                Some(f) if t == Target::ArchSyncKernelMappings => TargetStatus::at(t, f, facts),
                _ => TargetStatus::new(t, facts),
            };
            let mut st = attach_target(ebpf, facts, st, choice);
            if report {
                st.traceable = facts.traceable(&st.symbol);
                st.btf = st.btf || facts.btf_has_function(&st.symbol);
            }
            crate::startup_phases::mark(&format!("attach {}", st.symbol));
            st
        })
        .collect()
}

fn attach_target(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    mut st: TargetStatus,
    choice: AttachChoice,
) -> TargetStatus {
    // The programs are named after the target, attached to the status' function.
    let prog = st.target.symbol();
    let sym = st.symbol.clone();
    let sym = sym.as_str();
    if !st.kallsyms {
        st.reason = Some(format!(
            "absent: no function `{sym}` in /proc/kallsyms (a macro or inlined in this kernel)"
        ));
        return st;
    }
    let mut why = Vec::new();
    if choice == AttachChoice::Kprobe {
        why.push("fentry: not tried (--attach kprobe)".into());
    } else if let Some(btf) = facts.btf.as_ref() {
        // Looking a function up in the kernel's BTF goes through all its
        // types (aya has no index): tried once, by the load itself, and
        // again only to explain a refusal.
        match attach_fentry(ebpf, btf, prog, sym) {
            Ok(()) => {
                st.btf = true;
                st.method = Some(Method::Fentry);
                st.attached = true;
                return st;
            }
            Err(e) => {
                st.btf = facts.btf_has_function(sym);
                why.push(if st.btf {
                    format!("fentry: {e}")
                } else {
                    "fentry: no BTF FUNC record".into()
                });
            }
        }
    } else if let Some(e) = &facts.btf_error {
        why.push(e.clone());
    }
    if choice == AttachChoice::Fentry {
        st.reason = Some(format!(
            "refused: {} (--attach fentry: no kprobe fallback)",
            why.join("; ")
        ));
        return st;
    }
    match attach_kprobe(ebpf, prog, sym) {
        Ok(()) => {
            st.method = Some(Method::Kprobe);
            st.attached = true;
            st.reason = Some(format!("kprobe fallback ({})", why.join("; ")));
        }
        Err(e) => {
            why.push(format!("kprobe: {e}"));
            st.traceable = facts.traceable(sym);
            let prefix = if st.traceable == Some(false) {
                "refused: notrace (no ftrace site in this kernel); "
            } else {
                "refused: "
            };
            st.reason = Some(format!("{prefix}{}", why.join("; ")));
        }
    }
    st
}

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

fn attach_fentry(ebpf: &mut Ebpf, btf: &Btf, prog: &str, sym: &str) -> Result<(), String> {
    let entry = format!("fentry_{prog}");
    let exit = format!("fexit_{prog}");
    {
        let p: &mut FEntry = ebpf
            .program_mut(&entry)
            .ok_or_else(|| format!("program {entry} missing from the object"))?
            .try_into()
            .map_err(program_err)?;
        p.load(sym, btf).map_err(program_err)?;
        crate::startup_phases::mark(&format!("verify {entry}"));
        if let Err(e) = p.attach() {
            let _ = p.unload();
            return Err(program_err(e));
        }
    }
    let p: &mut FExit = ebpf
        .program_mut(&exit)
        .ok_or_else(|| format!("program {exit} missing from the object"))?
        .try_into()
        .map_err(program_err)?;
    crate::startup_phases::mark(&format!("attach {entry}"));
    let res = p.load(sym, btf).and_then(|()| {
        crate::startup_phases::mark(&format!("verify {exit}"));
        p.attach().map(drop)
    });
    if let Err(e) = res {
        let _ = p.unload();
        unload(ebpf, &entry);
        return Err(program_err(e));
    }
    Ok(())
}

fn attach_kprobe(ebpf: &mut Ebpf, prog: &str, sym: &str) -> Result<(), String> {
    let entry = format!("kprobe_{prog}");
    let exit = format!("kretprobe_{prog}");
    for (i, name) in [&entry, &exit].into_iter().enumerate() {
        let p: &mut KProbe = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("program {name} missing from the object"))?
            .try_into()
            .map_err(program_err)?;
        let res = p.load().and_then(|()| p.attach(sym, 0).map(drop));
        if let Err(e) = res {
            let _ = p.unload();
            if i == 1 {
                unload(ebpf, &entry);
            }
            return Err(program_err(e));
        }
    }
    Ok(())
}

/// Detaches and unloads a program that was attached as half of a pair.
fn unload(ebpf: &mut Ebpf, name: &str) {
    if let Some(p) = ebpf.program_mut(name) {
        let _ = match p {
            aya::programs::Program::FEntry(p) => p.unload(),
            aya::programs::Program::KProbe(p) => p.unload(),
            _ => Ok(()),
        };
    }
}

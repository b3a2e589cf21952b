//! Loading and attaching the programs of each target, with fallback from
//! fentry/fexit to kprobe/kretprobe: fentry/fexit when the kernel has BTF
//! for the function and accepts the trampoline, kprobe/kretprobe otherwise.

use std::path::Path;

use aya::Ebpf;
use sync_trace_common::{Method, Target};

use super::{
    facts::KernelFacts,
    livepatch,
    program_pair::{attach_pair, load_fentry, load_kprobe},
    target_status::TargetStatus,
};

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

/// A target whose programs are loaded (verified by the kernel) and not yet
/// attached: [`load_all`] makes them, [`attach_loaded`] attaches them, so
/// that the verification can run before the baseline is taken (and beside
/// other work) while attaching still comes after it.
pub struct Loaded {
    st: TargetStatus,
    /// The method whose pair of programs is loaded; `None` when the target's
    /// outcome is already decided (absent, refused).
    method: Option<Method>,
    /// Why the preferred method was not used, so far.
    why: Vec<String>,
    choice: AttachChoice,
    /// A per-page vmemmap target left unloaded because the section target
    /// loaded: loaded and attached after all if the section one does not
    /// attach.
    covered: bool,
}

/// Why a per-page vmemmap target is not attached where the section-wide
/// one is.
pub const COVERED: &str = "covered per section by __populate_section_memmap (one probe pair per memory section instead of one per page; the hidden run --test-populate-calls attaches it anyway)";

/// Loads the programs of every target that this kernel allows. Never fails
/// as a whole: each target's outcome is in its status.
/// `sync_stand_in` is a function arch_sync_kernel_mappings' programs attach
/// to instead of it (`run --test-sync-stand-in`).
///
/// Where `__populate_section_memmap` loads, the per-page
/// `vmemmap_pgd_populate`/`vmemmap_p4d_populate` below it are not loaded
/// ([`COVERED`]; `per_page` loads them anyway): the section call bounds
/// every vmemmap population, at one probe pair per section instead of one
/// per page of memory map.
pub fn load_all(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    choice: AttachChoice,
    sync_stand_in: Option<&str>,
    per_page: bool,
) -> Vec<Loaded> {
    let mut load = |t: Target| {
        let st = match sync_stand_in {
            Some(f) if t == Target::ArchSyncKernelMappings => TargetStatus::at(t, f, facts),
            _ => TargetStatus::new(t, facts),
        };
        let loaded = load_target(ebpf, facts, st, choice);
        crate::startup_phases::mark(&format!("load {}", loaded.st.symbol));
        loaded
    };
    let mut section = Some(load(Target::PopulateSectionMemmap));
    let covered = !per_page && section.as_ref().is_some_and(|l| l.method.is_some());
    Target::ALL
        .iter()
        .map(|&t| match t {
            Target::PopulateSectionMemmap => section.take().expect("loaded once"),
            _ if covered && t.is_per_page_vmemmap() => {
                let mut st = TargetStatus::new(t, facts);
                st.reason = Some(COVERED.into());
                Loaded {
                    covered: true,
                    ..Loaded::decided(st, Vec::new(), choice)
                }
            }
            _ => load(t),
        })
        .collect()
}

/// Attaches what [`load_all`] loaded (and a kprobe pair where an fentry
/// pair that loaded fails to attach). The links live inside the `Ebpf`:
/// dropping it detaches everything. With `report`, every target's
/// `traceable` is filled in (`probe`); otherwise only a refused one's.
pub fn attach_loaded(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    loaded: Vec<Loaded>,
    report: bool,
) -> Vec<TargetStatus> {
    // The section target first: whether it attached decides the per-page ones.
    let mut loaded: Vec<Option<Loaded>> = loaded.into_iter().map(Some).collect();
    let mut section = loaded
        .iter_mut()
        .find(|l| {
            l.as_ref()
                .is_some_and(|l| l.st.target == Target::PopulateSectionMemmap)
        })
        .and_then(Option::take)
        .map(|l| attach_target(ebpf, facts, l));
    let section_attached = section.as_ref().is_some_and(|s| s.attached);
    loaded
        .into_iter()
        .filter_map(|l| {
            let mut st = match l {
                None => section.take()?,
                // Covered, but the section target did not attach: traced per page after all.
                Some(l) if l.covered && !section_attached => {
                    let st = TargetStatus::new(l.st.target, facts);
                    let l = load_target(ebpf, facts, st, l.choice);
                    attach_target(ebpf, facts, l)
                }
                Some(l) => attach_target(ebpf, facts, l),
            };
            if report {
                st.traceable = facts.traceable(&st.symbol);
                st.btf = st.btf || facts.btf_has_function(&st.symbol);
            }
            crate::startup_phases::mark(&format!("attach {}", st.symbol));
            Some(st)
        })
        .collect()
}

fn load_target(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    mut st: TargetStatus,
    choice: AttachChoice,
) -> Loaded {
    // The programs are named after the target, attached to the status' function.
    let prog = st.target.symbol();
    let sym = st.symbol.clone();
    let sym = sym.as_str();
    let mut why = Vec::new();
    // Read once: what decides the method is what `probe` and the attach line report.
    st.livepatched_by = livepatch::patches_of(Path::new(livepatch::SYSFS_ROOT), sym);
    if !st.kallsyms {
        st.reason = Some(format!(
            "absent: no function `{sym}` in /proc/kallsyms (a macro or inlined in this kernel)"
        ));
        return Loaded::decided(st, why, choice);
    }
    if choice == AttachChoice::Kprobe {
        why.push("fentry: not tried (--attach kprobe)".into());
    } else if !st.livepatched_by.is_empty() {
        why.push(format!(
            "fentry: not tried: livepatched by {} ({LIVEPATCH_TRAMPOLINE})",
            st.livepatched_by.join(", ")
        ));
    } else if let Some(btf) = facts.btf.as_ref() {
        // Looking a function up in the kernel's BTF goes through all its
        // types (aya has no index): tried once, by the load itself, and
        // again only to explain a refusal.
        match load_fentry(ebpf, btf, prog, sym) {
            Ok(()) => {
                return Loaded {
                    st,
                    method: Some(Method::Fentry),
                    why,
                    choice,
                    covered: false,
                }
            }
            Err(e) => fentry_refused(facts, &mut st, &mut why, e),
        }
    } else if let Some(e) = &facts.btf_error {
        why.push(e.clone());
    }
    load_kprobe_or_refuse(ebpf, facts, st, why, choice)
}

/// Why a livepatched function gets no fentry/fexit: a BPF trampoline attached
/// to a function a livepatch already redirects is not safe on every kernel.
/// Debian's 6.1 then runs neither the patch's handler nor the trampoline and
/// warns in `arch_ftrace_ops_list_func`, which disables ftrace until reboot
/// (no more livepatches, kprobes on ftrace sites or trampolines); 6.12 copes.
/// The kernels that cope cannot be told from the others, and kprobes see every
/// call there on both (docs/security.md), so kprobes are used on all.
const LIVEPATCH_TRAMPOLINE: &str =
    "a BPF trampoline attached after a livepatch bypasses it and disables ftrace on some kernels, 6.1 among them";

/// Notes why fentry/fexit did not take the target.
fn fentry_refused(facts: &KernelFacts, st: &mut TargetStatus, why: &mut Vec<String>, e: String) {
    st.btf = facts.btf_has_function(&st.symbol);
    why.push(if st.btf {
        format!("fentry: {e}")
    } else {
        "fentry: no BTF FUNC record".into()
    });
}

/// The kprobe pair loaded, after fentry/fexit did not take the target; or
/// the target refused (`--attach fentry`, or the kprobes do not load).
fn load_kprobe_or_refuse(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    mut st: TargetStatus,
    mut why: Vec<String>,
    choice: AttachChoice,
) -> Loaded {
    if choice == AttachChoice::Fentry {
        st.reason = Some(format!(
            "refused: {} (--attach fentry: no kprobe fallback)",
            why.join("; ")
        ));
        return Loaded::decided(st, why, choice);
    }
    match load_kprobe(ebpf, st.target.symbol()) {
        Ok(()) => Loaded {
            st,
            method: Some(Method::Kprobe),
            why,
            choice,
            covered: false,
        },
        Err(e) => {
            kprobe_refused(facts, &mut st, &mut why, e);
            Loaded::decided(st, why, choice)
        }
    }
}

fn kprobe_refused(facts: &KernelFacts, st: &mut TargetStatus, why: &mut Vec<String>, e: String) {
    why.push(format!("kprobe: {e}"));
    st.traceable = facts.traceable(&st.symbol);
    let prefix = if st.traceable == Some(false) {
        "refused: notrace (no ftrace site in this kernel); "
    } else {
        "refused: "
    };
    st.reason = Some(format!("{prefix}{}", why.join("; ")));
}

impl Loaded {
    fn decided(st: TargetStatus, why: Vec<String>, choice: AttachChoice) -> Self {
        Self {
            st,
            method: None,
            why,
            choice,
            covered: false,
        }
    }
}

fn attach_target(ebpf: &mut Ebpf, facts: &KernelFacts, l: Loaded) -> TargetStatus {
    let Loaded {
        mut st,
        method,
        mut why,
        choice,
        ..
    } = l;
    let prog = st.target.symbol();
    let sym = st.symbol.clone();
    match method {
        None => st,
        Some(Method::Fentry) => match attach_pair(ebpf, "fentry", "fexit", prog, &sym) {
            Ok(()) => {
                st.btf = true;
                st.method = Some(Method::Fentry);
                st.attached = true;
                st
            }
            Err(e) => {
                fentry_refused(facts, &mut st, &mut why, e);
                let l = load_kprobe_or_refuse(ebpf, facts, st, why, choice);
                attach_target(ebpf, facts, l)
            }
        },
        Some(Method::Kprobe) => {
            match attach_pair(ebpf, "kprobe", "kretprobe", prog, &sym) {
                Ok(()) => {
                    st.method = Some(Method::Kprobe);
                    st.attached = true;
                    st.reason = Some(format!("kprobe fallback ({})", why.join("; ")));
                }
                Err(e) => kprobe_refused(facts, &mut st, &mut why, e),
            }
            st
        }
    }
}

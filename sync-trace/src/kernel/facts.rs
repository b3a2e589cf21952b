//! Facts about the running kernel that decide how each target is attached.

use std::{collections::HashSet, fs};

use aya::Btf;
use aya_obj::btf::BtfKind;

use super::kallsyms::Kallsyms;

/// Where tracefs may be mounted, newest convention first.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

pub struct KernelFacts {
    pub kallsyms: Kallsyms,
    /// vmlinux BTF, when `/sys/kernel/btf/vmlinux` exists (CONFIG_DEBUG_INFO_BTF).
    pub btf: Option<Btf>,
    pub btf_error: Option<String>,
    /// Names in available_filter_functions, when tracefs is readable.
    filter_functions: Option<HashSet<String>>,
}

impl KernelFacts {
    pub fn gather() -> Result<Self, String> {
        let kallsyms = Kallsyms::load()
            .map_err(|e| format!("cannot read /proc/kallsyms: {e}; is /proc mounted?"))?;
        if kallsyms.addresses_hidden() {
            return Err("/proc/kallsyms shows only zero addresses: kptr_restrict hides them; run as root (CAP_SYSLOG) with kernel.kptr_restrict <= 1".into());
        }
        let (btf, btf_error) = match Btf::from_sys_fs() {
            Ok(b) => (Some(b), None),
            Err(e) => (
                None,
                Some(format!(
                    "no vmlinux BTF ({e}): fentry/fexit need CONFIG_DEBUG_INFO_BTF and /sys/kernel/btf/vmlinux; using kprobes"
                )),
            ),
        };
        Ok(Self {
            kallsyms,
            btf,
            btf_error,
            filter_functions: read_filter_functions(),
        })
    }

    pub fn btf_has_function(&self, name: &str) -> bool {
        self.btf
            .as_ref()
            .is_some_and(|b| b.id_by_type_name_kind(name, BtfKind::Func).is_ok())
    }

    pub fn traceable(&self, name: &str) -> Option<bool> {
        self.filter_functions.as_ref().map(|f| f.contains(name))
    }
}

/// `available_filter_functions` lists every function with an ftrace site:
/// exactly those that fentry/fexit and ftrace-based kprobes can attach to.
/// Lines look like `name` or `name [module]`; clones (`.isra.0`, `.cold`)
/// keep their suffix, so they never match a plain name.
fn read_filter_functions() -> Option<HashSet<String>> {
    TRACEFS.iter().find_map(|dir| {
        let text = fs::read_to_string(format!("{dir}/available_filter_functions")).ok()?;
        Some(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect(),
        )
    })
}

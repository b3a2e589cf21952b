//! Facts about the running kernel that decide how each target is attached.

use std::{
    cell::OnceCell,
    fs,
    io::{BufRead, BufReader},
};

use aya::Btf;
use aya_obj::btf::BtfKind;
use sync_trace_common::Target;

use super::symbols::Symbols;

/// Where tracefs may be mounted, newest convention first.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

pub struct KernelFacts {
    pub symbols: Symbols,
    /// vmlinux BTF, when `/sys/kernel/btf/vmlinux` exists (CONFIG_DEBUG_INFO_BTF):
    /// parsed only while the objects and programs load and attach
    /// (`parse_btf`), then dropped, since parsed it is the largest thing the
    /// daemon ever holds.
    pub btf: Option<Btf>,
    pub btf_error: Option<String>,
    /// The targets in available_filter_functions, when tracefs is readable;
    /// read the first time it is asked for (the kernel makes the file's
    /// tens of thousands of lines as it is read: slow on a small machine,
    /// and `run` needs it only to explain a target that refuses to attach).
    filter_functions: OnceCell<Option<Vec<&'static str>>>,
}

impl KernelFacts {
    pub fn gather() -> Result<Self, String> {
        Ok(Self {
            symbols: Symbols::gather()?,
            btf: None,
            btf_error: None,
            filter_functions: OnceCell::new(),
        })
    }

    /// Parses the kernel's BTF (aya's parse of /sys/kernel/btf/vmlinux: what
    /// CO-RE and fentry/fexit need); `drop_btf` after.
    pub fn parse_btf() -> Result<Btf, String> {
        let btf = Btf::from_sys_fs().map_err(|e| format!(
            "no vmlinux BTF ({e}): fentry/fexit need CONFIG_DEBUG_INFO_BTF and /sys/kernel/btf/vmlinux; using kprobes"
        ));
        crate::startup_phases::mark("btf parsed");
        btf
    }

    /// Keeps `parsed` ([`KernelFacts::parse_btf`]) until `drop_btf`.
    pub fn set_btf(&mut self, parsed: Result<Btf, String>) {
        match parsed {
            Ok(b) => self.btf = Some(b),
            Err(e) => self.btf_error = Some(e),
        }
    }

    /// Drops the parsed BTF, once the programs are attached.
    pub fn drop_btf(&mut self) {
        self.btf = None;
    }

    pub fn btf_has_function(&self, name: &str) -> bool {
        self.btf
            .as_ref()
            .is_some_and(|b| b.id_by_type_name_kind(name, BtfKind::Func).is_ok())
    }

    pub fn traceable(&self, name: &str) -> Option<bool> {
        self.filter_functions
            .get_or_init(read_filter_functions)
            .as_ref()
            .map(|f| f.contains(&name))
    }
}

/// `available_filter_functions` lists every function with an ftrace site:
/// exactly those that fentry/fexit and ftrace-based kprobes can attach to.
/// Lines look like `name` or `name [module]`; clones (`.isra.0`, `.cold`)
/// keep their suffix, so they never match a plain name. Read line by line;
/// only the targets found are kept (the file lists tens of thousands).
fn read_filter_functions() -> Option<Vec<&'static str>> {
    TRACEFS.iter().find_map(|dir| {
        let file = fs::File::open(format!("{dir}/available_filter_functions")).ok()?;
        let mut found = Vec::new();
        for line in BufReader::with_capacity(64 * 1024, file).lines() {
            let line = line.ok()?;
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(t) = Target::ALL.iter().find(|t| t.symbol() == name) {
                found.push(t.symbol());
            }
        }
        Some(found)
    })
}

//! `/proc/kallsyms`: which symbols the running kernel has, and address →
//! `symbol+offset` for kernel stacks.
//!
//! Parsed here rather than with a crate: the format is three whitespace-
//! separated columns plus an optional `[module]`, and the crates that parse
//! it (blazesym and friends) bring a DWARF/ELF symbolizer we do not need.

use std::{fs, io, path::Path};

/// No kernel function is this large; a larger offset means the address lies
/// in a gap of the symbol table (JIT code, trampolines).
const MAX_FUNCTION_SIZE: u64 = 1 << 20;

/// One symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sym {
    addr: u64,
    kind: char,
    name: String,
}

/// The kernel's symbol table, sorted by address.
#[derive(Debug, Default)]
pub struct Kallsyms {
    syms: Vec<Sym>,
    hidden: bool,
}

impl Kallsyms {
    /// Reads `/proc/kallsyms`.
    pub fn load() -> io::Result<Self> {
        Self::load_from(Path::new("/proc/kallsyms"))
    }

    pub fn load_from(path: &Path) -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string(path)?))
    }

    pub fn parse(text: &str) -> Self {
        let mut syms = Vec::new();
        let mut nonzero = false;
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let kind = kind.chars().next().unwrap_or('?');
            nonzero |= addr != 0;
            syms.push(Sym {
                addr,
                kind,
                name: name.to_string(),
            });
        }
        let hidden = !syms.is_empty() && !nonzero;
        syms.sort_by_key(|s| s.addr);
        Self { syms, hidden }
    }

    /// True when every address reads 0: `kptr_restrict` hides them from this
    /// reader (it lacks CAP_SYSLOG, or kptr_restrict is 2).
    pub fn addresses_hidden(&self) -> bool {
        self.hidden
    }

    /// Address of a symbol (the first one of that name).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// Whether the kernel was built with KASAN (it has the early shadow page).
    pub fn has_kasan(&self) -> bool {
        self.address_of("kasan_early_shadow_page").is_some()
    }

    /// Whether a function (text symbol, `t` or `T`) of this name exists.
    pub fn has_function(&self, name: &str) -> bool {
        self.syms
            .iter()
            .any(|s| s.name == name && matches!(s.kind, 't' | 'T'))
    }

    /// `(symbol, offset)` of the text symbol that contains `addr`: the last
    /// symbol at or below it, when that is a function and not the very last
    /// symbol (past it lie BPF programs and trampolines kallsyms may not list).
    pub fn resolve(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        if i == 0 || i == self.syms.len() {
            return None;
        }
        let sym = &self.syms[i - 1];
        if !matches!(sym.kind, 't' | 'T' | 'w' | 'W') || addr - sym.addr > MAX_FUNCTION_SIZE {
            return None;
        }
        Some((sym.name.as_str(), addr - sym.addr))
    }

    /// `symbol+0xoff`, or the raw address when unknown.
    pub fn format(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some((name, off)) => format!("{name}+0x{off:x}"),
            None => format!("0x{addr:x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _text
ffffffff81077a10 t sync_global_pgds
ffffffff81077c00 T arch_sync_kernel_mappings
ffffffff82a00000 D init_mm
ffffffffc0000000 t hello_init\t[hello]
ffffffffc0001000 t hello_exit\t[hello]
";

    #[test]
    fn resolves_and_finds() {
        let k = Kallsyms::parse(SAMPLE);
        assert!(!k.addresses_hidden());
        assert!(k.has_function("sync_global_pgds"));
        assert!(!k.has_function("init_mm"));
        assert!(!k.has_function("vmemmap_p4d_populate"));
        assert_eq!(k.address_of("init_mm"), Some(0xffffffff82a00000));
        assert_eq!(k.format(0xffffffff81077a24), "sync_global_pgds+0x14");
        assert_eq!(
            k.format(0xffffffff81077c04),
            "arch_sync_kernel_mappings+0x4"
        );
        assert_eq!(k.format(0x10), "0x10");
        // Past the last symbol, or far past a function: unknown.
        assert_eq!(k.format(0xffffffffc1000000), "0xffffffffc1000000");
        assert_eq!(k.format(0xffffffff81877a24), "0xffffffff81877a24");
        // Inside a data symbol: not a function.
        assert_eq!(k.format(0xffffffff82a00010), "0xffffffff82a00010");
    }

    #[test]
    fn zero_addresses_mean_hidden() {
        let k = Kallsyms::parse("0000000000000000 T _text\n0000000000000000 t sync_global_pgds\n");
        assert!(k.addresses_hidden());
    }
}

//! `/proc/kallsyms`: which symbols the running kernel has, and address →
//! `symbol+offset` for kernel stacks.
//!
//! Parsed here rather than with a crate: the format is three whitespace-
//! separated columns plus an optional `[module]`, and the crates that parse
//! it (blazesym and friends) bring a DWARF/ELF symbolizer we do not need.

use std::{
    fs,
    io::{self, BufRead, BufReader},
    path::Path,
};

use sync_trace_common::Target;

/// No kernel function is this large; a larger offset means the address lies
/// in a gap of the symbol table (JIT code, trampolines).
const MAX_FUNCTION_SIZE: u64 = 1 << 20;

/// The data symbols whose address is asked for (`address_of`): the page-table
/// scan's globals, the batches' top-level table and KASAN's shadow page.
/// Other data symbols are kept as boundaries only (an address inside one is
/// not in a function), without their names: a kernel has a few hundred
/// thousand symbols, and their names would be most of the daemon's memory.
pub const DATA_SYMBOLS: [&str; 8] = [
    "init_top_pgt",
    "pgd_list",
    "page_offset_base",
    "vmalloc_base",
    "vmemmap_base",
    "pgdir_shift",
    "sme_me_mask",
    "kasan_early_shadow_page",
];

/// The names looked up by name at start (the data symbols and the
/// functions that are attached): their symbols are noted as the table is
/// read, so a lookup does not go through the whole table.
fn noted(name: &str) -> bool {
    DATA_SYMBOLS.contains(&name) || Target::ALL.iter().any(|t| t.symbol() == name)
}

/// A symbol without a kept name.
const NO_NAME: u32 = u32::MAX;

/// The kind given to a BPF program's or trampoline's symbol: not text.
const BPF: u8 = b'-';

/// One symbol: 16 bytes, its name in the table's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sym {
    addr: u64,
    /// Start of the name in `names` (NUL-terminated), or `NO_NAME`.
    name: u32,
    kind: u8,
}

impl Sym {
    fn is_text(&self) -> bool {
        matches!(self.kind, b't' | b'T' | b'w' | b'W')
    }
}

/// The kernel's symbol table, sorted by address: every symbol's address and
/// kind, the names of functions and of [`DATA_SYMBOLS`].
#[derive(Debug, Default)]
pub struct Kallsyms {
    syms: Vec<Sym>,
    /// The kept names, each followed by a NUL.
    names: String,
    /// The symbols of the `noted` names, in the file's order.
    noted: Vec<Sym>,
    hidden: bool,
}

impl Kallsyms {
    /// Reads `/proc/kallsyms`.
    pub fn load() -> io::Result<Self> {
        Self::load_from(Path::new("/proc/kallsyms"))
    }

    /// Reads a kallsyms file line by line: the text is never held whole.
    pub fn load_from(path: &Path) -> io::Result<Self> {
        Self::read(fs::File::open(path)?)
    }

    /// Reads an opened kallsyms file line by line.
    pub fn read(file: fs::File) -> io::Result<Self> {
        let mut r = BufReader::with_capacity(64 * 1024, file);
        let mut table = Builder::default();
        let mut line = String::new();
        while r.read_line(&mut line)? != 0 {
            table.line(&line);
            line.clear();
        }
        Ok(table.finish())
    }

    pub fn parse(text: &str) -> Self {
        let mut table = Builder::default();
        text.lines().for_each(|l| table.line(l));
        table.finish()
    }

    fn name(&self, s: &Sym) -> Option<&str> {
        let rest = self.names.get(s.name as usize..)?;
        rest.split('\0').next()
    }

    /// True when every address reads 0: `kptr_restrict` hides them from this
    /// reader (it lacks CAP_SYSLOG, or kptr_restrict is 2).
    pub fn addresses_hidden(&self) -> bool {
        self.hidden
    }

    /// Address of a function or of one of [`DATA_SYMBOLS`] (the first one
    /// of that name).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.lookup(name)
            .find(|s| self.name(s) == Some(name))
            .map(|s| s.addr)
    }

    /// The symbols to search for `name`: the noted ones when it is noted.
    fn lookup(&self, name: &str) -> std::slice::Iter<'_, Sym> {
        if noted(name) {
            self.noted.iter()
        } else {
            self.syms.iter()
        }
    }

    /// Whether the kernel was built with KASAN (it has the early shadow page).
    pub fn has_kasan(&self) -> bool {
        self.address_of("kasan_early_shadow_page").is_some()
    }

    /// Whether a function (text symbol, `t` or `T`) of this name exists.
    pub fn has_function(&self, name: &str) -> bool {
        self.lookup(name)
            .any(|s| matches!(s.kind, b't' | b'T') && self.name(s) == Some(name))
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
        if !sym.is_text() || addr - sym.addr > MAX_FUNCTION_SIZE {
            return None;
        }
        Some((self.name(sym)?, addr - sym.addr))
    }

    /// `symbol+0xoff`, or the raw address when unknown.
    pub fn format(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some((name, off)) => format!("{name}+0x{off:x}"),
            None => format!("0x{addr:x}"),
        }
    }
}

/// The table as its lines come.
#[derive(Default)]
struct Builder {
    table: Kallsyms,
    nonzero: bool,
}

impl Builder {
    fn line(&mut self, line: &str) {
        let mut it = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
            return;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            return;
        };
        // BPF programs and trampolines (`[bpf]`, listed by the kernel once
        // loaded) are boundaries without a name: a frame in one is the
        // probe's own (`record/stack.rs`), shown as its address whether the
        // table was read before or after the programs loaded.
        let kind = match it.next() {
            Some("[bpf]") => BPF,
            _ => kind.bytes().next().unwrap_or(b'?'),
        };
        self.nonzero |= addr != 0;
        let mut sym = Sym {
            addr,
            name: NO_NAME,
            kind,
        };
        let t = &mut self.table;
        // A NUL ends a name in the arena (the kernel writes none).
        if (sym.is_text() || DATA_SYMBOLS.contains(&name)) && !name.contains('\0') {
            if let Ok(at) = u32::try_from(t.names.len()) {
                sym.name = at;
                t.names.push_str(name);
                t.names.push('\0');
                if noted(name) {
                    t.noted.push(sym);
                }
            }
        }
        t.syms.push(sym);
    }

    fn finish(self) -> Kallsyms {
        let mut t = self.table;
        t.hidden = !t.syms.is_empty() && !self.nonzero;
        // Mostly sorted already (vmlinux, then each module): a stable sort
        // keeps the order of symbols at one address.
        if !t.syms.is_sorted_by_key(|s| s.addr) {
            t.syms.sort_by_key(|s| s.addr);
        }
        t.syms.shrink_to_fit();
        t.names.shrink_to_fit();
        t
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
ffffffff82b00000 D pgd_list
ffffffffc0000000 t hello_init\t[hello]
ffffffffc0001000 t hello_exit\t[hello]
ffffffffc0002000 t bpf_prog_6deef7357e7b4530_fentry_sync_global_pgds\t[bpf]
ffffffffc0003000 t bpf_trampoline_6442\t[bpf]
ffffffffc0004000 t hello_more\t[hello]
";

    #[test]
    fn resolves_and_finds() {
        let k = Kallsyms::parse(SAMPLE);
        assert!(!k.addresses_hidden());
        assert!(k.has_function("sync_global_pgds"));
        assert!(!k.has_function("init_mm"));
        assert!(!k.has_function("vmemmap_p4d_populate"));
        assert_eq!(k.address_of("pgd_list"), Some(0xffffffff82b00000));
        // A data symbol not asked for keeps no name, only its place.
        assert_eq!(k.address_of("init_mm"), None);
        assert_eq!(k.format(0xffffffff81077a24), "sync_global_pgds+0x14");
        assert_eq!(
            k.format(0xffffffff81077c04),
            "arch_sync_kernel_mappings+0x4"
        );
        assert_eq!(k.format(0x10), "0x10");
        // Past the last symbol, or far past a function: unknown.
        assert_eq!(k.format(0xffffffffc1000000), "0xffffffffc1000000");
        assert_eq!(k.format(0xffffffff81877a24), "0xffffffff81877a24");
        // A BPF program's and a trampoline's frames: their addresses, as
        // when the table was read before they loaded.
        assert_eq!(k.format(0xffffffffc0002010), "0xffffffffc0002010");
        assert_eq!(k.format(0xffffffffc0003010), "0xffffffffc0003010");
        assert!(!k.has_function("bpf_trampoline_6442"));
        assert_eq!(k.format(0xffffffffc0001010), "hello_exit+0x10");
        // Inside a data symbol: not a function.
        assert_eq!(k.format(0xffffffff82a00010), "0xffffffff82a00010");
        assert_eq!(k.format(0xffffffff82b00010), "0xffffffff82b00010");
    }

    #[test]
    fn a_file_is_read_line_by_line_into_the_same_table() {
        let path = std::env::temp_dir().join(format!("kallsyms-{}", std::process::id()));
        // Out of order, as a module loaded at a lower address lists.
        std::fs::write(&path, format!("ffffffffc2000000 t late\t[m]\n{SAMPLE}")).unwrap();
        let k = Kallsyms::load_from(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            k.format(0xffffffff81077c04),
            "arch_sync_kernel_mappings+0x4"
        );
        assert_eq!(k.format(0xffffffffc0000010), "hello_init+0x10");
        assert!(k.has_function("late"));
        assert_eq!(k.address_of("pgd_list"), Some(0xffffffff82b00000));
    }

    #[test]
    fn zero_addresses_mean_hidden() {
        let k = Kallsyms::parse("0000000000000000 T _text\n0000000000000000 t sync_global_pgds\n");
        assert!(k.addresses_hidden());
    }
}

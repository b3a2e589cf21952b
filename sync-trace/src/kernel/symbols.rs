//! The kernel's symbols as the daemon uses them: a dozen addresses by name
//! before anything loads (the programs' globals, which targets exist), and
//! the whole table for kernel stacks (address → `symbol+offset`).
//!
//! The names are looked up by the kernel (`ksym_lookup`), so the programs
//! load without waiting for the table; the table is read from
//! /proc/kallsyms on a thread of its own beside the loads, verifications and
//! attaches (`load_table_beside`), and waited for before `ready`
//! (`table`): reading it makes the kernel format every symbol, under
//! emulation the longest single wait of the start. Where the lookup cannot
//! run (a kernel before 5.16, a refused program) the table is read at once,
//! as the names' source too.

use std::{
    fs::File,
    io,
    sync::{Mutex, OnceLock},
    thread::JoinHandle,
};

use sync_trace_common::Target;

use super::{
    kallsyms::{Kallsyms, DATA_SYMBOLS},
    ksym_lookup::{self, Found},
};

const KALLSYMS: &str = "/proc/kallsyms";

/// Where the table comes from while it is not read yet.
enum Source {
    /// /proc/kallsyms, opened while the process could see addresses (the
    /// kernel decides at open whether a reader sees them).
    Opened(File),
    Reading(JoinHandle<io::Result<Kallsyms>>),
}

pub struct Symbols {
    /// The data symbols and the targets, with what the lookup found.
    named: Vec<(&'static str, Option<u64>)>,
    table: OnceLock<Kallsyms>,
    source: Mutex<Option<Source>>,
}

/// Every name looked up at start.
fn names() -> impl Iterator<Item = &'static str> {
    DATA_SYMBOLS
        .into_iter()
        .chain(Target::ALL.iter().map(|t| t.symbol()))
}

impl Symbols {
    /// The names looked up by the kernel, the table opened for later; or,
    /// without the lookup, the table read now.
    pub fn gather() -> Result<Self, String> {
        let names: Vec<&'static str> = names().collect();
        match ksym_lookup::lookup(&names) {
            Ok(found) => {
                let file = File::open(KALLSYMS).map_err(|e| open_error(&e))?;
                let named = names
                    .into_iter()
                    .zip(found)
                    .map(|(n, f)| {
                        (
                            n,
                            match f {
                                Found::At(a) => Some(a),
                                Found::Absent => None,
                            },
                        )
                    })
                    .collect();
                crate::startup_phases::mark("kernel symbols looked up");
                Ok(Self {
                    named,
                    table: OnceLock::new(),
                    source: Mutex::new(Some(Source::Opened(file))),
                })
            }
            Err(e) => {
                log::debug!("{e}; reading {KALLSYMS} instead");
                let table = Kallsyms::load().map_err(|e| open_error(&e))?;
                if table.addresses_hidden() {
                    return Err(format!("{KALLSYMS} shows only zero addresses: kptr_restrict hides them; run as root (CAP_SYSLOG) with kernel.kptr_restrict <= 1"));
                }
                crate::startup_phases::mark("kallsyms");
                Ok(Self::from_table(table))
            }
        }
    }

    /// Symbols from a table already read (tests, replays of a table).
    pub fn from_table(table: Kallsyms) -> Self {
        let named = names()
            .map(|n| {
                let addr = if Target::ALL.iter().any(|t| t.symbol() == n) {
                    table.has_function(n).then(|| table.address_of(n)).flatten()
                } else {
                    table.address_of(n)
                };
                (n, addr)
            })
            .collect();
        Self {
            named,
            table: OnceLock::from(table),
            source: Mutex::new(None),
        }
    }

    /// Starts reading the table on a thread of its own, if it is not read.
    pub fn load_table_beside(&self) {
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Source::Opened(file)) = source.take() {
            // A second descriptor of the same open file stays here: a
            // failed spawn drops the closure, and with it `file`.
            let kept = file.try_clone();
            let reading = std::thread::Builder::new()
                .name(super::loader::READS_ONLY.into())
                .spawn(move || Kallsyms::read(file));
            *source = match (reading, kept) {
                (Ok(h), _) => Some(Source::Reading(h)),
                (Err(e), Ok(kept)) => {
                    log::warn!("cannot start a thread to read {KALLSYMS}: {e}; reading it when the table is first needed");
                    Some(Source::Opened(kept))
                }
                (Err(e), Err(dup)) => {
                    log::warn!("cannot start a thread to read {KALLSYMS} ({e}) nor keep it open ({dup}): kernel stacks show raw addresses");
                    None
                }
            };
        }
    }

    /// The whole table; read now (or its reading waited for) the first time.
    /// Unreadable, it is empty: stacks then show raw addresses.
    pub fn table(&self) -> &Kallsyms {
        self.table.get_or_init(|| {
            let source = self.source.lock().unwrap_or_else(|e| e.into_inner()).take();
            let read = match source {
                Some(Source::Opened(file)) => Kallsyms::read(file),
                Some(Source::Reading(h)) => h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("its reader panicked"))),
                None => Ok(Kallsyms::default()),
            };
            read.unwrap_or_else(|e| {
                log::warn!("cannot read {KALLSYMS}: {e}; kernel stacks show raw addresses");
                Kallsyms::default()
            })
        })
    }

    /// What the lookup at start found for `name`; `None` when it was not
    /// among the names looked up.
    fn named(&self, name: &str) -> Option<Option<u64>> {
        self.named.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Address of a data symbol or target looked up at start, or of a
    /// function of the whole table (read now if it is not yet).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.named(name)
            .unwrap_or_else(|| self.table().address_of(name))
    }

    /// Whether the kernel has a target of that name (looked up at start),
    /// or a function of that name in the whole table (a stand-in's: read
    /// now if it is not yet).
    pub fn has_function(&self, name: &str) -> bool {
        match self.named(name) {
            Some(addr) => addr.is_some(),
            None => self.table().has_function(name),
        }
    }

    /// Whether the kernel was built with KASAN (it has the early shadow page).
    pub fn has_kasan(&self) -> bool {
        self.address_of("kasan_early_shadow_page").is_some()
    }

    /// `symbol+0xoff`, or the raw address when unknown.
    pub fn format(&self, addr: u64) -> String {
        self.table().format(addr)
    }
}

fn open_error(e: &io::Error) -> String {
    format!("cannot read {KALLSYMS}: {e}; is /proc mounted?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_read_gives_the_names_and_the_frames() {
        let s = Symbols::from_table(Kallsyms::parse(
            "ffffffff81000000 T _text\n\
             ffffffff81077a10 t sync_global_pgds\n\
             ffffffff82a00000 D init_top_pgt\n\
             ffffffff82b00000 D pgd_list\n\
             ffffffff82c00000 D _end\n\
             ffffffffc0000000 t st_sync\t[st_populate]\n",
        ));
        assert_eq!(s.address_of("pgd_list"), Some(0xffffffff82b00000));
        assert_eq!(s.address_of("init_top_pgt"), Some(0xffffffff82a00000));
        assert!(s.has_function("sync_global_pgds"));
        assert!(!s.has_function("vmemmap_p4d_populate"));
        assert!(!s.has_kasan());
        // A name not looked up at start (a stand-in, a module's function): the table.
        assert!(s.has_function("st_sync"));
        assert_eq!(s.address_of("st_sync"), Some(0xffffffffc0000000));
        assert!(!s.has_function("st_other"));
        assert_eq!(s.format(0xffffffff81077a24), "sync_global_pgds+0x14");
        // Asked to load beside, a table already read stays as it is.
        s.load_table_beside();
        assert_eq!(s.format(0xffffffff81077a10), "sync_global_pgds+0x0");
    }
}

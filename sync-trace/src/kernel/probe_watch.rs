//! Noticing an attached probe that goes away while `run` traces.
//!
//! A kprobe on a module function does not hold the module: when it is
//! unloaded, the kernel marks every kprobe in its text gone
//! (`kprobes_module_callback`, `KPROBE_FLAG_GONE`), the probe never fires
//! again, and nothing tells the perf event or the BPF link. The kernel's
//! list of kprobes (debugfs `kprobes/list`) shows it: `[GONE]` after the
//! line. fentry/fexit attach to vmlinux functions only (they are loaded
//! against vmlinux's BTF, which has no module function), and a vmlinux
//! function never goes away, so only kprobes are watched.
//!
//! Kprobes can also stop firing while still listed: all of them at once
//! when kprobes are disarmed globally (`echo 0 > kprobes/enabled`:
//! `disarm_all_kprobes()` removes every breakpoint and ftrace hook, the
//! list stays as it was), or one by one when the kernel disables it
//! (`[DISABLED]` after the line). Both are noticed the same way.
//!
//! The list is opened once as root, before `run` gives up its privileges
//! (debugfs is mode 0700), and read again through the same file
//! descriptor: a seq_file is regenerated at each read from offset 0, and
//! `kallsyms_show_value()` judges the opener's credentials, so the
//! addresses stay real.

use std::{
    collections::BTreeSet,
    fs::File,
    io::{Read as _, Seek as _, SeekFrom},
};

use sync_trace_common::{Method, Target};

use super::target_status::TargetStatus;
use crate::record::DetachedRecord;

/// The kernel's list of registered kprobes (CONFIG_KPROBES, debugfs).
pub const KPROBE_LIST: &str = "/sys/kernel/debug/kprobes/list";
/// `1` while kprobes are armed, `0` once disarmed globally (debugfs,
/// `kprobes_all_disarmed` in kernel/kprobes.c).
pub const KPROBES_ENABLED: &str = "/sys/kernel/debug/kprobes/enabled";

/// An attached kprobe target: the addresses its kprobe and kretprobe
/// were registered at (the function, or past its `endbr64` with IBT).
struct Watched {
    target: Target,
    symbol: String,
    addrs: BTreeSet<u64>,
}

pub struct ProbeWatch {
    list: File,
    /// `kprobes/enabled`, when it could be opened (it is beside the list).
    enabled: Option<File>,
    watched: Vec<Watched>,
}

/// A line of `kprobes/list`: `ADDR  TYPE  SYMBOL+0xOFF  [MODULE] FLAGS`
/// (`report_probe()` in kernel/kprobes.c), or `ADDR  TYPE  0x…` where the
/// address no longer has a symbol (its module is gone). Flags are
/// `[GONE]`, `[DISABLED]`, `[OPTIMIZED]`, `[FTRACE]`, run together.
#[derive(Debug, PartialEq)]
struct Entry<'a> {
    addr: u64,
    symbol: Option<&'a str>,
    gone: bool,
    disabled: bool,
}

fn parse(text: &str) -> Vec<Entry<'_>> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let _kind = f.next()?;
            let symbol = f
                .next()
                .and_then(|s| s.split_once("+0x"))
                .map(|(name, _)| name);
            Some(Entry {
                addr,
                symbol,
                gone: l.contains("[GONE]"),
                disabled: l.contains("[DISABLED]"),
            })
        })
        .collect()
}

/// Why a watched kprobe is no longer live in `entries`, if it is not.
fn dead(w: &Watched, entries: &[Entry<'_>]) -> Option<&'static str> {
    let mine: Vec<&Entry<'_>> = entries
        .iter()
        .filter(|e| w.addrs.contains(&e.addr))
        .collect();
    if mine.is_empty() {
        Some("unregistered")
    } else if mine.iter().all(|e| e.gone) {
        Some("gone")
    } else if mine.iter().all(|e| e.gone || e.disabled) {
        Some("disabled")
    } else {
        None
    }
}

impl ProbeWatch {
    /// Opens the kprobe list and finds the attached kprobe targets in it.
    /// `Ok(None)` when no target is attached by kprobe; an error is one
    /// line saying what cannot be watched and why.
    pub fn open(statuses: &[TargetStatus]) -> Result<Option<Self>, String> {
        let kprobes: Vec<&TargetStatus> = statuses
            .iter()
            .filter(|s| s.attached && s.method == Some(Method::Kprobe))
            .collect();
        if kprobes.is_empty() {
            return Ok(None);
        }
        let names = || {
            kprobes
                .iter()
                .map(|s| s.symbol.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut list = File::open(KPROBE_LIST).map_err(|e| {
            format!(
                "kprobes going away (an unloaded module) are not noticed: cannot open {KPROBE_LIST}: {e} (mount debugfs at /sys/kernel/debug; watched: {})",
                names()
            )
        })?;
        let text = read(&mut list).map_err(|e| format!("cannot read {KPROBE_LIST}: {e}"))?;
        let entries = parse(&text);
        let mut watched = Vec::new();
        for s in kprobes {
            let addrs: BTreeSet<u64> = entries
                .iter()
                .filter(|e| e.symbol == Some(s.symbol.as_str()))
                .map(|e| e.addr)
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "kprobes going away are not noticed: {KPROBE_LIST} lists no kprobe of {} (attached by kprobe)",
                    s.symbol
                ));
            }
            watched.push(Watched {
                target: s.target,
                symbol: s.symbol.clone(),
                addrs,
            });
        }
        let enabled = File::open(KPROBES_ENABLED).ok();
        Ok(Some(Self {
            list,
            enabled,
            watched,
        }))
    }

    /// Reads the list again; a `detached` record for each watched kprobe
    /// that stopped being live since the last check (each once).
    pub fn check(&mut self, ts_ns: u64) -> Result<Vec<DetachedRecord>, String> {
        if self.watched.is_empty() {
            return Ok(Vec::new());
        }
        let disarmed = match &mut self.enabled {
            Some(f) => {
                read(f)
                    .map_err(|e| format!("cannot read {KPROBES_ENABLED}: {e}"))?
                    .trim()
                    == "0"
            }
            None => false,
        };
        let text = read(&mut self.list).map_err(|e| format!("cannot read {KPROBE_LIST}: {e}"))?;
        let entries = parse(&text);
        let mut out = Vec::new();
        let why = |w: &Watched| {
            if disarmed {
                Some("disarmed")
            } else {
                dead(w, &entries)
            }
        };
        self.watched.retain(|w| match why(w) {
            Some(reason) => {
                out.push(DetachedRecord {
                    ts_ns,
                    target: w.target,
                    symbol: w.symbol.clone(),
                    method: Method::Kprobe,
                    reason: reason.into(),
                });
                false
            }
            None => true,
        });
        Ok(out)
    }
}

fn read(f: &mut File) -> std::io::Result<String> {
    f.seek(SeekFrom::Start(0))?;
    let mut s = String::new();
    f.read_to_string(&mut s)?;
    Ok(s)
}

/// The one line a `detached` record is logged as.
pub fn describe(d: &DetachedRecord) -> String {
    let why = match d.reason.as_str() {
        "gone" => "its kprobe is gone (the module holding the function was unloaded)",
        "disarmed" => "kprobes were disarmed globally (debugfs kprobes/enabled is 0)",
        "disabled" => "the kernel disabled its kprobe ([DISABLED] in debugfs kprobes/list)",
        _ => "its kprobe is no longer registered",
    };
    format!(
        "probe detached: {} ({} via {}): {why}; its calls are no longer seen (sync_trace_probe_attached is 0)",
        d.target.symbol(),
        d.symbol,
        d.method.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As 6.12 prints it: a kprobe and a kretprobe on a module function
    /// (past its endbr64), another on vmlinux; then the module unloaded.
    const LIVE: &str = "\
ffffffffc0201004  k  st_sync+0x4  st_populate [FTRACE]
ffffffffc0201004  r  st_sync+0x4  st_populate [FTRACE]
ffffffff81077a24  k  sync_global_pgds+0x4    [FTRACE]
";
    const GONE: &str = "\
ffffffffc0201004  k  0xffffffffc0201004 [GONE][FTRACE]
ffffffffc0201004  r  0xffffffffc0201004 [GONE][FTRACE]
ffffffff81077a24  k  sync_global_pgds+0x4    [FTRACE]
";

    fn watched(sym: &str, text: &str) -> Watched {
        Watched {
            target: Target::ArchSyncKernelMappings,
            symbol: sym.into(),
            addrs: parse(text)
                .iter()
                .filter(|e| e.symbol == Some(sym))
                .map(|e| e.addr)
                .collect(),
        }
    }

    #[test]
    fn lines_parse() {
        let e = parse(LIVE);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            Entry {
                addr: 0xffffffffc0201004,
                symbol: Some("st_sync"),
                gone: false,
                disabled: false
            }
        );
        let g = parse(GONE);
        assert!(g[0].gone && g[1].gone && !g[2].gone);
        assert_eq!(g[0].symbol, None);
        assert!(parse("garbage\n\n").is_empty());
    }

    #[test]
    fn a_gone_or_missing_kprobe_is_dead_a_live_one_is_not() {
        let w = watched("st_sync", LIVE);
        assert_eq!(w.addrs.len(), 1);
        assert_eq!(dead(&w, &parse(LIVE)), None);
        assert_eq!(dead(&w, &parse(GONE)), Some("gone"));
        let only_vmlinux = "ffffffff81077a24  k  sync_global_pgds+0x4    [FTRACE]\n";
        assert_eq!(dead(&w, &parse(only_vmlinux)), Some("unregistered"));
        let v = watched("sync_global_pgds", LIVE);
        assert_eq!(dead(&v, &parse(GONE)), None);
    }

    #[test]
    fn a_disabled_kprobe_is_dead() {
        let w = watched("st_sync", LIVE);
        let one = "\
ffffffffc0201004  k  st_sync+0x4  st_populate [DISABLED][FTRACE]
ffffffffc0201004  r  st_sync+0x4  st_populate [FTRACE]
";
        assert_eq!(dead(&w, &parse(one)), None, "its kretprobe still fires");
        let both = one.replace("st_populate [FTRACE]", "st_populate [DISABLED][FTRACE]");
        assert_eq!(dead(&w, &parse(&both)), Some("disabled"));
    }

    #[test]
    fn disarmed_kprobes_detach_every_watched_target_once() {
        let dir = std::env::temp_dir().join(format!("st-probe-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (list, enabled) = (dir.join("list"), dir.join("enabled"));
        std::fs::write(&list, LIVE).unwrap();
        std::fs::write(&enabled, "1\n").unwrap();
        let mut pw = ProbeWatch {
            list: File::open(&list).unwrap(),
            enabled: Some(File::open(&enabled).unwrap()),
            watched: vec![watched("st_sync", LIVE)],
        };
        assert!(pw.check(1).unwrap().is_empty());
        std::fs::write(&enabled, "0\n").unwrap();
        let d = pw.check(2).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].ts_ns, d[0].reason.as_str()), (2, "disarmed"));
        assert!(describe(&d[0]).contains("kprobes/enabled is 0"));
        assert!(pw.check(3).unwrap().is_empty(), "reported once");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Kernel symbols by name, looked up by the kernel itself: the program of
//! `ksym_lookup.bpf.c` (BPF_PROG_TYPE_SYSCALL) calls
//! bpf_kallsyms_lookup_name() for each name, run once with
//! BPF_PROG_TEST_RUN.
//!
//! What the daemon needs before its programs load is a dozen addresses;
//! reading /proc/kallsyms for them makes the kernel format every symbol
//! (155,000 lines on 6.12: the longest wait of the start under emulation).
//!
//! Loaded with bpf(2) here, not with aya: aya 0.14 has no syscall program
//! type. The program uses no map, no global and no subprogram, so its
//! instructions load as they are in the object (checked: a relocation
//! against its section is refused).

use std::{ffi::CStr, io, mem, os::fd::FromRawFd, os::fd::OwnedFd};

use object::{Object as _, ObjectSection as _};

/// BPF_PROG_TYPE_SYSCALL (include/uapi/linux/bpf.h; Linux 5.14).
const PROG_TYPE_SYSCALL: u32 = 31;
/// BPF_F_SLEEPABLE: a syscall program must be sleepable.
const F_SLEEPABLE: u32 = 1 << 4;
/// bpf(2) commands.
const PROG_LOAD: libc::c_long = 5;
const PROG_TEST_RUN: libc::c_long = 10;
/// The section clang puts the program in (`SEC("syscall")`).
const SECTION: &str = "syscall";

/// ST_KSYM_NAME and ST_KSYM_MAX of ksym_lookup.h.
pub const NAME_BYTES: usize = 48;
pub const MAX_NAMES: usize = 16;

/// `struct st_ksym_req` of ksym_lookup.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    name: [u8; NAME_BYTES],
    addr: u64,
    err: i64,
}

/// The prefix of `union bpf_attr` for BPF_PROG_LOAD that is set; the rest
/// of the union stays zero (the kernel requires it).
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    rest: [u8; 64],
}

/// The `test` member of `union bpf_attr` (BPF_PROG_TEST_RUN).
#[repr(C)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// What a lookup found for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    At(u64),
    /// No symbol of that name (-ENOENT).
    Absent,
}

/// Looks `names` up in the kernel, in order. Fails when the program cannot
/// load or run (a kernel before 5.16, or without the privilege to load
/// it), or when the kernel hides addresses from this process (-EPERM, as
/// /proc/kallsyms would show it zeros): the caller then reads
/// /proc/kallsyms.
pub fn lookup(names: &[&str]) -> io::Result<Vec<Found>> {
    let mut found = Vec::with_capacity(names.len());
    let prog = load()?;
    for chunk in names.chunks(MAX_NAMES) {
        found.extend(run(&prog, chunk)?);
    }
    Ok(found)
}

fn load() -> io::Result<OwnedFd> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let file = object::File::parse(sync_trace_ebpf::KSYM_LOOKUP_BPF)
        .map_err(|e| bad(format!("ksym_lookup.bpf.o: {e}")))?;
    let section = file
        .section_by_name(SECTION)
        .ok_or_else(|| bad(format!("ksym_lookup.bpf.o has no `{SECTION}` section")))?;
    if section.relocations().next().is_some() {
        return Err(bad(format!(
            "ksym_lookup.bpf.o's `{SECTION}` section has relocations this loader does not apply"
        )));
    }
    let insns = section
        .data()
        .map_err(|e| bad(format!("ksym_lookup.bpf.o: {e}")))?;
    let license = c"GPL";
    let mut attr: ProgLoad = unsafe { mem::zeroed() };
    attr.prog_type = PROG_TYPE_SYSCALL;
    attr.insn_cnt = (insns.len() / 8) as u32;
    attr.insns = insns.as_ptr() as u64;
    attr.license = license.as_ptr() as u64;
    attr.prog_flags = F_SLEEPABLE;
    attr.prog_name[..14].copy_from_slice(b"st_ksym_lookup");
    let first = match bpf(PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(owned(fd)),
        Err(e) => e,
    };
    // Loaded again with the verifier's log, to say why.
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    if let Ok(fd) = bpf(PROG_LOAD, &mut attr) {
        return Ok(owned(fd));
    }
    let text = CStr::from_bytes_until_nul(&log)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(io::Error::new(
        first.kind(),
        format!(
            "cannot load the symbol lookup program: {first}{}{last}",
            if last.is_empty() { "" } else { ": " }
        ),
    ))
}

/// The program's descriptor, as BPF_PROG_LOAD returned it.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn run(prog: &OwnedFd, names: &[&str]) -> io::Result<Vec<Found>> {
    use std::os::fd::AsRawFd as _;
    let mut reqs = [Request {
        name: [0; NAME_BYTES],
        addr: 0,
        err: 0,
    }; MAX_NAMES];
    for (req, name) in reqs.iter_mut().zip(names) {
        // The last byte stays NUL: the helper checks it.
        if name.is_empty() || name.len() >= NAME_BYTES || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "kernel symbol name `{name}` cannot be looked up (1 to {} bytes, no NUL)",
                    NAME_BYTES - 1
                ),
            ));
        }
        req.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    let mut attr: TestRun = unsafe { mem::zeroed() };
    attr.prog_fd = prog.as_raw_fd() as u32;
    attr.ctx_in = reqs.as_mut_ptr() as u64;
    attr.ctx_size_in = mem::size_of_val(&reqs) as u32;
    bpf(PROG_TEST_RUN, &mut attr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run the symbol lookup program: {e}"),
        )
    })?;
    names
        .iter()
        .zip(&reqs)
        .map(|(name, r)| match r.err {
            0 if r.addr != 0 => Ok(Found::At(r.addr)),
            // The helper says -ENOENT for a name the kernel lacks (an
            // address of 0 is never a symbol's).
            0 => Ok(Found::Absent),
            e if e == -(libc::ENOENT as i64) => Ok(Found::Absent),
            e => {
                let err = io::Error::from_raw_os_error((-e) as i32);
                Err(io::Error::new(
                    err.kind(),
                    format!("looking up kernel symbol `{name}`: {err}"),
                ))
            }
        })
        .collect()
}

/// bpf(2): what it returned, or its errno.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a `union bpf_attr` prefix of the given size for
    // `cmd`, whose pointers (instructions, license, log, context) outlive
    // the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of ksym_lookup.h: its two sizes, and the request's fields
    /// after the name.
    #[test]
    fn the_request_is_that_of_the_header() {
        let header = include_str!("../../../sync-trace-ebpf/src/bpf/ksym_lookup.h");
        let define = |name: &str| -> usize {
            header
                .lines()
                .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no #define {name} in ksym_lookup.h"))
        };
        assert_eq!(define("ST_KSYM_NAME"), NAME_BYTES);
        assert_eq!(define("ST_KSYM_MAX"), MAX_NAMES);
        assert_eq!(mem::size_of::<Request>(), NAME_BYTES + 16);
        assert_eq!(mem::offset_of!(Request, addr), NAME_BYTES);
        assert!(header.contains("__u64 addr;") && header.contains("__s64 err;"));
    }

    /// Every name the daemon looks up fits, and a bad one is refused
    /// before anything reaches the kernel.
    #[test]
    fn names_are_checked() {
        for n in crate::kernel::kallsyms::DATA_SYMBOLS
            .into_iter()
            .chain(sync_trace_common::Target::ALL.iter().map(|t| t.symbol()))
        {
            assert!(n.len() < NAME_BYTES, "{n}");
        }
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        for bad in ["", "a\0b", &"x".repeat(NAME_BYTES)] {
            let e = run(&fd, &[bad]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
        }
    }
}

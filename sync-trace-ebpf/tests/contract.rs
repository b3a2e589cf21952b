//! The kernel/userspace contract, checked field by field and constant by
//! constant: the BTF clang writes for `src/bpf/events.h` against the Rust
//! twins in sync-trace-common.
//!
//! - every struct: size, then every member in order (name, byte offset,
//!   size, and shape: integer size and signedness, array length and element,
//!   `char`), against `size_of`, `offset_of!` and the field's Rust type;
//! - every enum (the header's numeric constants are all enumerators): every
//!   enumerator against its Rust constant or enum variant, both ways;
//! - map, program and global names against the objects' symbols.
//!
//! `contract.bpf.o` names every type of events.h (see contract.bpf.c); the
//! program objects carry some of them in their own BTF, and those copies are
//! compared too.

mod btf;
mod twins;

use std::collections::BTreeMap;

use btf::{Btf, Shape};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use sync_trace_common::batch;
use sync_trace_common::raw;
use twins::{enums, structs, RustStruct};

static CONTRACT_BPF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/contract.bpf.o"));
const EVENTS_H: &str = include_str!("../src/bpf/events.h");

/// Names declared in events.h as `struct NAME {` or `enum NAME {` at the
/// start of a line: what the BTF must hold (only the names: the values come
/// from the BTF).
fn declared(keyword: &str) -> Vec<String> {
    EVENTS_H
        .lines()
        .filter_map(|l| {
            l.strip_prefix(keyword)?
                .strip_prefix(' ')?
                .strip_suffix(" {")
        })
        .map(str::to_owned)
        .collect()
}

fn compare_struct(btf: &Btf, c_name: &str, rust: &RustStruct) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(c) = btf.struct_by_name(c_name) else {
        return vec![format!("struct {c_name} is not in the BTF")];
    };
    let r = rust.rust_name;
    if c.size != rust.size {
        errors.push(format!(
            "struct {c_name} is {} bytes, {r} {}",
            c.size, rust.size
        ));
    }
    if c.members.len() != rust.fields.len() {
        errors.push(format!(
            "struct {c_name} has {} members, {r} {} fields",
            c.members.len(),
            rust.fields.len()
        ));
    }
    for (i, (m, f)) in c.members.iter().zip(&rust.fields).enumerate() {
        let at = format!("{c_name} member {i} ({}) / {r}.{}", m.name, f.c_name);
        if m.name != f.c_name {
            errors.push(format!("{at}: names differ"));
        }
        if m.offset != Some(f.offset) {
            errors.push(format!(
                "{at}: offset {:?} in C, {} in Rust",
                m.offset, f.offset
            ));
        }
        let size = btf.size(m.type_id);
        if size != f.size {
            errors.push(format!("{at}: {size} bytes in C, {} in Rust", f.size));
        }
        if !same_shape(&btf.shape(m.type_id), &f.shape) {
            errors.push(format!(
                "{at}: C type {:?}, Rust type {:?}",
                btf.shape(m.type_id),
                f.shape
            ));
        }
    }
    errors
}

/// C `char` is a byte of text: Rust has it as u8 or i8.
fn same_shape(c: &Shape, rust: &Shape) -> bool {
    match (c, rust) {
        (Shape::Char, Shape::Int { size: 1, .. }) => true,
        (Shape::Array(c, n), Shape::Array(r, m)) => n == m && same_shape(c, r),
        _ => c == rust,
    }
}

fn compare_enum(btf: &Btf, c_name: &str, rust: &[(&str, i64)]) -> Vec<String> {
    let Some(e) = btf.enum_by_name(c_name) else {
        return vec![format!("enum {c_name} is not in the BTF")];
    };
    let c: BTreeMap<&str, i64> = e.values.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let r: BTreeMap<&str, i64> = rust.iter().copied().collect();
    let mut errors = Vec::new();
    for (n, v) in &c {
        match r.get(n) {
            None => errors.push(format!("enum {c_name}: {n} = {v} has no Rust twin")),
            Some(rv) if rv != v => {
                errors.push(format!("enum {c_name}: {n} is {v} in C, {rv} in Rust"))
            }
            Some(_) => {}
        }
    }
    for (n, v) in &r {
        if !c.contains_key(n) {
            errors.push(format!("enum {c_name}: Rust has {n} = {v}, C does not"));
        }
    }
    errors
}

fn objects() -> [(&'static str, &'static [u8]); 3] {
    [
        ("contract.bpf.o", CONTRACT_BPF),
        ("sync_trace.bpf.o", sync_trace_ebpf::SYNC_TRACE_BPF),
        ("pgtable_scan.bpf.o", sync_trace_ebpf::PGTABLE_SCAN_BPF),
    ]
}

fn report(errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "events.h and its Rust twins disagree:\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn every_events_h_type_is_in_the_contract_btf() {
    let btf = Btf::from_elf(CONTRACT_BPF).unwrap();
    let structs: Vec<_> = structs().into_iter().map(|(n, _)| n).collect();
    let enums: Vec<_> = enums().into_iter().map(|(n, _)| n).collect();
    let mut errors = Vec::new();
    for s in declared("struct") {
        if btf.struct_by_name(&s).is_none() {
            errors.push(format!(
                "struct {s} is not in contract.bpf.o's BTF: name it in contract.bpf.c"
            ));
        }
        if !structs.contains(&s.as_str()) {
            errors.push(format!(
                "struct {s} is not compared: add it to structs() in tests/twins/mod.rs"
            ));
        }
    }
    for e in declared("enum") {
        if btf.enum_by_name(&e).is_none() {
            errors.push(format!(
                "enum {e} is not in contract.bpf.o's BTF: name it in contract.bpf.c"
            ));
        }
        if !enums.contains(&e.as_str()) {
            errors.push(format!(
                "enum {e} is not compared: add it to enums() in tests/twins/mod.rs"
            ));
        }
    }
    assert!(
        declared("struct").len() >= 5 && declared("enum").len() >= 12,
        "events.h declarations not found"
    );
    report(errors);
}

#[test]
fn structs_match_field_by_field() {
    let mut errors = Vec::new();
    for (obj, bytes) in objects() {
        let btf = Btf::from_elf(bytes).unwrap();
        for (c_name, rust) in structs() {
            // The program objects carry only the types their maps use.
            if obj != "contract.bpf.o" && btf.struct_by_name(c_name).is_none() {
                continue;
            }
            match rust {
                Some(rust) => errors.extend(
                    compare_struct(&btf, c_name, &rust)
                        .into_iter()
                        .map(|e| format!("{obj}: {e}")),
                ),
                None if btf.struct_by_name(c_name).is_none() => {
                    errors.push(format!("{obj}: struct {c_name} is not in the BTF"))
                }
                None => {}
            }
        }
    }
    report(errors);
}

#[test]
fn enums_match_value_by_value() {
    let mut errors = Vec::new();
    for (obj, bytes) in objects() {
        let btf = Btf::from_elf(bytes).unwrap();
        for (c_name, rust) in enums() {
            if obj != "contract.bpf.o" && btf.enum_by_name(c_name).is_none() {
                continue;
            }
            errors.extend(
                compare_enum(&btf, c_name, &rust)
                    .into_iter()
                    .map(|e| format!("{obj}: {e}")),
            );
        }
    }
    // Userspace's own status bits must not collide with the program's.
    let c_bits = enums()
        .into_iter()
        .find(|(n, _)| *n == "st_scan_status")
        .unwrap()
        .1;
    for (n, v) in c_bits {
        if v & i64::from(raw::SCAN_CONFIRMED | raw::SCAN_UNCONFIRMED) != 0 {
            errors.push(format!(
                "{n} collides with userspace's SCAN_CONFIRMED/SCAN_UNCONFIRMED"
            ));
        }
    }
    report(errors);
}

/// A symbol of an object and the section it lives in.
fn symbols(bytes: &[u8]) -> BTreeMap<String, String> {
    let file = object::File::parse(bytes).unwrap();
    file.symbols()
        .filter_map(|s| {
            let section = file.section_by_index(s.section_index()?).ok()?;
            Some((s.name().ok()?.to_owned(), section.name().ok()?.to_owned()))
        })
        .collect()
}

#[test]
fn names_match_the_objects_symbols() {
    let mut errors = Vec::new();
    let mut expect =
        |obj: &str, bytes: &[u8], names: &[&str], section: fn(&str) -> bool, what: &str| {
            let syms = symbols(bytes);
            for n in names {
                match syms.get(*n) {
                    Some(s) if section(s) => {}
                    Some(s) => errors.push(format!("{obj}: {what} {n} is in section {s}")),
                    None => errors.push(format!("{obj}: no {what} {n}")),
                }
            }
        };
    let maps = |s: &str| s == ".maps";
    let rodata = |s: &str| s == ".rodata";
    let program = |s: &str| !s.starts_with('.') || s.starts_with(".text");
    let st = ("sync_trace.bpf.o", sync_trace_ebpf::SYNC_TRACE_BPF);
    let scan = ("pgtable_scan.bpf.o", sync_trace_ebpf::PGTABLE_SCAN_BPF);
    expect(
        st.0,
        st.1,
        &[
            raw::MAP_EVENTS,
            raw::MAP_LOST,
            batch::MAP_BATCH,
            batch::MAP_PENDING,
        ],
        maps,
        "map",
    );
    expect(
        st.0,
        st.1,
        &[
            raw::GLOBAL_CAPTURE_STACK,
            raw::GLOBAL_FORCE_LOG,
            raw::GLOBAL_INIT_TOP_PGT,
            raw::GLOBAL_PGDIR_SHIFT,
            batch::GLOBAL_BATCH_NS,
        ],
        rodata,
        "global",
    );
    expect(st.0, st.1, &[batch::PROG_FLUSH], program, "program");
    expect(
        scan.0,
        scan.1,
        &[raw::MAP_SCAN, raw::MAP_SWEEP, raw::MAP_SWEEP_RING],
        maps,
        "map",
    );
    expect(
        scan.0,
        scan.1,
        &[raw::PROG_SCAN, raw::PROG_SWEEP_ARM],
        program,
        "program",
    );
    expect(
        scan.0,
        scan.1,
        &[
            raw::GLOBAL_INIT_TOP_PGT,
            raw::GLOBAL_PGD_LIST,
            raw::GLOBAL_PAGE_OFFSET_BASE,
            raw::GLOBAL_VMALLOC_BASE,
            raw::GLOBAL_VMEMMAP_BASE,
            raw::GLOBAL_PGDIR_SHIFT,
            raw::GLOBAL_SME_ME_MASK,
            raw::GLOBAL_MAX_PGDS,
            raw::GLOBAL_RUN_BUDGET_NS,
            raw::GLOBAL_MAX_RESTARTS,
            raw::GLOBAL_SWEEP_NS,
        ],
        rodata,
        "global",
    );
    // The header's ST_MAP_* names are the objects' maps too.
    for l in EVENTS_H
        .lines()
        .filter_map(|l| l.strip_prefix("#define ST_MAP_"))
    {
        let name = l.split('"').nth(1).unwrap();
        if ![st.1, scan.1]
            .iter()
            .any(|b| symbols(b).get(name).is_some_and(|s| maps(s)))
        {
            errors.push(format!("events.h names map {name}, which no object has"));
        }
    }
    report(errors);
}

//! `/proc/kallsyms` of any content: parsed (lines that are not
//! `ADDR TYPE NAME [module]` are skipped, as the kernel never writes them),
//! then asked for symbols and for addresses inside them, as the stack
//! symbolizer and the probe do.

use sync_trace::kernel::kallsyms::{Kallsyms, DATA_SYMBOLS};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let k = Kallsyms::parse(&text);
    let _ = k.addresses_hidden();
    let _ = k.has_kasan();
    // Every function name and every data symbol looked up on a well-formed
    // line is found (the table keeps no other names, and none with a NUL).
    for line in text.lines().take(64) {
        let mut cols = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let is_text = matches!(kind.bytes().next(), Some(b't' | b'T' | b'w' | b'W'));
        if (is_text || DATA_SYMBOLS.contains(&name)) && !name.contains('\0') {
            assert!(k.address_of(name).is_some(), "{name} parsed but not found");
        }
        let _ = k.has_function(name);
        check_resolve(&k, addr);
        check_resolve(&k, addr.wrapping_add(0x10));
    }
    // Addresses from the input's tail, as kernel stack frames.
    let mut input = Input::new(&data[data.len().saturating_sub(64)..]);
    while !input.is_empty() {
        check_resolve(&k, input.u64());
    }
}

fn check_resolve(k: &Kallsyms, addr: u64) {
    if let Some((name, off)) = k.resolve(addr) {
        assert!(off <= addr, "offset past the address");
        assert!(
            k.address_of(name).is_some(),
            "{name} resolved but not found"
        );
    }
    let f = k.format(addr);
    assert!(!f.is_empty() && !f.contains(['\n', '\r']), "{f:?}");
}

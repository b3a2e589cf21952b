//! Byte-level pieces of the hand-written JSON (`sync_json`): decimal and
//! hex digits from tables, and serde_json's string escapes.

/// Decimal digits of `v` (1 for 0): from its bit length, corrected by one
/// comparison (log10(2) ≈ 1233 / 4096).
#[inline(always)]
pub(super) fn digits(v: u64) -> usize {
    const POW10: [u64; 20] = {
        let mut t = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    // 0 has the digits of 1.
    let v = v | 1;
    let bits = 64 - v.leading_zeros() as usize;
    let t = (bits * 1233) >> 12;
    t + usize::from(v >= POW10[t])
}

/// How serde_json escapes a byte in a string, `None` when it writes it as
/// is: `"` and `\`, control characters as `\b \t \n \f \r` or
/// `\u00XX` (lowercase); DEL and non-ASCII as is.
#[inline(always)]
pub(super) fn escape(b: u8) -> Option<([u8; 6], usize)> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if b >= 0x20 && b != b'"' && b != b'\\' {
        return None;
    }
    let two = |c: u8| Some(([b'\\', c, 0, 0, 0, 0], 2));
    match b {
        b'"' => two(b'"'),
        b'\\' => two(b'\\'),
        0x08 => two(b'b'),
        0x09 => two(b't'),
        0x0a => two(b'n'),
        0x0c => two(b'f'),
        0x0d => two(b'r'),
        _ => Some((
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            6,
        )),
    }
}

/// `00` to `99`.
pub(super) const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Each byte as two lowercase hex digits.
pub(super) const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

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

/// The eight decimal digits of `v` (below 10^8, leading zeros
/// included), made at once: `v` split into two halves of four digits in
/// the lanes of a u64, each into two of two digits, each into two digits,
/// by multiplications that divide every lane at once (x·10486 >> 20 is
/// x / 100 for x < 10^4, x·103 >> 10 is x / 10 for x < 100; no lane's
/// product reaches the next lane).
#[inline(always)]
pub(super) fn eight_digits(v: u32) -> [u8; 8] {
    debug_assert!(v < 100_000_000);
    let v = u64::from(v);
    // Lanes of 32 bits: the first four digits, then the last four.
    let x = (v / 10_000) | ((v % 10_000) << 32);
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007f_0000_007f;
    // Lanes of 16 bits: two digits each.
    let y = hundreds | ((x - hundreds * 100) << 16);
    let tens = ((y * 103) >> 10) & 0x000f_000f_000f_000f;
    // Bytes: one digit each, the first digit in the lowest byte.
    let z = tens | ((y - tens * 10) << 8);
    (z + 0x3030_3030_3030_3030).to_le_bytes()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn itoa(v: u64) -> String {
        itoa::Buffer::new().format(v).to_string()
    }

    #[test]
    fn eight_digits_are_itoas_zero_padded() {
        let check = |v: u32| {
            let want = format!("{:0>8}", itoa(v.into()));
            assert_eq!(String::from_utf8(eight_digits(v).to_vec()).unwrap(), want);
        };
        (0..20_000).for_each(check);
        (0..100_000_000).step_by(9_973).for_each(check);
        (0..8)
            .map(|k| 10u32.pow(k))
            .for_each(|p| [p - 1, p, p + 1].into_iter().for_each(check));
        check(99_999_999);
    }

    #[test]
    fn digits_counts_itoas_digits() {
        let mut p = 1u64;
        for _ in 0..20 {
            for v in [p - 1, p, p + 1, p.saturating_mul(3)] {
                assert_eq!(digits(v), itoa(v).len(), "{v}");
            }
            p = p.saturating_mul(10);
        }
        assert_eq!(digits(u64::MAX), 20);
    }
}

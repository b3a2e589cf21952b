//! Arbitrary bytes read as typed values, never past their end (missing
//! bytes read as zero): the fuzz targets' input.

pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Exactly `n` bytes, zero-padded at the end of the input.
    pub fn padded(&mut self, n: usize) -> Vec<u8> {
        let mut v = self.bytes(n).to_vec();
        v.resize(n, 0);
        v
    }

    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.padded(2).try_into().unwrap_or_default())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.padded(8).try_into().unwrap_or_default())
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
}

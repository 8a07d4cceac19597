//! The one little-endian codec every on-disk format of Vellum uses. All integers on disk are
//! little-endian and of a fixed width; nothing encodes a `usize`.
//!
//! Two ways to read: `*_at` functions for fields at offsets a decoder has already checked
//! (each offset derived from named constants in the format's module), and [`LeReader`], a
//! bounds-checked cursor for variable-length structures that reports where it ran out.
//! Writing is `to_le_bytes` on a fixed-width integer, so it needs no helper. Every function
//! is `#[inline]`: decoders call them per field in loops over whole files (graph, id map),
//! and without it they would not inline across crates.

/// A read that ran past the end of its bytes: where, and how many bytes it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    /// Offset of the read (the reader's base plus its position).
    pub offset: u64,
    /// Bytes the read wanted.
    pub wanted: usize,
    /// Bytes that were left.
    pub available: usize,
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes wanted at offset {}, {} left",
            self.wanted, self.offset, self.available
        )
    }
}

/// The `N` bytes at `at`. Panics if they are not all inside `bytes`: for offsets the caller
/// has checked against the length (a fixed layout whose size was verified first).
#[inline]
pub fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The `u16` at `at` (a checked offset; see [`array_at`]).
#[inline]
pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(array_at(bytes, at))
}

/// The `u32` at `at` (a checked offset).
#[inline]
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, at))
}

/// The `u64` at `at` (a checked offset).
#[inline]
pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array_at(bytes, at))
}

/// A bounds-checked little-endian cursor over bytes: every read either returns whole values
/// or a [`Short`] naming the offset, and never allocates.
#[derive(Debug, Clone)]
pub struct LeReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> LeReader<'a> {
    /// A reader at the start of `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        LeReader::with_base(bytes, 0)
    }

    /// A reader whose reported offsets start at `base` (where `bytes` sits in its file).
    #[inline]
    pub fn with_base(bytes: &'a [u8], base: u64) -> Self {
        LeReader {
            bytes,
            pos: 0,
            base,
        }
    }

    /// Offset of the next read: the base plus the bytes read so far.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes read so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            _ => Err(Short {
                offset: self.offset(),
                wanted: n,
                available: self.remaining(),
            }),
        }
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The next byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.array::<1>()?[0])
    }

    /// The next `u16`.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, Short> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// The next `u32`.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// The next `u64`.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// The next `f32`.
    #[inline]
    pub fn f32(&mut self) -> Result<f32, Short> {
        Ok(f32::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_reads_whole_values_and_names_where_it_ran_out() {
        let mut bytes = vec![7u8];
        bytes.extend_from_slice(&0x0102_u16.to_le_bytes());
        bytes.extend_from_slice(&0x0304_0506_u32.to_le_bytes());
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        let mut r = LeReader::with_base(&bytes, 100);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u32(), Ok(0x0304_0506));
        assert_eq!(r.u64(), Ok(u64::MAX));
        assert_eq!(r.f32(), Ok(1.5));
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            r.u32(),
            Err(Short {
                offset: 119,
                wanted: 4,
                available: 0
            })
        );
        assert_eq!(r.take(usize::MAX).unwrap_err().wanted, usize::MAX);
        assert_eq!(u32_at(&bytes, 3), 0x0304_0506);
        assert_eq!(u16_at(&bytes, 1), 0x0102);
        assert_eq!(u64_at(&bytes, 7), u64::MAX);
    }
}

//! Snapshot identifiers.

use std::fmt;

/// A snapshot's 128-bit identifier. Never all zero (zero means "no parent" in the header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(pub [u8; 16]);

impl SnapshotId {
    /// The all-zero value, used on disk for "no parent". Not a valid snapshot id.
    pub const NONE: SnapshotId = SnapshotId([0; 16]);

    /// A fresh id: 128 bits from the operating system's random source.
    pub fn generate() -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"vellum snapshot id");
        hasher.update(&vellum_fs::rng::random_u64().to_le_bytes());
        hasher.update(&vellum_fs::rng::random_u64().to_le_bytes());
        Self::from_hash(hasher.finalize())
    }

    /// A deterministic id derived from `seed` (for tests and reproducible exports).
    pub fn from_seed(seed: u64) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"vellum snapshot id seed");
        hasher.update(&seed.to_le_bytes());
        Self::from_hash(hasher.finalize())
    }

    fn from_hash(hash: blake3::Hash) -> Self {
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash.as_bytes()[..16]);
        if id == [0; 16] {
            id[0] = 1;
        }
        SnapshotId(id)
    }

    /// Whether this is the all-zero "no snapshot" value.
    pub fn is_none(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Lower-case hex, 32 characters (the catalog's file name stem).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 32 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(SnapshotId(id))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.to_hex())
    }
}

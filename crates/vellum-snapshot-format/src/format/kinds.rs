//! The one-byte enumerations of the format: snapshot kind, compression, section kind.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotKind {
    /// Carries a whole generation.
    Full,
    /// Carries what changed since its parent.
    Incremental,
}

impl SnapshotKind {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            SnapshotKind::Full => 1,
            SnapshotKind::Incremental => 2,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SnapshotKind::Full),
            2 => Some(SnapshotKind::Incremental),
            _ => None,
        }
    }
}

/// How a section's blocks are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// As is.
    #[default]
    None,
    /// Each block one zstd frame (blocks that do not shrink are stored as is).
    Zstd,
}

impl Compression {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// What a section carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// The bytes of a named file.
    File,
    /// In an incremental: the named file of the parent's state is gone (no blocks).
    Removed,
}

impl SectionKind {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            SectionKind::File => 1,
            SectionKind::Removed => 2,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SectionKind::File),
            2 => Some(SectionKind::Removed),
            _ => None,
        }
    }
}

//! The names a [`Checkpointer`](crate::Checkpointer) gives its files: `CURRENT` (the
//! published manifest), `manifest-<generation>` (each generation's copy of its manifest) and
//! `data-<generation>-<name>` (each committed file), with the generation as 16 lowercase hex
//! digits. Layout in `docs/format/checkpoint.md`.

use crate::manifest::valid_file_name;

/// The name of the published manifest (the pointer to the current generation).
pub const CURRENT_NAME: &str = "CURRENT";
pub(crate) const MANIFEST_PREFIX: &str = "manifest-";
const DATA_PREFIX: &str = "data-";
/// Hex digits of a generation number in file names.
const GENERATION_DIGITS: usize = 16;

/// The on-disk name of generation `generation`'s copy of its manifest.
///
/// Not the way to find a generation's files: use
/// [`Checkpointer::current_generation_files`](crate::Checkpointer::current_generation_files)
/// to list them and [`CheckpointFileName::parse`] to recognise one. Public for tests only.
#[doc(hidden)]
pub fn manifest_file_name(generation: u64) -> String {
    format!(
        "{MANIFEST_PREFIX}{generation:0width$x}",
        width = GENERATION_DIGITS
    )
}

/// The on-disk name of file `name` of generation `generation`.
///
/// Not the way to find a generation's files: use
/// [`Checkpointer::current_generation_files`](crate::Checkpointer::current_generation_files)
/// to list them and [`CheckpointFileName::parse`] to recognise one. Public for tests only.
#[doc(hidden)]
pub fn data_file_name(generation: u64, name: &str) -> String {
    format!(
        "{DATA_PREFIX}{generation:0width$x}-{name}",
        width = GENERATION_DIGITS
    )
}

/// A name a [`Checkpointer`](crate::Checkpointer) gives a file in its directory, parsed:
/// what a copy of the directory (a snapshot, say) may check a name against without
/// spelling the names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFileName<'a> {
    /// [`CURRENT_NAME`]: the published manifest of the current generation.
    Current,
    /// A generation's own copy of its manifest.
    Manifest {
        /// The generation.
        generation: u64,
    },
    /// One of the files committed in a generation.
    Data {
        /// The generation.
        generation: u64,
        /// The file's name as committed ([`FileSpec::name`](crate::FileSpec::name)).
        name: &'a str,
    },
}

impl<'a> CheckpointFileName<'a> {
    /// Parses a file name in a checkpoint directory: `None` unless it is spelled exactly as a
    /// checkpointer spells its files (a temporary file of `CURRENT` is not one).
    pub fn parse(name: &'a str) -> Option<CheckpointFileName<'a>> {
        if name == CURRENT_NAME {
            return Some(CheckpointFileName::Current);
        }
        let (hex, data) = if let Some(rest) = name.strip_prefix(MANIFEST_PREFIX) {
            ((rest.len() == GENERATION_DIGITS).then_some(rest)?, None)
        } else if let Some(rest) = name.strip_prefix(DATA_PREFIX) {
            let (hex, tail) = rest.split_at_checked(GENERATION_DIGITS)?;
            (
                hex,
                Some(tail.strip_prefix('-').filter(|n| valid_file_name(n))?),
            )
        } else {
            return None;
        };
        if !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let generation = u64::from_str_radix(hex, 16).ok()?;
        Some(match data {
            None => CheckpointFileName::Manifest { generation },
            Some(name) => CheckpointFileName::Data { generation, name },
        })
    }

    /// The generation the file belongs to (`None` for `CURRENT`, which names whichever
    /// generation is current).
    pub fn generation(&self) -> Option<u64> {
        match *self {
            CheckpointFileName::Current => None,
            CheckpointFileName::Manifest { generation }
            | CheckpointFileName::Data { generation, .. } => Some(generation),
        }
    }
}

/// The generation a name of ours belongs to (`None` for `CURRENT` and for names that are
/// not ours).
pub(crate) fn generation_of(name: &str) -> Option<u64> {
    CheckpointFileName::parse(name)?.generation()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_numbers_are_parsed_only_from_our_names() {
        assert_eq!(generation_of(&manifest_file_name(5)), Some(5));
        assert_eq!(generation_of(&data_file_name(0xab, "idmap")), Some(0xab));
        assert_eq!(generation_of("manifest-12"), None);
        assert_eq!(generation_of("data-000000000000000A-x"), None);
        assert_eq!(generation_of("data-000000000000000a-"), None);
        assert_eq!(generation_of("CURRENT"), None);
        assert_eq!(generation_of("notes.txt"), None);
    }

    #[test]
    fn file_names_parse_back_to_what_they_name() {
        assert_eq!(
            CheckpointFileName::parse(CURRENT_NAME),
            Some(CheckpointFileName::Current)
        );
        assert_eq!(
            CheckpointFileName::parse(&manifest_file_name(0xa1)),
            Some(CheckpointFileName::Manifest { generation: 0xa1 })
        );
        assert_eq!(
            CheckpointFileName::parse(&data_file_name(u64::MAX, "graph")),
            Some(CheckpointFileName::Data {
                generation: u64::MAX,
                name: "graph"
            })
        );
        for bad in [
            "CURRENT.tmp",
            "manifest-+000000000000001",
            "data-+000000000000001-graph",
            "data-0000000000000001",
            "data-0000000000000001-",
            "data-0000000000000001-.hidden",
        ] {
            assert_eq!(CheckpointFileName::parse(bad), None, "{bad:?}");
        }
    }
}

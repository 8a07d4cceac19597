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
pub fn manifest_file_name(generation: u64) -> String {
    format!(
        "{MANIFEST_PREFIX}{generation:0width$x}",
        width = GENERATION_DIGITS
    )
}

/// The on-disk name of file `name` of generation `generation`.
pub fn data_file_name(generation: u64, name: &str) -> String {
    format!(
        "{DATA_PREFIX}{generation:0width$x}-{name}",
        width = GENERATION_DIGITS
    )
}

/// The generation a name of ours belongs to (`None` for names that are not ours).
pub(crate) fn generation_of(name: &str) -> Option<u64> {
    let hex = if let Some(rest) = name.strip_prefix(MANIFEST_PREFIX) {
        (rest.len() == GENERATION_DIGITS).then_some(rest)?
    } else if let Some(rest) = name.strip_prefix(DATA_PREFIX) {
        let (hex, tail) = rest.split_at_checked(GENERATION_DIGITS)?;
        tail.strip_prefix('-').filter(|n| valid_file_name(n))?;
        hex
    } else {
        return None;
    };
    if !hex
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
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
}

//! What a restore may write: the caller's budget ([`ImportLimits`]) and the name rules,
//! checked against every archive's footer before the first byte reaches the disk.

use crate::error::{Error, Result};
use crate::format::{ArchiveHeader, Footer, SectionKind};

/// Bounds on what restoring a chain of archives may write, checked against the footers'
/// declared sizes and names before anything is written, and again while bytes are written.
///
/// The defaults bound a hostile archive's damage without refusing any real collection:
/// they are the documented values of the `DEFAULT_*` constants below. A caller importing an
/// archive it does not trust and whose size it roughly knows should lower
/// `max_total_bytes` to that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Most raw (decompressed) bytes written over the whole chain (the sum of the
    /// declared sizes of every file section).
    pub max_total_bytes: u64,
    /// Most file sections in one archive, and most files in the state it restores.
    pub max_files: u64,
    /// Longest entry name, in bytes.
    pub max_name_bytes: usize,
    /// Most `/`-separated components in an entry name (`a/b` has depth 2).
    pub max_name_depth: usize,
}

impl ImportLimits {
    /// Default for [`ImportLimits::max_total_bytes`]: 1 TiB.
    pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1 << 40;
    /// Default for [`ImportLimits::max_files`]: 65,536.
    pub const DEFAULT_MAX_FILES: u64 = 1 << 16;
    /// Default for [`ImportLimits::max_name_bytes`]: 255.
    pub const DEFAULT_MAX_NAME_BYTES: usize = 255;
    /// Default for [`ImportLimits::max_name_depth`]: 8.
    pub const DEFAULT_MAX_NAME_DEPTH: usize = 8;

    /// Sets [`ImportLimits::max_total_bytes`].
    pub fn with_max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Sets [`ImportLimits::max_files`].
    pub fn with_max_files(mut self, files: u64) -> Self {
        self.max_files = files;
        self
    }

    /// Sets [`ImportLimits::max_name_bytes`].
    pub fn with_max_name_bytes(mut self, bytes: usize) -> Self {
        self.max_name_bytes = bytes;
        self
    }

    /// Sets [`ImportLimits::max_name_depth`].
    pub fn with_max_name_depth(mut self, depth: usize) -> Self {
        self.max_name_depth = depth;
        self
    }
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES,
            max_files: Self::DEFAULT_MAX_FILES,
            max_name_bytes: Self::DEFAULT_MAX_NAME_BYTES,
            max_name_depth: Self::DEFAULT_MAX_NAME_DEPTH,
        }
    }
}

/// Whether `c` reorders the display of text around it: the embeddings and overrides
/// (U+202A..U+202E), the isolates (U+2066..U+2069) and the marks (U+200E, U+200F, U+061C).
/// A name holding one can display as another name.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Checks one entry name against the character rules, the limits and `accept`.
///
/// The format's own rules (relative, no `..`, `.` or empty component, no NUL or backslash)
/// were checked when the footer was decoded.
pub fn check_entry_name(
    name: &str,
    limits: &ImportLimits,
    accept: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::RefusedName {
            name: name.to_owned(),
            reason,
        })
    };
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return refuse(format!("contains the control character U+{:04X}", c as u32));
    }
    if let Some(c) = name.chars().find(|&c| is_bidi_control(c)) {
        return refuse(format!(
            "contains the bidirectional control character U+{:04X}",
            c as u32
        ));
    }
    if name.len() > limits.max_name_bytes {
        return refuse(format!(
            "{} bytes long, above the limit of {}",
            name.len(),
            limits.max_name_bytes
        ));
    }
    let depth = name.split('/').count();
    if depth > limits.max_name_depth {
        return refuse(format!(
            "{depth} path components deep, above the limit of {}",
            limits.max_name_depth
        ));
    }
    if !accept(name) {
        return refuse("not a file this import accepts (the caller's allow-list)".into());
    }
    Ok(())
}

/// Checks every archive of a chain against `limits` and `accept`, from the footers alone:
/// every section and state name, the file counts, and the declared bytes of the chain.
pub fn check_chain_limits(
    summaries: &[(ArchiveHeader, Footer)],
    limits: &ImportLimits,
    accept: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let mut total_bytes = 0u64;
    for (header, footer) in summaries {
        let names = footer.sections.iter().map(|s| s.name.as_str());
        for name in names.chain(footer.state.iter().map(|e| e.name.as_str())) {
            check_entry_name(name, limits, accept)?;
        }
        let files = footer
            .sections
            .iter()
            .filter(|s| s.kind == SectionKind::File)
            .count() as u64;
        let counts = [
            ("file sections", files),
            ("files in the restored state", footer.state.len() as u64),
        ];
        for (what, count) in counts {
            if count > limits.max_files {
                return Err(Error::limit(
                    format!("snapshot {}: {what}", header.id),
                    count,
                    limits.max_files,
                ));
            }
        }
        for s in footer
            .sections
            .iter()
            .filter(|s| s.kind == SectionKind::File)
        {
            total_bytes = total_bytes.saturating_add(s.totals.raw_bytes);
            if total_bytes > limits.max_total_bytes {
                return Err(Error::limit(
                    format!(
                        "decompressed bytes of the chain up to {:?} of snapshot {}",
                        s.name, header.id
                    ),
                    total_bytes,
                    limits.max_total_bytes,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &str) -> bool {
        true
    }

    #[test]
    fn names_with_controls_overrides_or_beyond_the_limits_are_refused() {
        let limits = ImportLimits::default();
        for bad in [
            "a\nb",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
            "evil\u{202E}txt.exe",
            "iso\u{2066}late",
            "mark\u{200F}",
        ] {
            let e = check_entry_name(bad, &limits, &any).unwrap_err();
            assert!(matches!(e, Error::RefusedName { .. }), "{bad:?}: {e}");
            // The message escapes the name, so the character is visible.
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let deep = ["d"; 9].join("/");
        let e = check_entry_name(&deep, &limits, &any).unwrap_err();
        assert!(e.to_string().contains("9 path components"), "{e}");
        let long = "x".repeat(256);
        let e = check_entry_name(&long, &limits, &any).unwrap_err();
        assert!(e.to_string().contains("256 bytes"), "{e}");
        let e = check_entry_name("extra", &limits, &|n| n == "only").unwrap_err();
        assert!(e.to_string().contains("allow-list"), "{e}");
        check_entry_name("only", &limits, &|n| n == "only").unwrap();
        check_entry_name(&["d"; 8].join("/"), &limits, &any).unwrap();
        check_entry_name("ünïcode/名前", &limits, &any).unwrap();
    }
}

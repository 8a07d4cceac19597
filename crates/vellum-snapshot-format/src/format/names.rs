//! Names inside an archive: safe relative paths only.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use super::*;

/// Checks that `name` is a safe relative path: non-empty, at most 1024 bytes, no NUL or
/// backslash, not absolute, each `/`-separated component non-empty and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("longer than 1024 bytes");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    if name.contains('\\') {
        return bad("contains a backslash");
    }
    for component in name.split('/') {
        match component {
            "" => return bad("empty path component"),
            "." => return bad("`.` component"),
            ".." => return bad("`..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a list of names: each valid, none repeated, none a directory prefix of another.
pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>, what: &str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for name in names {
        validate_name(name)?;
        if !seen.insert(name) {
            return Err(Error::DuplicateName {
                name: name.to_owned(),
                detail: format!("two {what}s"),
            });
        }
    }
    // In sorted order, a name that is a directory of another is immediately followed by a
    // name starting with "<name>/" somewhere before any name greater than "<name>/~": check
    // every name's directory prefixes instead, which is exact.
    for name in &seen {
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            let dir = &name[..at + i];
            if seen.contains(dir) {
                return Err(Error::DuplicateName {
                    name: dir.to_owned(),
                    detail: format!("{dir:?} is both a file and the directory of {name:?}"),
                });
            }
            at += i + 1;
        }
    }
    Ok(())
}

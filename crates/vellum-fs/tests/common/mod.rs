//! Helpers shared by the vellum-fs integration tests.
#![allow(dead_code)]

use std::path::Path;

use vellum_fs::{Fs, Result};

/// Reads a whole file, or `None` if it does not exist.
pub fn read_all(fs: &dyn Fs, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match fs.open(path) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0; file.len()? as usize];
    file.read_at(&mut buf, 0)?;
    Ok(Some(buf))
}

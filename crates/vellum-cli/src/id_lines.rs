//! Ids imported beside vectors (`vellum import --ids FILE`): a text file, one decimal id per
//! line, row `i`'s id on line `i`. Read and checked whole before anything is written: as
//! many ids as rows, each a number that fits in 64 bits, none twice.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::BoxError;

/// The ids of `path`, one per row; the error names the line.
pub(crate) fn read(path: &Path, rows: usize) -> Result<Vec<u64>, BoxError> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ids = Vec::with_capacity(rows);
    // Id -> the line it was first seen on (1-based).
    let mut seen: HashMap<u64, usize> = HashMap::with_capacity(rows);
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{}: line {n}: {e}", path.display()))?;
        let text = line.trim();
        let id: u64 = text.parse().map_err(|_| {
            format!(
                "{}: line {n}: {text:?} is not an id (a whole number from 0 to {}): nothing \
                 was imported",
                path.display(),
                u64::MAX
            )
        })?;
        if let Some(first) = seen.insert(id, n) {
            return Err(format!(
                "{}: line {n} repeats id {id} of line {first}: nothing was imported",
                path.display()
            )
            .into());
        }
        ids.push(id);
    }
    if ids.len() != rows {
        return Err(format!(
            "{} holds {} id(s) for {rows} vector row(s): nothing was imported",
            path.display(),
            ids.len()
        )
        .into());
    }
    Ok(ids)
}

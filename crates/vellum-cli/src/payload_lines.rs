//! Payloads imported beside vectors: a JSON Lines file, one JSON object per row (row `i`'s
//! payload is line `i`). Checked whole before anything is written (every line an object,
//! as many lines as rows), then read again line by line as the rows are imported, so the
//! file is never held in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::Path;

use crate::BoxError;

/// Checks that `path` holds exactly `rows` lines, each a JSON object; the error names the
/// line.
pub(crate) fn check(path: &Path, rows: usize) -> Result<(), BoxError> {
    let mut count = 0usize;
    for (i, line) in open(path)?.enumerate() {
        let line = line.map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?;
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(format!(
                    "{}: line {} is not a JSON object (one object per row): nothing was imported",
                    path.display(),
                    i + 1
                )
                .into());
            }
            Err(e) => {
                return Err(format!(
                    "{}: line {}: {e}: nothing was imported",
                    path.display(),
                    i + 1
                )
                .into());
            }
        }
        count += 1;
    }
    if count != rows {
        return Err(format!(
            "{} holds {count} payload line(s) for {rows} vector row(s): nothing was imported",
            path.display()
        )
        .into());
    }
    Ok(())
}

/// The file's lines, in order.
pub(crate) fn open(path: &Path) -> Result<Lines<BufReader<File>>, BoxError> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(BufReader::new(file).lines())
}

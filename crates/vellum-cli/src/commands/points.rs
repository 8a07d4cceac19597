//! `delete` and `drop`: removing points, and a whole collection; `completions`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use serde_json::json;

use crate::BoxError;
use crate::open::open_existing;

/// `vellum delete`: deletes the points among `ids` that exist, in one atomic batch.
pub(crate) fn delete(
    db: PathBuf,
    collection: &str,
    ids: &[u64],
    json: bool,
) -> Result<ExitCode, BoxError> {
    let database = open_existing(&db)?;
    let c = database.collection(collection)?;
    let existing: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| c.get(id).is_ok_and(|p| p.is_some()))
        .collect();
    let mut batch = vellum::WriteBatch::new();
    for &id in ids {
        batch.delete(id);
    }
    let lsn = c.write(batch)?;
    if json {
        println!(
            "{}",
            json!({"collection": collection, "deleted": existing.len(), "absent": ids.len() - existing.len(), "lsn": lsn})
        );
    } else {
        println!(
            "{collection}: deleted {} point(s); {} of the ids given did not exist (durable at LSN {lsn})",
            existing.len(),
            ids.len() - existing.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum drop`: removes a collection, only with `--yes`.
pub(crate) fn drop(
    db: PathBuf,
    collection: &str,
    yes: bool,
    json: bool,
) -> Result<ExitCode, BoxError> {
    if !yes {
        return Err(format!(
            "dropping {collection:?} removes it and every file of it: pass --yes to confirm \
             (nothing was changed)"
        )
        .into());
    }
    let database = open_existing(&db)?;
    let points = database.collection(collection)?.len();
    database.drop_collection(collection)?;
    if json {
        println!(
            "{}",
            json!({"collection": collection, "dropped": true, "points": points})
        );
    } else {
        println!("dropped {collection:?} ({points} points)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum completions SHELL`: the completion script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<ExitCode, BoxError> {
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut cmd, "vellum", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

//! `wal dump` and `checkpoint`: read a collection's log, and fold it into a checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::BoxError;
use crate::open::{open_existing, open_for_reading};

/// `vellum wal dump`: prints up to `limit` records of a collection's log from LSN `from`.
pub(crate) fn dump(
    db: PathBuf,
    collection: String,
    from: u64,
    limit: usize,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let database = open_for_reading(&db)?;
    let c = database.collection(&collection)?;
    let entries = c.wal_entries(from, limit)?;
    if json {
        let rows: Vec<_> = entries.iter().map(|e| json!({"lsn": e.lsn, "kind": e.kind, "id": e.id, "payload_bytes": e.payload_bytes})).collect();
        println!("{}", json!({"records": rows}));
    } else {
        for e in &entries {
            match e.payload_bytes {
                Some(n) => {
                    println!("{:>10}  {:<6}  id {}  payload {n} B", e.lsn, e.kind, e.id)
                }
                None => println!("{:>10}  {:<6}  id {}", e.lsn, e.kind, e.id),
            }
        }
        println!("({} records)", entries.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum checkpoint`: checkpoints one collection, or all of them.
pub(crate) fn checkpoint(
    db: PathBuf,
    collection: Option<String>,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let database = open_existing(&db)?;
    // Each collection's tail is indexed first, so the saved graph is whole.
    let names = match collection {
        Some(name) => vec![name],
        None => database
            .list_collections()
            .into_iter()
            .map(|(n, _)| n)
            .collect(),
    };
    let mut done = Vec::with_capacity(names.len());
    for name in names {
        let info = crate::open::settle(&database.collection(&name)?)?;
        done.push((name, info));
    }
    if json {
        let rows: Vec<_> = done.iter().map(|(n, i)| json!({"collection": n, "generation": i.generation, "lsn": i.lsn, "wal_segments_removed": i.wal_segments_removed, "elapsed_ms": i.elapsed.as_secs_f64() * 1e3, "lock_held_ms": i.lock_held.as_secs_f64() * 1e3})).collect();
        println!("{}", json!({"checkpoints": rows}));
    } else {
        for (n, i) in &done {
            println!(
                "{n}: generation {} at LSN {} in {:.1} ms, collection locked {:.1} ms ({} log segment(s) removed)",
                i.generation,
                i.lsn,
                i.elapsed.as_secs_f64() * 1e3,
                i.lock_held.as_secs_f64() * 1e3,
                i.wal_segments_removed
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum compact`: gives back the space of deleted and replaced points.
pub(crate) fn compact(db: PathBuf, collection: &str, json: bool) -> Result<ExitCode, BoxError> {
    let database = open_existing(&db)?;
    let c = database.collection(collection)?;
    let r = c.compact()?;
    // Moved points wait in the pending tail: index them and save the graph.
    crate::open::settle(&c)?;
    if json {
        println!(
            "{}",
            json!({"collection": collection, "moved": r.moved, "segments_before": r.segments_before, "segments_after": r.segments_after, "segment_bytes_before": r.segment_bytes_before, "segment_bytes_after": r.segment_bytes_after})
        );
    } else {
        println!(
            "{collection}: {} vector(s) moved; vector segments {} -> {} ({:.1} MiB -> {:.1} MiB)",
            r.moved,
            r.segments_before,
            r.segments_after,
            r.segment_bytes_before as f64 / f64::from(1 << 20),
            r.segment_bytes_after as f64 / f64::from(1 << 20)
        );
    }
    Ok(ExitCode::SUCCESS)
}

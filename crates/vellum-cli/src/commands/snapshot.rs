//! `snapshot` subcommands: export, import, create, list, delete, restore.

use std::process::ExitCode;

use indicatif::HumanBytes;
use serde_json::json;
use vellum::Database;

use crate::BoxError;
use crate::cli::SnapshotCommand;
use crate::open::{open_existing, open_for_reading, tool_options};
use crate::output::snapshot_json;

pub(crate) fn snapshot(command: SnapshotCommand, json: bool) -> Result<ExitCode, BoxError> {
    match command {
        SnapshotCommand::Export {
            db,
            collection,
            file,
            zstd,
        } => {
            let database = open_existing(&db)?;
            let s = database.export_snapshot(
                &collection,
                &file,
                if zstd {
                    vellum::Compression::Zstd
                } else {
                    vellum::Compression::None
                },
            )?;
            if json {
                println!(
                    "{}",
                    json!({"id": s.id, "lsn": s.lsn, "files": s.files, "archive_bytes": s.archive_bytes, "blake3": s.blake3})
                );
            } else {
                println!(
                    "snapshot {} of {collection:?} at LSN {}: {} files, {} in {} (BLAKE3 {})",
                    s.id,
                    s.lsn,
                    s.files,
                    HumanBytes(s.archive_bytes),
                    file.display(),
                    s.blake3
                );
            }
        }
        SnapshotCommand::Import {
            db,
            name,
            files,
            max_import_bytes,
            max_import_files,
        } => {
            let limits = vellum::ImportLimits::default()
                .with_max_total_bytes(max_import_bytes)
                .with_max_files(max_import_files);
            let database = Database::open(&db, tool_options().with_import_limits(limits))?;
            let c = database.import_snapshot(&files, &name)?;
            let cp = crate::open::settle(&c)?;
            if json {
                println!(
                    "{}",
                    json!({"imported": name, "points": c.len(), "checkpoint_generation": cp.generation})
                );
            } else {
                println!(
                    "imported {} archive(s) as collection {name:?}: {} points; indexed and \
                     checkpointed (generation {})",
                    files.len(),
                    c.len(),
                    cp.generation
                );
            }
        }
        SnapshotCommand::Create {
            db,
            collection,
            incremental,
        } => {
            let database = open_existing(&db)?;
            let m = database.create_snapshot(
                &collection,
                if incremental {
                    vellum::SnapshotKind::Incremental
                } else {
                    vellum::SnapshotKind::Full
                },
            )?;
            if json {
                println!("{}", snapshot_json(&m));
            } else {
                println!(
                    "snapshot {} ({}) of {collection:?} at LSN {}, {}",
                    m.id,
                    if incremental { "incremental" } else { "full" },
                    m.lsn_end,
                    HumanBytes(m.archive_bytes)
                );
            }
        }
        SnapshotCommand::List { db, collection } => {
            let database = open_for_reading(&db)?;
            let list = database.list_snapshots(&collection)?;
            if json {
                let rows: Vec<_> = list.iter().map(snapshot_json).collect();
                println!("{}", json!({"snapshots": rows}));
            } else {
                for m in &list {
                    let parent = m.parent.map_or_else(|| "-".to_owned(), |p| p.to_hex());
                    println!(
                        "{}  {:?}  LSN {}..={}  {:>10}  parent {parent}",
                        m.id,
                        m.kind,
                        m.lsn_start,
                        m.lsn_end,
                        HumanBytes(m.archive_bytes).to_string()
                    );
                }
                println!("({} snapshots)", list.len());
            }
        }
        SnapshotCommand::Delete { db, collection, id } => {
            let database = open_existing(&db)?;
            database.delete_snapshot(&collection, &id)?;
            if json {
                println!("{}", json!({"deleted": id}));
            } else {
                println!("deleted snapshot {id}");
            }
        }
        SnapshotCommand::Restore {
            db,
            collection,
            id,
            name,
        } => {
            let database = open_existing(&db)?;
            let c = database.restore_snapshot(&collection, &id, &name)?;
            let cp = crate::open::settle(&c)?;
            if json {
                println!(
                    "{}",
                    json!({"restored": name, "points": c.len(), "checkpoint_generation": cp.generation})
                );
            } else {
                println!(
                    "restored snapshot {id} of {collection:?} as {name:?}: {} points; indexed \
                     and checkpointed (generation {})",
                    c.len(),
                    cp.generation
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

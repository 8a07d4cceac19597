//! `index create|drop|list`: a collection's payload indexes.

use std::process::ExitCode;

use serde_json::json;

use crate::BoxError;
use crate::cli::IndexCommand;
use crate::open::{open_existing, open_for_reading};

pub(crate) fn index(command: IndexCommand, json: bool) -> Result<ExitCode, BoxError> {
    match command {
        IndexCommand::Create {
            db,
            collection,
            field,
            kind,
        } => {
            let database = open_existing(&db)?;
            let started = std::time::Instant::now();
            database
                .collection(&collection)?
                .create_payload_index(&field, kind.kind())?;
            let secs = started.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    json!({"collection": collection, "field": field, "kind": kind.kind().name(), "created": true, "seconds": secs})
                );
            } else {
                println!(
                    "{collection}: {} index on {field:?} created in {secs:.2} s (checkpointed)",
                    kind.kind().name()
                );
            }
        }
        IndexCommand::Drop {
            db,
            collection,
            field,
        } => {
            let database = open_existing(&db)?;
            let dropped = database
                .collection(&collection)?
                .drop_payload_index(&field)?;
            if json {
                println!(
                    "{}",
                    json!({"collection": collection, "field": field, "dropped": dropped})
                );
            } else if dropped {
                println!("{collection}: index on {field:?} dropped");
            } else {
                println!("{collection}: no index on {field:?}");
            }
        }
        IndexCommand::List { db, collection } => {
            let database = open_for_reading(&db)?;
            let indexes = database.collection(&collection)?.payload_indexes();
            if json {
                let rows: Vec<_> = indexes
                    .iter()
                    .map(|i| json!({"field": i.field, "kind": i.kind.name(), "entries": i.entries_saved}))
                    .collect();
                println!("{}", json!({"collection": collection, "indexes": rows}));
            } else if indexes.is_empty() {
                println!("{collection}: no payload indexes");
            } else {
                for i in &indexes {
                    println!(
                        "{}\t{}\t{} entries",
                        i.field,
                        i.kind.name(),
                        i.entries_saved
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! The `vellum` command as a library: argument parsing and every subcommand. `main.rs` only
//! calls [`main_with_args`]. Errors print to stderr with their causes and exit non-zero
//! (with `--json`: `{"error": {"kind", "message", "causes"}}` on stdout, same exit code);
//! bad input never panics.
#![forbid(unsafe_code)]

mod backup_cmd;
mod cli;
mod client;
mod cluster_cmd;
mod cluster_torture;
mod commands;
pub mod data;
mod demo;
mod demo_cluster;
mod id_lines;
mod local_cluster;
mod logging;
mod open;
mod output;
mod payload_lines;
mod remote;
mod serve;
mod torture;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, WalCommand};

/// Parses `args` and runs the command; errors print to stderr and exit non-zero.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.json;
    logging::init(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let (message, causes) = describe(e.as_ref());
            if json {
                // With --json an error is JSON too, on stdout where the result would be.
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": kind_of(e.as_ref()), "message": message, "causes": causes}})
                );
            } else {
                eprintln!("error: {message}");
                for cause in &causes {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// An error's message and its causes, leaving out a cause its message already quotes
/// (errors that wrap another often print it as part of their own message).
fn describe(e: &(dyn std::error::Error + 'static)) -> (String, Vec<String>) {
    let message = e.to_string();
    let mut shown = message.clone();
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !shown.contains(&text) {
            shown.push_str(&text);
            causes.push(text);
        }
        source = s.source();
    }
    (message, causes)
}

/// What kind of error: the `vellum::Error` variant, or `usage` for the tool's own checks.
fn kind_of(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<vellum::Error>() {
        Some(v) => {
            let debug = format!("{v:?}");
            debug
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("Error")
                .to_owned()
        }
        None => "usage".to_owned(),
    }
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    let json = cli.json;
    match cli.command {
        Command::Demo(args) => demo::run(&args, json).map(|()| ExitCode::SUCCESS),
        Command::Torture(args) => torture::run(&args, json).map(|()| ExitCode::SUCCESS),
        Command::TortureChild(args) => torture::child(&args).map(|()| ExitCode::SUCCESS),
        Command::Backup(args) => backup_cmd::run(args, json),
        Command::Serve(args) => serve::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Cluster(args) => cluster_cmd::run(args, json).map(|()| ExitCode::SUCCESS),
        Command::Remote(args) => remote::run(args, json),
        Command::Create {
            db,
            collection,
            dim,
            metric,
            flat,
            hnsw,
            quantization,
        } => commands::create::create(
            db,
            collection,
            commands::create::Shape {
                dim,
                metric,
                flat,
                hnsw,
                quantization,
            },
            json,
        ),
        Command::Quantize {
            db,
            collection,
            quantization,
        } => commands::create::quantize(db, collection, quantization, json),
        Command::Import {
            db,
            collection,
            file,
            format,
            first_id,
            ids,
            upsert,
            payloads,
            batch,
        } => commands::create::import(
            db,
            collection,
            file,
            format,
            commands::create::ImportChoices {
                first_id,
                ids_file: ids,
                upsert,
                payloads,
            },
            batch,
            json,
        ),
        Command::Search {
            db,
            collection,
            query,
            query_file,
            k,
            ef,
            exact,
            filter,
            with_payload,
        } => commands::search::search(
            db,
            collection,
            commands::search::Queries::from_args(query, query_file)?,
            k,
            commands::search::Options {
                ef,
                exact,
                filter,
                with_payload,
            },
            json,
        ),
        Command::Inspect { db } => commands::inspect::inspect(db, json),
        Command::RepairCatalog { db } => commands::inspect::repair_catalog(db, json),
        Command::Verify { db } => commands::inspect::verify(db, json),
        Command::Wal {
            command:
                WalCommand::Dump {
                    db,
                    collection,
                    from,
                    limit,
                },
        } => commands::wal::dump(db, collection, from, limit, json),
        Command::Snapshot { command } => commands::snapshot::snapshot(command, json),
        Command::Index { command } => commands::index::index(command, json),
        Command::Delete {
            db,
            collection,
            ids,
        } => commands::points::delete(db, &collection, &ids, json),
        Command::Drop {
            db,
            collection,
            yes,
        } => commands::points::drop(db, &collection, yes, json),
        Command::Completions { shell } => commands::points::completions(shell),
        Command::Checkpoint { db, collection } => commands::wal::checkpoint(db, collection, json),
        Command::Compact { db, collection } => commands::wal::compact(db, &collection, json),
    }
}

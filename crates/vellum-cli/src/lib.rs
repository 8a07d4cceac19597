//! The `vellum` command as a library: argument parsing and every subcommand. `main.rs` only
//! calls [`main_with_args`]. Errors print to stderr with their causes and exit non-zero;
//! bad input never panics.
#![forbid(unsafe_code)]

mod cli;
mod commands;
pub mod data;
mod demo;
mod open;
mod output;
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
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    let json = cli.json;
    match cli.command {
        Command::Demo(args) => demo::run(&args, json).map(|()| ExitCode::SUCCESS),
        Command::Torture(args) => torture::run(&args, json).map(|()| ExitCode::SUCCESS),
        Command::TortureChild(args) => torture::child(&args).map(|()| ExitCode::SUCCESS),
        Command::Create {
            db,
            collection,
            dim,
            metric,
            flat,
            hnsw,
        } => commands::create::create(db, collection, dim, metric, flat, hnsw, json),
        Command::Import {
            db,
            collection,
            file,
            format,
            first_id,
            upsert,
            batch,
        } => commands::create::import(
            db,
            collection,
            file,
            format,
            commands::create::IdChoice { first_id, upsert },
            batch,
            json,
        ),
        Command::Search {
            db,
            collection,
            query,
            k,
            ef,
            exact,
            filter,
        } => commands::search::search(
            db,
            collection,
            query,
            k,
            commands::search::Options { ef, exact, filter },
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
        Command::Checkpoint { db, collection } => commands::wal::checkpoint(db, collection, json),
        Command::Compact { db, collection } => commands::wal::compact(db, &collection, json),
    }
}

//! `vellum backup push|list|restore|delete|retain`: collection backups in object storage
//! (vellum-backup). Credentials and region come from the usual `AWS_*` environment
//! variables; `--endpoint` (or `AWS_ENDPOINT_URL`) names an S3-compatible server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use vellum::Database;
use vellum_backup::{BackupOptions, BackupTarget};

use crate::BoxError;
use crate::open::{open_existing, tool_options};

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// Where the backups are: s3://bucket/prefix, file:///dir.
    #[arg(long, alias = "from")]
    to: String,
    /// An S3-compatible endpoint (http://127.0.0.1:8333); default `AWS_ENDPOINT_URL`.
    #[arg(long)]
    endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Stream a backup of a collection to the target (no local copy).
    Push {
        /// Database directory.
        db: PathBuf,
        /// Collection.
        collection: String,
        /// Only what changed since the collection's newest backup in the target (a full
        /// backup when there is none).
        #[arg(long)]
        incremental: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// The backups in the target, oldest first.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Restore a backup (with its parents) as a new collection, streamed from the store
    /// and verified before it appears; a broken connection resumes where it stopped.
    Restore {
        /// Database directory.
        db: PathBuf,
        /// Backup id.
        id: String,
        /// Name of the new collection.
        new_name: String,
        /// Keep a durable local copy of the archives while fetching, so that a restore
        /// whose process is killed resumes when run again (needs their size on disk).
        #[arg(long)]
        staged: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete a backup (refused while another names it as parent).
    Delete {
        /// Backup id.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Keep the newest backups of a collection (and the parents they need); delete the rest.
    Retain {
        /// Collection.
        collection: String,
        /// How many of its newest backups to keep.
        #[arg(long)]
        keep: usize,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// A progress bar in bytes (a spinner with a byte count when the total is unknown).
fn bytes_bar(what: &str, total: Option<u64>) -> indicatif::ProgressBar {
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
    } else {
        "{msg:>12} {spinner} {bytes} ({bytes_per_sec})"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

fn target(t: &TargetArgs) -> Result<BackupTarget, BoxError> {
    Ok(BackupTarget::from_url_with_endpoint(
        &t.to,
        t.endpoint.as_deref(),
    )?)
}

pub(crate) fn run(args: BackupArgs, json_out: bool) -> Result<ExitCode, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match args.command {
            BackupCommand::Push { db, collection, incremental, target: t } => {
                let target = target(&t)?;
                let database = open_existing(&db)?;
                let started = std::time::Instant::now();
                let bar = (!json_out).then(|| bytes_bar("uploading", None));
                let progress = |sent: u64| {
                    if let Some(b) = &bar {
                        b.set_position(sent);
                    }
                };
                let e = vellum_backup::backup_with_progress(
                    &database,
                    &collection,
                    &target,
                    &BackupOptions { incremental, ..BackupOptions::default() },
                    &progress,
                )
                .await?;
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                let secs = started.elapsed().as_secs_f64();
                if json_out {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{} backup {}{} of {collection:?} (LSN {}): {} bytes to {} in {secs:.2} s ({:.1} MB/s)",
                        e.kind,
                        e.id,
                        e.parent.as_ref().map(|p| format!(" (parent {p})")).unwrap_or_default(),
                        e.lsn,
                        e.archive_bytes,
                        t.to,
                        e.archive_bytes as f64 / 1e6 / secs.max(1e-9)
                    );
                }
            }
            BackupCommand::List { target: t } => {
                let list = vellum_backup::list(&target(&t)?).await?;
                if json_out {
                    println!("{}", serde_json::to_string(&list)?);
                } else {
                    for e in &list {
                        println!("{}  {}  LSN {}  {} bytes  {}", e.id, e.collection, e.lsn, e.archive_bytes, e.kind);
                    }
                }
            }
            BackupCommand::Restore { db, id, new_name, staged, target: t } => {
                let target = target(&t)?;
                let database = Database::open(&db, tool_options())?;
                // The chain's bytes: this backup and its parents.
                let list = vellum_backup::list(&target).await?;
                let mut total = 0u64;
                let mut next = Some(id.clone());
                while let Some(b) = next.and_then(|i| list.iter().find(|b| b.id == i)) {
                    total += b.archive_bytes;
                    next = b.parent.clone();
                }
                let total = (total > 0).then_some(total);
                let bar = (!json_out).then(|| bytes_bar("downloading", total));
                let progress = |read: u64| {
                    if let Some(b) = &bar {
                        b.set_position(read);
                    }
                };
                let opts = vellum_backup::RestoreOptions { staged, ..Default::default() };
                let r = vellum_backup::restore_with_progress(&database, &target, &id, &new_name, &opts, &progress)
                    .await?;
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                if json_out {
                    println!("{}", json!({"id": r.id, "collection": r.collection, "archives": r.archives, "bytes_downloaded": r.bytes_downloaded, "chunks_resumed": r.chunks_resumed, "reads_resumed": r.reads_resumed}));
                } else {
                    println!(
                        "restored backup {} as {:?} ({} archive{}, {} bytes read{}{})",
                        r.id,
                        r.collection,
                        r.archives,
                        if r.archives == 1 { "" } else { "s" },
                        r.bytes_downloaded,
                        if r.chunks_resumed > 0 { format!(", resumed after {} chunks", r.chunks_resumed) } else { String::new() },
                        if r.reads_resumed > 0 { format!(", {} reads resumed", r.reads_resumed) } else { String::new() }
                    );
                }
            }
            BackupCommand::Retain { collection, keep, target: t } => {
                let removed = vellum_backup::retain(&target(&t)?, &collection, keep).await?;
                if json_out {
                    println!("{}", json!({"deleted": removed}));
                } else {
                    println!("kept the newest {keep} backups of {collection:?} and their parents; deleted {}", removed.len());
                    for id in &removed {
                        println!("  {id}");
                    }
                }
            }
            BackupCommand::Delete { id, target: t } => {
                vellum_backup::delete(&target(&t)?, &id).await?;
                if json_out {
                    println!("{}", json!({"deleted": id}));
                } else {
                    println!("deleted backup {id}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

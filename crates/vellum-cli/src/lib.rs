//! The `vellum` command as a library: argument parsing and every subcommand. `main.rs` only
//! calls [`main_with_args`]. Errors print to stderr with their causes and exit non-zero;
//! bad input never panics.
#![forbid(unsafe_code)]

pub mod data;
mod demo;
mod torture;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::json;
use vellum::{
    CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point, SearchParams,
};

/// A crash-safe persistence engine for vector indexes.
#[derive(Debug, Parser)]
#[command(name = "vellum", version, about, propagate_version = true)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: ingest a real (or generated) data set durably, checkpoint, search,
    /// snapshot, restore, reopen, and print a summary.
    Demo(demo::DemoArgs),
    /// Kill -9 proof: kill a durable writer at random moments, reopen, check everything it
    /// acknowledged (run thousands with --kills).
    Torture(torture::TortureArgs),
    /// The writer process `torture` kills (internal).
    #[command(hide = true)]
    TortureChild(torture::ChildArgs),
    /// Create a collection (and the database, if needed).
    Create {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Dimensions of its vectors.
        #[arg(long)]
        dim: usize,
        /// Distance metric.
        #[arg(long, value_enum, default_value_t = MetricArg::L2)]
        metric: MetricArg,
        /// Exact search only (no HNSW graph).
        #[arg(long)]
        flat: bool,
        #[command(flatten)]
        hnsw: HnswArgs,
    },
    /// Import vectors from a .fvecs, .bvecs or .npy file into a collection.
    Import {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// The file.
        file: PathBuf,
        /// File format (by extension if omitted).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Id of the first row; rows get consecutive ids.
        #[arg(long, default_value_t = 0)]
        first_id: u64,
        /// Rows per atomic batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Search a collection.
    Search {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// The query vector, comma-separated.
        #[arg(long, allow_hyphen_values = true)]
        query: String,
        /// Results to return.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// HNSW candidate list size.
        #[arg(long)]
        ef: Option<usize>,
        /// Scan every point instead of using the index.
        #[arg(long)]
        exact: bool,
    },
    /// Show collections, checkpoint generations, log segments and counters.
    Inspect {
        /// Database directory.
        db: PathBuf,
    },
    /// Rebuild a lost catalog (VELLUM) from the collections' own descriptions.
    RepairCatalog {
        /// Database directory.
        db: PathBuf,
    },
    /// Re-read every checksum; exit non-zero if anything is damaged.
    Verify {
        /// Database directory.
        db: PathBuf,
    },
    /// Write-ahead log tools.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
    /// Snapshot tools: export, import, create, list, delete, restore.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Checkpoint one collection or all of them now.
    Checkpoint {
        /// Database directory.
        db: PathBuf,
        /// Collection name (all if omitted).
        collection: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum WalCommand {
    /// Print the records of a collection's log.
    Dump {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// First LSN to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most records to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Write a full snapshot of a collection to a file.
    Export {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Archive file to write.
        file: PathBuf,
        /// Compress sections with zstd.
        #[arg(long)]
        zstd: bool,
    },
    /// Import snapshot archive files (full first, then incrementals) as a new collection.
    Import {
        /// Database directory (created if needed).
        db: PathBuf,
        /// Name of the new collection.
        #[arg(long)]
        name: String,
        /// Archive files, full first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Refuse archives whose files add up to more than this many bytes once
        /// decompressed (default 1 TiB: lower it for archives you do not trust).
        #[arg(long, default_value_t = vellum::ImportLimits::DEFAULT_MAX_TOTAL_BYTES)]
        max_import_bytes: u64,
        /// Refuse archives holding more files than this.
        #[arg(long, default_value_t = vellum::ImportLimits::DEFAULT_MAX_FILES)]
        max_import_files: u64,
    },
    /// Add a snapshot to a collection's catalog.
    Create {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Store only what changed since the newest snapshot.
        #[arg(long)]
        incremental: bool,
    },
    /// List a collection's snapshots, newest first.
    List {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
    },
    /// Delete a snapshot (refused while an incremental needs it).
    Delete {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Snapshot id.
        id: String,
    },
    /// Restore a snapshot of a collection (with its parents) as a new collection.
    Restore {
        /// Database directory.
        db: PathBuf,
        /// Collection the snapshot belongs to.
        collection: String,
        /// Snapshot id.
        id: String,
        /// Name of the new collection.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
struct HnswArgs {
    /// HNSW links per node.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// HNSW candidate list size while searching.
    #[arg(long, default_value_t = 64)]
    ef_search: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    L2,
    Cosine,
    Dot,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Metric {
        match m {
            MetricArg::L2 => Metric::L2,
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::Dot => Metric::Dot,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Fvecs,
    Bvecs,
    Npy,
}

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

/// Options for tools that open an existing database: no background thread, nothing
/// created by accident.
fn tool_options() -> DatabaseOptions {
    DatabaseOptions::default().with_background_checkpoints(false)
}

/// Refuses a path that is plainly not a database before anything opens it (so no directory
/// or lock file is made there). A directory with collections but no catalog goes on to the
/// library, which tells a database that lost its catalog from a stranger.
fn check_is_database(db: &Path) -> Result<(), BoxError> {
    if !db.join(vellum::CATALOG_FILE).exists() && !db.join("collections").exists() {
        return Err(format!(
            "{} is not a Vellum database (no {} file)",
            db.display(),
            vellum::CATALOG_FILE
        )
        .into());
    }
    Ok(())
}

/// Opens an existing database without changing it ([`Database::open_read_only`]): for the
/// commands that only read, so they work beside a process that holds the database, and on a
/// read-only copy.
fn open_for_reading(db: &Path) -> Result<Database, BoxError> {
    check_is_database(db)?;
    Ok(Database::open_read_only(db, tool_options())?)
}

/// Opens an existing database to change it (takes its lock, recovers).
fn open_existing(db: &Path) -> Result<Database, BoxError> {
    check_is_database(db)?;
    Ok(Database::open(db, tool_options())?)
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::L2 => "l2",
        Metric::Cosine => "cosine",
        Metric::Dot => "dot",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

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
        } => {
            let database = Database::open(&db, tool_options())?;
            let mut config = CollectionConfig::new(dim, metric.into());
            config = if flat {
                config.flat()
            } else {
                config.hnsw(HnswParams {
                    m: hnsw.m,
                    ef_construction: hnsw.ef_construction,
                    ef_search: hnsw.ef_search,
                    ..HnswParams::default()
                })
            };
            database.create_collection(&collection, config)?;
            if json {
                println!(
                    "{}",
                    json!({"created": collection, "dim": dim, "metric": metric_name(metric.into()), "flat": flat})
                );
            } else {
                println!(
                    "created collection {collection:?} ({dim} dimensions, {}, {})",
                    metric_name(metric.into()),
                    if flat { "flat" } else { "hnsw" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            db,
            collection,
            file,
            format,
            first_id,
            batch,
        } => {
            let format = match format {
                Some(f) => f,
                None => match file.extension().and_then(|e| e.to_str()) {
                    Some("fvecs") => FormatArg::Fvecs,
                    Some("bvecs") => FormatArg::Bvecs,
                    Some("npy") => FormatArg::Npy,
                    _ => {
                        return Err(format!(
                            "cannot tell the format of {} from its extension: pass --format",
                            file.display()
                        )
                        .into());
                    }
                },
            };
            let vectors = match format {
                FormatArg::Fvecs => data::read_vecs(&file, 4)?,
                FormatArg::Bvecs => data::read_vecs(&file, 1)?,
                FormatArg::Npy => data::read_npy(&file)?,
            };
            let rows = vectors.rows();
            // Ids are user-given: the last one must exist, checked before anything is
            // opened or written (a wrapped id would silently replace point 0, 1, ...).
            if let Some(last) = (rows as u64).checked_sub(1)
                && first_id.checked_add(last).is_none()
            {
                return Err(format!(
                    "--first-id {first_id} with {rows} rows needs ids up to {first_id} + {last}, \
                     beyond the largest id {}: nothing was imported",
                    u64::MAX
                )
                .into());
            }
            let database = open_existing(&db)?;
            let c = database.collection(&collection)?;
            if vectors.dim != c.config().dim {
                return Err(format!(
                    "{} holds {}-dimensional vectors; collection {collection:?} is {}-dimensional",
                    file.display(),
                    vectors.dim,
                    c.config().dim
                )
                .into());
            }
            let bar = (!json).then(|| progress(rows as u64, "import"));
            let started = Instant::now();
            let batch = batch.max(1);
            for start in (0..rows).step_by(batch) {
                let end = (start + batch).min(rows);
                c.upsert_batch(
                    (start..end).map(|i| Point::new(first_id + i as u64, vectors.row(i).to_vec())),
                )?;
                if let Some(b) = &bar {
                    b.set_position(end as u64);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let secs = started.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    json!({"imported": rows, "seconds": secs, "points_per_second": rows as f64 / secs.max(1e-9)})
                );
            } else {
                println!(
                    "imported {rows} vectors into {collection:?} in {secs:.2} s ({:.0} points/s, durable)",
                    rows as f64 / secs.max(1e-9)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Search {
            db,
            collection,
            query,
            k,
            ef,
            exact,
        } => {
            let q: Vec<f32> = query
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f32>()
                        .map_err(|e| format!("query component {s:?}: {e}"))
                })
                .collect::<Result<_, _>>()?;
            let database = open_for_reading(&db)?;
            let c = database.collection(&collection)?;
            let started = Instant::now();
            let hits = c.search_with(
                &q,
                k,
                &SearchParams {
                    ef,
                    exact,
                    ..Default::default()
                },
            )?;
            let micros = started.elapsed().as_micros();
            if json {
                let rows: Vec<_> = hits
                    .iter()
                    .map(|h| json!({"id": h.id, "distance": h.distance}))
                    .collect();
                println!("{}", json!({"hits": rows, "micros": micros}));
            } else {
                for h in &hits {
                    println!("{:>12}  {:.6}", h.id, h.distance);
                }
                println!("({} hits in {micros} us)", hits.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { db } => {
            let database = open_for_reading(&db)?;
            let stats = database.stats();
            if json {
                let rows: Vec<_> = stats
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name, "points": s.points, "payloads": s.payloads,
                            "wal_bytes": s.wal_bytes, "wal_segments": s.wal_segments,
                            "wal_first_lsn": s.wal_first_lsn, "last_lsn": s.last_lsn,
                            "ops_since_checkpoint": s.ops_since_checkpoint,
                            "generation": s.generation, "checkpoint_lsn": s.checkpoint_lsn,
                            "retained_generations": s.retained_generations,
                            "checkpoint_stored_bytes": s.checkpoint_stored_bytes,
                            "checkpoint_raw_bytes": s.checkpoint_raw_bytes,
                            "vector_segment_bytes": s.vector_segment_bytes, "indexed": s.indexed,
                            "tail_cut_at_open": s.tail_cut_at_open.as_ref().map(tail_cut_json),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"database": db.display().to_string(), "id": format!("{:016x}", database.id()), "collections": rows})
                );
            } else {
                println!(
                    "database {} (id {:016x}), {} collection(s)",
                    db.display(),
                    database.id(),
                    stats.len()
                );
                let configs: std::collections::BTreeMap<String, CollectionConfig> =
                    database.list_collections().into_iter().collect();
                for s in &stats {
                    let cfg = configs[&s.name];
                    println!(
                        "\n{}: {} points ({} with payload), {} dimensions, {}, {}",
                        s.name,
                        s.points,
                        s.payloads,
                        cfg.dim,
                        metric_name(cfg.metric),
                        match cfg.index {
                            vellum::IndexKind::Flat => "flat".to_owned(),
                            vellum::IndexKind::Hnsw(p) => format!(
                                "hnsw m={} ef_construction={} ef_search={}",
                                p.m, p.ef_construction, p.ef_search
                            ),
                            _ => "other".to_owned(),
                        }
                    );
                    println!(
                        "  log:         LSN {}..={}, {} segment(s), {}, {} ops since checkpoint",
                        s.wal_first_lsn,
                        s.last_lsn,
                        s.wal_segments,
                        HumanBytes(s.wal_bytes),
                        s.ops_since_checkpoint
                    );
                    println!(
                        "  checkpoint:  generation {} at LSN {}, retained {:?}, {} stored ({} raw)",
                        s.generation,
                        s.checkpoint_lsn,
                        s.retained_generations,
                        HumanBytes(s.checkpoint_stored_bytes),
                        HumanBytes(s.checkpoint_raw_bytes)
                    );
                    println!(
                        "  vectors:     {} in segment files, {} indexed",
                        HumanBytes(s.vector_segment_bytes),
                        s.indexed
                    );
                    if let Some(cut) = &s.tail_cut_at_open {
                        println!("  recovery:    {}", describe_tail_cut(cut));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::RepairCatalog { db } => {
            let report = Database::repair_catalog(&db)?;
            if json {
                let recovered: Vec<_> = report
                    .recovered
                    .iter()
                    .map(|(name, dir)| json!({"name": name, "dir": dir.display().to_string()}))
                    .collect();
                let skipped: Vec<_> = report
                    .skipped
                    .iter()
                    .map(|(dir, why)| json!({"dir": dir.display().to_string(), "reason": why}))
                    .collect();
                println!(
                    "{}",
                    json!({"catalog": report.catalog.display().to_string(), "recovered": recovered, "skipped": skipped})
                );
            } else {
                println!(
                    "wrote {} naming {} collection(s)",
                    report.catalog.display(),
                    report.recovered.len()
                );
                for (name, dir) in &report.recovered {
                    println!("  {name:?}: {}", dir.display());
                }
                for (dir, why) in &report.skipped {
                    println!("  left out (still on disk): {}: {why}", dir.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { db } => {
            let database = open_for_reading(&db)?;
            let reports = database.verify()?;
            let damaged = reports.iter().any(|r| !r.is_ok());
            if json {
                let rows: Vec<_> = reports.iter().map(|r| json!({"collection": r.collection, "vectors_checked": r.vectors_checked, "wal_records_checked": r.wal_records_checked, "generations_checked": r.generations_checked, "problems": r.problems, "tail_cut_at_open": r.tail_cut_at_open.as_ref().map(tail_cut_json)})).collect();
                println!("{}", json!({"ok": !damaged, "collections": rows}));
            } else {
                for r in &reports {
                    let verdict = if r.is_ok() { "ok" } else { "DAMAGED" };
                    println!(
                        "{}: {verdict} ({} vectors, {} log records, {} checkpoint generations checked)",
                        r.collection,
                        r.vectors_checked,
                        r.wal_records_checked,
                        r.generations_checked
                    );
                    for p in &r.problems {
                        println!("  - {p}");
                    }
                    if let Some(cut) = &r.tail_cut_at_open {
                        println!("  note: {}", describe_tail_cut(cut));
                    }
                }
            }
            Ok(if damaged {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Wal {
            command:
                WalCommand::Dump {
                    db,
                    collection,
                    from,
                    limit,
                },
        } => {
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
        Command::Snapshot { command } => snapshot(command, json),
        Command::Checkpoint { db, collection } => {
            let database = open_existing(&db)?;
            let done = match collection {
                Some(name) => vec![(name.clone(), database.collection(&name)?.checkpoint()?)],
                None => database.checkpoint_all()?,
            };
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
    }
}

fn snapshot(command: SnapshotCommand, json: bool) -> Result<ExitCode, BoxError> {
    match command {
        SnapshotCommand::Export {
            db,
            collection,
            file,
            zstd,
        } => {
            let database = open_existing(&db)?;
            let s = database.export_snapshot(&collection, &file, zstd)?;
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
            if json {
                println!("{}", json!({"imported": name, "points": c.len()}));
            } else {
                println!(
                    "imported {} archive(s) as collection {name:?}: {} points",
                    files.len(),
                    c.len()
                );
            }
        }
        SnapshotCommand::Create {
            db,
            collection,
            incremental,
        } => {
            let database = open_existing(&db)?;
            let m = database.create_snapshot(&collection, incremental)?;
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
            if json {
                println!("{}", json!({"restored": name, "points": c.len()}));
            } else {
                println!(
                    "restored snapshot {id} of {collection:?} as {name:?}: {} points",
                    c.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshot_json(m: &vellum::SnapshotMeta) -> serde_json::Value {
    json!({
        "id": m.id.to_hex(), "kind": format!("{:?}", m.kind), "parent": m.parent.map(|p| p.to_hex()),
        "lsn_start": m.lsn_start, "lsn_end": m.lsn_end, "created_unix_ms": m.created_unix_ms,
        "archive_bytes": m.archive_bytes,
    })
}

/// What opening did about a torn log tail, in one line for people.
fn describe_tail_cut(cut: &vellum::TailCut) -> String {
    format!(
        "opening cut a torn log tail: {} bytes from offset {} of {} (LSN {} on{}), written \
         when a crash interrupted writes that were never acknowledged ({})",
        cut.bytes,
        cut.offset,
        cut.segment.display(),
        cut.lsn,
        if cut.dropped_frames > 0 {
            format!(", and {} later unacknowledged frame(s)", cut.dropped_frames)
        } else {
            String::new()
        },
        cut.reason
    )
}

fn tail_cut_json(cut: &vellum::TailCut) -> serde_json::Value {
    json!({
        "segment": cut.segment.display().to_string(), "offset": cut.offset, "lsn": cut.lsn,
        "bytes": cut.bytes, "dropped_frames": cut.dropped_frames, "reason": cut.reason,
    })
}

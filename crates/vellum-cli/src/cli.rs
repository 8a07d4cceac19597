//! The command line as clap types: [`Cli`] and its subcommands, and the value enums their
//! options take.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use vellum::Metric;

use crate::{demo, torture};

/// Vellum keeps collections of vectors with payloads in a directory, searches them (HNSW or
/// exact, with typed filters and payload indexes), and never loses an acknowledged write,
/// even when the power goes out. This is its command-line tool.
#[derive(Debug, Parser)]
#[command(
    name = "vellum",
    version,
    about = "Vellum: a crash-safe vector store in a directory. Create, import, search, inspect, \
             verify, snapshot.",
    long_about = None,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log what the engine does to standard error: -v for opens, recoveries, checkpoints
    /// and snapshots, -vv for more. `RUST_LOG` (e.g. `RUST_LOG=vellum=debug`) overrides.
    /// Without either, only warnings and errors.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The main job: ingest a real (or generated) data set durably, checkpoint, search,
    /// snapshot, restore, reopen, and print a summary.
    Demo(demo::DemoArgs),
    /// Kill -9 proof: kill a durable writer at random moments, reopen, check everything it
    /// acknowledged (run thousands with --kills).
    Torture(torture::TortureArgs),
    /// Backups in object storage: push, list, restore, delete.
    Backup(crate::backup_cmd::BackupArgs),
    /// Serve a data directory over HTTP (a single node, or a Raft member with --node-id).
    Serve(crate::serve::ServeArgs),
    /// A Raft cluster of server processes on this machine.
    Cluster(crate::cluster_cmd::ClusterArgs),
    /// Run commands against a server: list, create, inspect, drop, import, search, delete,
    /// cluster, metrics.
    Remote(crate::remote::RemoteArgs),
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
        #[command(flatten)]
        quantization: QuantArgs,
    },
    /// Set or change a collection's quantized copy (int8, f16, binary or none): the
    /// quantizer is trained and every vector encoded before this returns.
    Quantize {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        #[command(flatten)]
        quantization: QuantArgs,
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
        /// Id of the first row; rows get consecutive ids. Default: the id after the
        /// collection's largest (0 if it is empty), so an import adds and never replaces.
        #[arg(long, conflicts_with = "ids")]
        first_id: Option<u64>,
        /// The rows' ids: a text file, one decimal id per line, in row order (checked whole
        /// before anything is written: one id per row, none twice).
        #[arg(long, value_name = "FILE")]
        ids: Option<PathBuf>,
        /// Allow the import to replace points whose ids it uses (refused otherwise, before
        /// anything is written).
        #[arg(long)]
        upsert: bool,
        /// Payloads for the rows: a JSON Lines file, one JSON object per row, in row order
        /// (checked whole before anything is written).
        #[arg(long)]
        payloads: Option<PathBuf>,
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
        #[arg(
            long,
            allow_hyphen_values = true,
            required_unless_present = "query_file",
            conflicts_with = "query_file"
        )]
        query: Option<String>,
        /// Many queries: a .fvecs, .bvecs or .npy file, or `-` for standard input (one
        /// comma-separated vector a line). One result set per query.
        #[arg(long)]
        query_file: Option<PathBuf>,
        /// Results to return.
        #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000).map(|v| v as usize))]
        k: usize,
        /// HNSW candidate list size.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000).map(|v| v as usize))]
        ef: Option<usize>,
        /// Scan every point instead of using the index.
        #[arg(long)]
        exact: bool,
        /// Only points this filter admits, as JSON, e.g.
        /// '{"must": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020}}]}'
        /// (conditions: match, match any, in, range, exists, is_empty, has_id; must, should,
        /// must_not, nested).
        #[arg(long)]
        filter: Option<String>,
        /// Print each hit's payload (JSON documents as JSON with --json).
        #[arg(long)]
        with_payload: bool,
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
    /// Delete points by id (each delete is durable when this returns).
    Delete {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Ids to delete, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<u64>,
    },
    /// Drop a collection and its files (asks for --yes).
    Drop {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// Confirm: the collection and every file of it are removed.
        #[arg(long)]
        yes: bool,
    },
    /// Print a shell completion script: `vellum completions bash > /etc/bash_completion.d/vellum`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Payload indexes: create, drop, list. Filters on an indexed field are answered by
    /// its index instead of reading payloads.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
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
    /// Give back the space of deleted and replaced points: vectors move down into freed
    /// slots and emptied segment files are removed (several checkpoints run).
    Compact {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum IndexCommand {
    /// Index a payload field (reads every payload once; returns when it is durable).
    Create {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// The field, a dotted path as filters name fields (e.g. `lang`, `meta.year`).
        field: String,
        /// What the field holds.
        #[arg(long, value_enum)]
        kind: IndexKindArg,
    },
    /// Drop the index on a payload field.
    Drop {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
        /// The field.
        field: String,
    },
    /// List a collection's payload indexes.
    List {
        /// Database directory.
        db: PathBuf,
        /// Collection name.
        collection: String,
    },
}

/// What a payload index holds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum IndexKindArg {
    Keyword,
    Integer,
    Float,
    Bool,
}

impl IndexKindArg {
    pub(crate) fn kind(self) -> vellum::PayloadIndexKind {
        match self {
            IndexKindArg::Keyword => vellum::PayloadIndexKind::Keyword,
            IndexKindArg::Integer => vellum::PayloadIndexKind::Integer,
            IndexKindArg::Float => vellum::PayloadIndexKind::Float,
            IndexKindArg::Bool => vellum::PayloadIndexKind::Bool,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalCommand {
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
pub(crate) enum SnapshotCommand {
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
pub(crate) struct HnswArgs {
    /// HNSW links per node.
    #[arg(long, default_value_t = 16)]
    pub(crate) m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub(crate) ef_construction: usize,
    /// HNSW candidate list size while searching.
    #[arg(long, default_value_t = 64)]
    pub(crate) ef_search: usize,
}

/// A quantized copy of the vectors, searched in place of the originals.
#[derive(Debug, Args)]
pub(crate) struct QuantArgs {
    /// Quantized copy the graph walk scores: int8 (1 byte a dimension), f16 (2), binary (1
    /// bit; cosine and dot only), or none. Trained once the collection has 1,000 points.
    #[arg(long, value_enum, default_value_t = QuantArg::None)]
    pub(crate) quantization: QuantArg,
    /// Return the codes' approximate distances instead of rescoring the best candidates
    /// with the original vectors.
    #[arg(long)]
    pub(crate) no_rescore: bool,
    /// Candidates per requested hit the codes pick for rescoring (default 2; 4 for binary).
    #[arg(long)]
    pub(crate) oversampling: Option<f32>,
}

impl QuantArgs {
    /// The facade's setting (`None` for none).
    pub(crate) fn setting(&self) -> Option<vellum::Quantization> {
        let kind = match self.quantization {
            QuantArg::None => return None,
            QuantArg::Int8 => vellum::QuantKind::Int8,
            QuantArg::F16 => vellum::QuantKind::F16,
            QuantArg::Binary => vellum::QuantKind::Binary,
        };
        let mut q = vellum::Quantization::of(kind).rescore(!self.no_rescore);
        if let Some(o) = self.oversampling {
            q = q.oversampling(o);
        }
        Some(q)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QuantArg {
    None,
    Int8,
    F16,
    Binary,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MetricArg {
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
pub(crate) enum FormatArg {
    Fvecs,
    Bvecs,
    Npy,
}

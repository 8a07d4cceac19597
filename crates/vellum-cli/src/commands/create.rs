//! `create` and `import`: make a collection, and fill one from a vector file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use vellum::{CollectionConfig, Database, HnswParams, Point};

use crate::BoxError;
use crate::cli::{FormatArg, HnswArgs, MetricArg, QuantArgs};
use crate::data;
use crate::open::{open_existing, tool_options};
use crate::output::{metric_name, progress};

/// What `vellum create` makes.
pub(crate) struct Shape {
    pub(crate) dim: usize,
    pub(crate) metric: MetricArg,
    pub(crate) flat: bool,
    pub(crate) hnsw: HnswArgs,
    pub(crate) quantization: QuantArgs,
}

/// `vellum create`: creates the collection (and the database, if needed).
pub(crate) fn create(
    db: PathBuf,
    collection: String,
    shape: Shape,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let Shape {
        dim,
        metric,
        flat,
        hnsw,
        quantization,
    } = shape;
    let quantization = quantization.setting();
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
    config.quantization = quantization;
    database.create_collection(&collection, config)?;
    let quantized = quantization.map_or("none", |q| q.kind.name());
    if json {
        println!(
            "{}",
            json!({"created": collection, "dim": dim, "metric": metric_name(metric.into()), "flat": flat, "quantization": quantized})
        );
    } else {
        println!(
            "created collection {collection:?} ({dim} dimensions, {}, {}{})",
            metric_name(metric.into()),
            if flat { "flat" } else { "hnsw" },
            quantization.map_or(String::new(), |q| format!(", {} codes", q.kind.name()))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum quantize`: sets or changes a collection's quantized copy.
pub(crate) fn quantize(
    db: PathBuf,
    collection: String,
    quantization: QuantArgs,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let setting = quantization.setting();
    let database = open_existing(&db)?;
    let started = Instant::now();
    database.set_quantization(&collection, setting)?;
    let c = database.collection(&collection)?;
    // Checkpointed, so the next open attaches the codes instead of training again.
    c.checkpoint()?;
    let stats = c.stats();
    let active = stats.quantization.map(|k| k.name());
    if json {
        println!(
            "{}",
            json!({"collection": collection, "quantization": setting.map(|q| q.kind.name()),
                   "active": active, "code_bytes": stats.quantized_code_bytes,
                   "vector_segment_bytes": stats.vector_segment_bytes,
                   "seconds": started.elapsed().as_secs_f64()})
        );
    } else {
        match (setting, active) {
            (None, _) => {
                println!("collection {collection:?}: no quantized copy; searches read the vectors")
            }
            (Some(q), Some(_)) => println!(
                "collection {collection:?}: {} codes, {} for {} of vectors, trained and encoded in {:.2} s",
                q.kind.name(),
                indicatif::HumanBytes(stats.quantized_code_bytes),
                indicatif::HumanBytes(stats.vector_segment_bytes),
                started.elapsed().as_secs_f64()
            ),
            (Some(q), None) => println!(
                "collection {collection:?}: {} codes set; trained once it holds {} points (it holds {})",
                q.kind.name(),
                vellum::QUANTIZER_TRAIN_MIN_POINTS,
                stats.points
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum import`: upserts every row of a .fvecs, .bvecs or .npy file, in atomic batches.
/// Which ids an import gives its rows (from `first_id`, default: after the collection's
/// largest; replacing existing points only with `upsert`) and where their payloads are.
pub(crate) struct ImportChoices {
    pub(crate) first_id: Option<u64>,
    /// A text file, one id per row.
    pub(crate) ids_file: Option<PathBuf>,
    pub(crate) upsert: bool,
    /// A JSON Lines file, one object per row.
    pub(crate) payloads: Option<PathBuf>,
}

pub(crate) fn import(
    db: PathBuf,
    collection: String,
    file: PathBuf,
    format: Option<FormatArg>,
    ids: ImportChoices,
    batch: usize,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let format = format_of(&file, format)?;
    let vectors = read_vectors(&file, format)?;
    let rows = vectors.rows();
    // Ids given: the last one must exist, checked before anything is opened or written (a
    // wrapped id would silently replace point 0, 1, ...).
    if let Some(first_id) = ids.first_id
        && let Some(last) = (rows as u64).checked_sub(1)
        && first_id.checked_add(last).is_none()
    {
        return Err(format!(
            "--first-id {first_id} with {rows} rows needs ids up to {first_id} + {last}, \
             beyond the largest id {}: nothing was imported",
            u64::MAX
        )
        .into());
    }
    if let Some(path) = &ids.payloads {
        crate::payload_lines::check(path, rows)?;
    }
    let listed = ids
        .ids_file
        .as_deref()
        .map(|path| crate::id_lines::read(path, rows))
        .transpose()?;
    let database = open_existing(&db)?;
    let c = database.collection(&collection)?;
    let existing = c.ids();
    let first_id = match ids.first_id {
        Some(id) => id,
        // Unused: the rows' ids are listed.
        None if listed.is_some() => 0,
        // After the largest id: an import adds points.
        None => match existing.last() {
            None => 0,
            Some(&largest) => largest
                .checked_add(1)
                .filter(|first| first.checked_add((rows as u64).saturating_sub(1)).is_some())
                .ok_or_else(|| {
                    format!(
                        "collection {collection:?} holds id {largest}: {rows} rows after it \
                         would pass the largest id; pass --first-id: nothing was imported"
                    )
                })?,
        },
    };
    // Points the import would replace: refused unless asked for.
    let end = first_id.saturating_add(rows as u64);
    let (replaced, first_taken) = match &listed {
        Some(list) => {
            let mut taken = list.iter().filter(|id| existing.binary_search(id).is_ok());
            let first = taken.next().copied();
            (first.map_or(0, |_| 1 + taken.count()), first)
        }
        None => {
            let taken = &existing[existing.partition_point(|&id| id < first_id)..];
            let n = taken[..taken.partition_point(|&id| id < end)].len();
            (n, taken.first().copied().filter(|_| n > 0))
        }
    };
    let described = match (&listed, &ids.ids_file) {
        (Some(_), Some(path)) => format!("the ids of {}", path.display()),
        _ => format!("ids {first_id}..{end}"),
    };
    if let Some(first) = first_taken
        && !ids.upsert
    {
        return Err(format!(
            "{described} would replace {replaced} existing point(s) of {collection:?} (the \
             first is id {first}): pass --upsert to replace them{}; nothing was imported",
            if listed.is_some() {
                String::new()
            } else {
                format!(
                    ", or omit --first-id to add after id {}",
                    existing.last().copied().unwrap_or(0)
                )
            }
        )
        .into());
    }
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
    let mut lines = ids
        .payloads
        .as_deref()
        .map(crate::payload_lines::open)
        .transpose()?;
    for start in (0..rows).step_by(batch) {
        let end = (start + batch).min(rows);
        let mut points = Vec::with_capacity(end - start);
        for i in start..end {
            let id = listed.as_ref().map_or(first_id + i as u64, |list| list[i]);
            let p = Point::new(id, vectors.row(i).to_vec());
            points.push(match lines.as_mut() {
                None => p,
                // Checked above: one object per row (a file changed since is an error).
                Some(lines) => match lines.next() {
                    Some(line) => p.with_payload(line?.trim().to_owned()),
                    None => return Err("the payload file got shorter during the import".into()),
                },
            });
        }
        c.upsert_batch(points)?;
        if let Some(b) = &bar {
            b.set_position(end as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    // Indexed and checkpointed, so no later command replays or re-indexes what it wrote.
    let settling = Instant::now();
    let cp = crate::open::settle(&c)?;
    let settle_secs = settling.elapsed().as_secs_f64();
    let added = rows - replaced;
    if json {
        println!(
            "{}",
            json!({"imported": rows, "added": added, "replaced": replaced, "first_id": listed.is_none().then_some(first_id),
                   "ids_file": ids.ids_file.as_ref().map(|p| p.display().to_string()),
                   "seconds": secs, "points_per_second": rows as f64 / secs.max(1e-9),
                   "checkpoint_generation": cp.generation,
                   "index_and_checkpoint_seconds": settle_secs})
        );
    } else {
        println!(
            "imported {rows} vectors into {collection:?} as {described} ({added} added, \
             {replaced} replaced) in {secs:.2} s ({:.0} points/s, durable); indexed and \
             checkpointed in {settle_secs:.2} s more (generation {})",
            rows as f64 / secs.max(1e-9),
            cp.generation
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The format of `file`: as given, or by its extension.
pub(crate) fn format_of(file: &Path, format: Option<FormatArg>) -> Result<FormatArg, BoxError> {
    Ok(match format {
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
    })
}

/// Reads the vectors of `file` in `format`.
pub(crate) fn read_vectors(file: &Path, format: FormatArg) -> Result<data::Vectors, BoxError> {
    Ok(match format {
        FormatArg::Fvecs => data::read_vecs(file, 4)?,
        FormatArg::Bvecs => data::read_vecs(file, 1)?,
        FormatArg::Npy => data::read_npy(file)?,
    })
}

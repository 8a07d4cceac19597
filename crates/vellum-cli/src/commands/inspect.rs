//! `inspect`, `repair-catalog` and `verify`: look at a database, rebuild its catalog, check
//! its checksums.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::HumanBytes;
use serde_json::json;
use vellum::{CollectionConfig, Database};

use crate::BoxError;
use crate::open::open_for_reading;
use crate::output::{describe_tail_cut, metric_name, tail_cut_json};

/// `vellum inspect`: collections, checkpoint generations, log segments and counters.
pub(crate) fn inspect(db: PathBuf, json: bool) -> Result<ExitCode, BoxError> {
    let database = open_for_reading(&db)?;
    let stats = database.stats()?;
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
                    "vector_segment_bytes": s.vector_segment_bytes, "indexed": s.indexed, "index_pending": s.index_pending,
                    "quantization": s.quantization.map(|k| k.name()),
                    "quantized_code_bytes": s.quantized_code_bytes,
                    "quantizer_trained_points": s.quantizer_trained_points,
                    "replayed_at_open": s.replayed_at_open,
                    "graph_loaded_from_checkpoint": s.graph_loaded_from_checkpoint,
                    "tail_cut_at_open": s.tail_cut_at_open.as_ref().map(tail_cut_json),
                    "payload_runs": s.payload_runs, "payload_run_bytes": s.payload_run_bytes,
                    "payload_live_bytes": s.payload_live_bytes,
                    "payload_indexes": s.payload_indexes.iter().map(|i| json!({
                        "field": i.field, "kind": i.kind.name(), "entries": i.entries_saved,
                    })).collect::<Vec<_>>(),
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
            let records = if s.wal_first_lsn > s.last_lsn {
                format!("no records (the next is LSN {})", s.wal_first_lsn)
            } else {
                format!("LSN {}..={}", s.wal_first_lsn, s.last_lsn)
            };
            println!(
                "  log:         {records}, {} segment(s), {}, {} ops since checkpoint",
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
                "  vectors:     {} in segment files, {} indexed, {} waiting to be indexed",
                HumanBytes(s.vector_segment_bytes),
                s.indexed,
                s.index_pending
            );
            if let Some(kind) = s.quantization {
                println!(
                    "  quantized:   {} codes, {} (trained on {} points); searches score codes",
                    kind.name(),
                    HumanBytes(s.quantized_code_bytes),
                    s.quantizer_trained_points
                );
            }
            println!(
                "  payloads:    {} run file(s), {} ({} live)",
                s.payload_runs,
                HumanBytes(s.payload_run_bytes),
                HumanBytes(s.payload_live_bytes)
            );
            for i in &s.payload_indexes {
                println!(
                    "  index:       {} ({}), {} entries",
                    i.field,
                    i.kind.name(),
                    i.entries_saved
                );
            }
            if let Some(cut) = &s.tail_cut_at_open {
                println!("  recovery:    {}", describe_tail_cut(cut));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vellum repair-catalog`: rebuilds a lost catalog from the collections' own descriptions.
pub(crate) fn repair_catalog(db: PathBuf, json: bool) -> Result<ExitCode, BoxError> {
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

/// `vellum verify`: re-reads every checksum; the exit code is non-zero if anything is damaged.
pub(crate) fn verify(db: PathBuf, json: bool) -> Result<ExitCode, BoxError> {
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
                r.collection, r.vectors_checked, r.wal_records_checked, r.generations_checked
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

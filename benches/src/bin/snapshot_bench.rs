//! Snapshot benchmark: export and import throughput of a generation (default
//! 1 GiB) without and with zstd, next to `cp` of the same files, and restore time including
//! the atomic swap, in one run on one file system. Prints a Markdown table for
//! docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release -p vellum-benches --bin snapshot_bench -- [DIR] [MIB]
//! ```
//!
//! DIR (default `./snapshot-bench-tmp`) must be on the file system to measure (not tmpfs);
//! it is created and removed. MIB (default 1024) is the generation size. For experiments:
//! `SNAP_BENCH_SYNC_EVERY=<bytes>` sets the importer's sync interval, `SNAP_BENCH_SWAP=1`
//! delivers chunk 1 before chunk 0 (so the import verifies the file at the end instead of on
//! the fly).
//!
//! Every row ends durable: Vellum's exports and imports `fdatasync` what they write (the
//! importer every 64 MiB and at the end), and the `cp` rows are followed by an `fdatasync` of every copied
//! file and a sync of the directory. Sources are read warm (just written) in every row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vellum_fs::rng::SplitMix64;
use vellum_fs::{Fs, RealFs};
use vellum_snapshot_format::{
    Chunk, ChunkReceiver, Compression, ExportOptions, FinalTotals, ImportOptions, SnapshotId,
    export_to_file, list_generation, restore_chain, verify_file,
};

const CHUNK_BYTES: usize = 4 << 20;
/// Interleaved rounds of the cp / export / import comparison.
const ROUNDS: u64 = 3;

/// Sorts `times` and returns the median and the runs as text.
fn median(times: &mut [Duration]) -> (Duration, String) {
    times.sort();
    let runs: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    (times[times.len() / 2], format!("{} s", runs.join(" / ")))
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1024.0 * 1024.0)
}

/// Writes the generation: vector-like files (random f32 in [-1, 1], which compress about
/// 1.1x like real embeddings) and a few small metadata files (which compress well).
fn make_generation(fs: &RealFs, dir: &Path, total_mib: u64) -> u64 {
    std::fs::create_dir_all(dir.join("vectors")).unwrap();
    std::fs::create_dir_all(dir.join("index")).unwrap();
    let mut rng = SplitMix64::new(6);
    let mut total = 0u64;
    let mut write = |name: &str, bytes: u64, random: bool| {
        let f = fs.create(&dir.join(name)).unwrap();
        let mut buf = vec![0u8; 8 << 20];
        let mut at = 0;
        while at < bytes {
            let n = (bytes - at).min(buf.len() as u64) as usize;
            if random {
                for c in buf[..n].chunks_exact_mut(4) {
                    let v = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                    c.copy_from_slice(&v.to_le_bytes());
                }
            } else {
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = ((at as usize + i) / 512 % 7) as u8;
                }
            }
            f.write_at(&buf[..n], at).unwrap();
            at += n as u64;
        }
        f.sync_data().unwrap();
        total += bytes;
    };
    let meta = 4u64 << 20;
    let vectors = (total_mib << 20) - 3 * meta;
    for i in 0..4u64 {
        write(&format!("vectors/seg-{i:06}"), vectors / 4, true);
    }
    write("index/graph.bin", meta, false);
    write("ids.map", meta, false);
    write("manifest", meta, false);
    total
}

fn sync_tree(fs: &RealFs, dir: &Path) {
    for f in list_generation(fs, dir).unwrap() {
        fs.open(&f.path).unwrap().sync_data().unwrap();
    }
    fs.sync_dir(dir).unwrap();
    for d in ["vectors", "index"] {
        if dir.join(d).exists() {
            fs.sync_dir(&dir.join(d)).unwrap();
        }
    }
}

fn cp(fs: &RealFs, from: &Path, to: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(to);
    let t = Instant::now();
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    sync_tree(fs, to);
    t.elapsed()
}

/// Imports `archive` as a receiver would get it: read in chunk-sized pieces, delivered as
/// chunks (each written and synced by the receiver), then `finish` verifies and publishes.
fn import(fs: &RealFs, archive: &Path, id: SnapshotId, staging: &Path, dest: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(staging);
    let file = fs.open(archive).unwrap();
    let len = file.len().unwrap();
    let info = verify_file(file.as_ref()).unwrap();
    let t = Instant::now();
    let mut opts = ImportOptions::default();
    if let Some(v) = std::env::var("SNAP_BENCH_SYNC_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.sync_every_bytes = v;
    }
    let mut rx = ChunkReceiver::open(RealFs::shared(), staging, opts).unwrap();
    let total_chunks = len.div_ceil(CHUNK_BYTES as u64);
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut order: Vec<u64> = (0..total_chunks).collect();
    if std::env::var_os("SNAP_BENCH_SWAP").is_some() {
        order.swap(0, 1);
    }
    for seq in order {
        let offset = seq * CHUNK_BYTES as u64;
        let n = (len - offset).min(CHUNK_BYTES as u64) as usize;
        file.read_at(&mut buf[..n], offset).unwrap();
        let last = seq + 1 == total_chunks;
        let chunk = Chunk {
            snapshot: id,
            seq,
            offset,
            final_totals: last.then_some(FinalTotals {
                total_bytes: len,
                total_chunks,
                archive_hash: info.archive_hash,
            }),
            payload: buf[..n].to_vec(),
        };
        rx.receive(&chunk).unwrap();
    }
    let received = t.elapsed();
    rx.finish(dest).unwrap();
    let total = t.elapsed();
    eprintln!(
        "import phases: receive {:.2} s, finish (last sync, verdict, publish) {:.2} s",
        received.as_secs_f64(),
        (total - received).as_secs_f64()
    );
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("./snapshot-bench-tmp", String::as_str));
    let total_mib: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fs = RealFs::new();
    let gen_dir = dir.join("gen");
    let raw = make_generation(&fs, &gen_dir, total_mib);
    let files = list_generation(&fs, &gen_dir).unwrap();
    println!("generation: {} files, {} MiB", files.len(), raw >> 20);

    let mut rows: Vec<(String, Duration, u64, String)> = Vec::new();
    // The machine is shared, so the cp / export / import comparison runs ROUNDS times,
    // interleaved, and reports the median of each (and the spread).
    let mut t_cp = Vec::new();
    let mut t_exp = Vec::new();
    let mut t_imp = Vec::new();
    let mut archive_bytes = 0;
    for round in 0..ROUNDS {
        t_cp.push(cp(&fs, &gen_dir, &dir.join("cp-copy")));
        std::fs::remove_dir_all(dir.join("cp-copy")).unwrap();
        let id = SnapshotId::from_seed(1000 + round);
        let archive = dir.join("round.vsnap");
        let t = Instant::now();
        let summary = export_to_file(&fs, &files, &ExportOptions::full(id, 1), &archive).unwrap();
        t_exp.push(t.elapsed());
        archive_bytes = summary.archive_bytes;
        let imported = dir.join("round-imported.vsnap");
        t_imp.push(import(&fs, &archive, id, &dir.join("staging"), &imported));
        std::fs::remove_file(&archive).unwrap();
        std::fs::remove_file(&imported).unwrap();
    }
    let (cp_med, cp_spread) = median(&mut t_cp);
    let (exp_med, exp_spread) = median(&mut t_exp);
    let (imp_med, imp_spread) = median(&mut t_imp);
    rows.push((
        format!("`cp -r` + fdatasync each file (median of {ROUNDS})"),
        cp_med,
        raw,
        format!("baseline; runs {cp_spread}"),
    ));
    rows.push((
        format!("export to file, none (median of {ROUNDS})"),
        exp_med,
        raw,
        format!(
            "archive {} MiB; **{:.2}x cp**; runs {exp_spread}",
            archive_bytes >> 20,
            cp_med.as_secs_f64() / exp_med.as_secs_f64()
        ),
    ));
    rows.push((
        format!("import 4 MiB chunks, none (median of {ROUNDS})"),
        imp_med,
        raw,
        format!(
            "**{:.2}x cp**; runs {imp_spread}",
            cp_med.as_secs_f64() / imp_med.as_secs_f64()
        ),
    ));
    let t_cp = cp_med;

    for (label, compression, level) in [
        ("none", Compression::None, 0),
        ("zstd-1", Compression::Zstd, 1),
        ("zstd-3", Compression::Zstd, 3),
    ] {
        let id = SnapshotId::from_seed(level as u64 + 1 + compression as u64 * 10);
        let opts = ExportOptions {
            compression,
            zstd_level: level,
            ..ExportOptions::full(id, 1)
        };
        let archive = dir.join(format!("{label}.vsnap"));
        let t = Instant::now();
        let summary = export_to_file(&fs, &files, &opts, &archive).unwrap();
        let t_export = t.elapsed();
        let ratio = raw as f64 / summary.archive_bytes as f64;
        rows.push((
            format!("export to file, {label}"),
            t_export,
            raw,
            format!(
                "archive {} MiB ({ratio:.2}x); {:.2}x cp",
                summary.archive_bytes >> 20,
                t_cp.as_secs_f64() / t_export.as_secs_f64()
            ),
        ));

        let t_verify = {
            let f = fs.open(&archive).unwrap();
            let t = Instant::now();
            verify_file(f.as_ref()).unwrap();
            t.elapsed()
        };
        rows.push((
            format!("verify archive, {label}"),
            t_verify,
            raw,
            "read + every check".into(),
        ));

        let imported = dir.join(format!("{label}-imported.vsnap"));
        let t_import = import(&fs, &archive, id, &dir.join("staging"), &imported);
        rows.push((
            format!(
                "import {} chunks of 4 MiB, {label}",
                summary.archive_bytes.div_ceil(CHUNK_BYTES as u64)
            ),
            t_import,
            raw,
            format!(
                "receive (synced every 64 MiB) + verify + publish; {:.2}x cp",
                t_cp.as_secs_f64() / t_import.as_secs_f64()
            ),
        ));
        std::fs::remove_file(&archive).unwrap();

        let target = dir.join("db");
        let fresh = !target.exists();
        let t = Instant::now();
        restore_chain(&fs, std::slice::from_ref(&imported), &target).unwrap();
        let t_restore = t.elapsed();
        rows.push((
            format!(
                "restore, {label}, {}",
                if fresh {
                    "new target"
                } else {
                    "replacing a 1 GiB target"
                }
            ),
            t_restore,
            raw,
            "decode + write + sync + swap (+ old removed)".into(),
        ));
        std::fs::remove_file(&imported).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("| operation | time (s) | MiB/s of generation | note |");
    println!("|---|---:|---:|---|");
    for (what, d, bytes, note) in rows {
        println!(
            "| {what} | {:.2} | {:.0} | {note} |",
            d.as_secs_f64(),
            mib_s(bytes, d)
        );
    }
}

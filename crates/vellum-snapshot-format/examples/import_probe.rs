//! Probe for docs/BENCHMARKS.md: where does import time go? Compares a bare user-space copy
//! loop (pread + pwrite of 4 MiB pieces, one fdatasync) with `ChunkReceiver` with and without
//! the streaming verifier and the periodic syncs, on a 512 MiB archive, twice.
//!
//! ```sh
//! cargo run --release -p vellum-snapshot-format --example import_probe -- [DIR]
//! ```
use std::path::Path;
use std::time::Instant;
use vellum_fs::{Fs, RealFs};
use vellum_snapshot_format::*;

fn main() {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./import-probe-tmp".into());
    let dir = Path::new(&arg);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("gen")).unwrap();
    let fs = RealFs::new();
    let mut x = 1u64;
    for i in 0..4 {
        let f = fs.create(&dir.join(format!("gen/f{i}"))).unwrap();
        let mut buf = vec![0u8; 8 << 20];
        for k in 0..16u64 {
            for c in buf.chunks_exact_mut(8) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                c.copy_from_slice(&x.to_le_bytes());
            }
            f.write_at(&buf, k * (8 << 20)).unwrap();
        }
        f.sync_data().unwrap();
    }
    let files = list_generation(&fs, &dir.join("gen")).unwrap();
    let id = SnapshotId::from_seed(1);
    let archive = dir.join("a.vsnap");
    let s = export_to_file(&fs, &files, &ExportOptions::full(id, 1), &archive).unwrap();
    let len = s.archive_bytes;
    let src = fs.open(&archive).unwrap();
    let cs = 4usize << 20;
    let n = len.div_ceil(cs as u64);
    let mut buf = vec![0u8; cs];
    for round in 0..2 {
        // A: dd-like
        let t = Instant::now();
        let out = fs.create(&dir.join("A")).unwrap();
        for seq in 0..n {
            let off = seq * cs as u64;
            let m = (len - off).min(cs as u64) as usize;
            src.read_at(&mut buf[..m], off).unwrap();
            out.write_at(&buf[..m], off).unwrap();
        }
        out.sync_data().unwrap();
        println!(
            "round {round} A read+pwrite reused buf + 1 sync: {:.2}s",
            t.elapsed().as_secs_f64()
        );
        // B: fresh vec per chunk
        let t = Instant::now();
        let out = fs.create(&dir.join("B")).unwrap();
        for seq in 0..n {
            let off = seq * cs as u64;
            let m = (len - off).min(cs as u64) as usize;
            src.read_at(&mut buf[..m], off).unwrap();
            let v = buf[..m].to_vec();
            out.write_at(&v, off).unwrap();
        }
        out.sync_data().unwrap();
        println!(
            "round {round} B + to_vec per chunk: {:.2}s",
            t.elapsed().as_secs_f64()
        );
        for (name, order_swap, sync_every) in [
            ("C no verifier, no mid syncs", true, u64::MAX),
            ("D verifier, no mid syncs", false, u64::MAX),
            ("E no verifier, 64MiB syncs", true, 64 << 20),
            ("F default", false, 64 << 20),
        ] {
            let _ = std::fs::remove_dir_all(dir.join("st"));
            let _ = std::fs::remove_file(dir.join("out.vsnap"));
            let t = Instant::now();
            let mut rx = ChunkReceiver::open(
                RealFs::shared(),
                &dir.join("st"),
                ImportOptions {
                    sync_every_bytes: sync_every,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut order: Vec<u64> = (0..n).collect();
            if order_swap {
                order.swap(0, 1);
            }
            for seq in order {
                let off = seq * cs as u64;
                let m = (len - off).min(cs as u64) as usize;
                src.read_at(&mut buf[..m], off).unwrap();
                let c = Chunk {
                    snapshot: id,
                    seq,
                    offset: off,
                    final_totals: (seq + 1 == n).then_some(FinalTotals {
                        total_bytes: len,
                        total_chunks: n,
                        archive_hash: s.archive_hash,
                    }),
                    payload: buf[..m].to_vec(),
                };
                rx.receive(&c).unwrap();
            }
            let r = t.elapsed();
            rx.finish(&dir.join("out.vsnap")).unwrap();
            println!(
                "round {round} {name}: receive {:.2}s total {:.2}s",
                r.as_secs_f64(),
                t.elapsed().as_secs_f64()
            );
        }
        let _ = std::fs::remove_file(dir.join("A"));
        let _ = std::fs::remove_file(dir.join("B"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

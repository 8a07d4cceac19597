//! Replays the fuzz corpora (`fuzz/corpus/snapshot_archive/`, `fuzz/corpus/snapshot_chunks/`)
//! through the fuzz targets' logic, plus built-in seeds and deterministic mutations of them,
//! so CI exercises the decoders under plain `cargo test`. Set `VELLUM_WRITE_CORPUS=1` to
//! (re)write the seeds into the corpus directories.

mod common;

use std::path::PathBuf;

use common::*;
use vellum_fs::SimFs;
use vellum_fs::rng::SplitMix64;
use vellum_snapshot_format::fuzzing::{fuzz_archive, fuzz_chunks};
use vellum_snapshot_format::*;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let fs = SimFs::new();
    let src = tree(&[
        ("a", pattern(1, 3000)),
        ("d/b", compressible(2, 5000)),
        ("empty", Vec::new()),
    ]);
    write_tree(&fs, &p("/gen"), &src);
    let mut archives = Vec::new();
    let mut streams = Vec::new();
    for (i, comp) in [Compression::None, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let opts = ExportOptions {
            compression: comp,
            metadata: vec![("collection".into(), b"demo".to_vec())],
            ..small_opts(10 + i as u64, 3)
        };
        let (bytes, summary) = archive_of(&fs, &p("/gen"), &opts);
        archives.push(bytes);
        let (chunks, _) = chunks_of(&fs, &p("/gen"), &opts, 4096);
        for mode in 0..4u8 {
            let mut s = vec![mode];
            for c in &chunks {
                s.extend(c.encode());
            }
            streams.push(s);
        }
        // An incremental on top, to cover removed sections.
        let mut next = src.clone();
        next.remove("empty");
        next.insert("a".into(), pattern(3, 100));
        write_tree(&fs, &p(&format!("/next{i}")), &next);
        let mut inc = small_opts(20 + i as u64, 9);
        inc.parent = Some(summary.as_parent());
        archives.push(archive_of(&fs, &p(&format!("/next{i}")), &inc).0);
    }
    (archives, streams)
}

fn replay(target: &str, run: fn(&[u8]), seeds: &[Vec<u8>]) -> usize {
    let dir = corpus_dir(target);
    if std::env::var_os("VELLUM_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            run(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    n
}

fn mutate(seed: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut m = seed.to_vec();
    match rng.below(4) {
        0 => {
            let at = rng.below(m.len() as u64) as usize;
            m[at] ^= 1 << rng.below(8);
        }
        1 => m.truncate(rng.below(m.len() as u64) as usize),
        2 => {
            let at = rng.below(m.len() as u64) as usize;
            let len = rng.below(64) as usize;
            m.splice(at..at, std::iter::repeat_n(rng.next_u64() as u8, len));
        }
        _ => {
            let at = rng.below(m.len() as u64) as usize;
            let end = (at + rng.below(200) as usize).min(m.len());
            m.drain(at..end);
        }
    }
    m
}

#[test]
fn the_archive_fuzz_corpus_and_mutated_seeds_replay_without_panics() {
    let (archives, _) = seeds();
    for a in &archives {
        fuzz_archive(a);
        assert!(decode_archive(&mut SliceSource::new(a), None, &mut NullSink).is_ok());
    }
    let n = replay("snapshot_archive", fuzz_archive, &archives);
    let mut rng = SplitMix64::new(0xF022);
    let cases: u64 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for i in 0..cases {
        let seed = &archives[(i as usize) % archives.len()];
        fuzz_archive(&mutate(seed, &mut rng));
    }
    println!("replayed {n} corpus files and {cases} mutations");
}

#[test]
fn the_chunk_stream_fuzz_corpus_and_mutated_seeds_replay_without_panics() {
    let (_, streams) = seeds();
    for s in &streams {
        fuzz_chunks(s);
    }
    let n = replay("snapshot_chunks", fuzz_chunks, &streams);
    let mut rng = SplitMix64::new(0xC4C);
    let cases: u64 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for i in 0..cases {
        let seed = &streams[(i as usize) % streams.len()];
        fuzz_chunks(&mutate(seed, &mut rng));
    }
    println!("replayed {n} corpus files and {cases} mutations");
}

#[test]
fn random_bytes_never_panic_the_decoders() {
    let mut rng = SplitMix64::new(42);
    for len in [0usize, 1, 50, 96, 97, 200, 1000, 5000] {
        for _ in 0..20 {
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if len >= 8 && rng.coin() {
                b[..8].copy_from_slice(b"VELLSNAP");
            }
            fuzz_archive(&b);
            fuzz_chunks(&b);
            let _ = Chunk::decode(&b);
        }
    }
}

#[test]
fn structurally_mutated_chunk_streams_with_valid_chunk_crcs_replay_without_panics() {
    // Byte mutations mostly break a chunk's CRC; these edits keep every chunk well formed
    // (re-encoded), so they reach the importer's offset rules and the archive verification.
    let (_, streams) = seeds();
    let mut rng = SplitMix64::new(0x57C);
    let cases: u64 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for i in 0..cases {
        let seed = &streams[(i as usize) % streams.len()];
        let mut chunks = Chunk::decode_all(&seed[1..]).unwrap();
        for _ in 0..=rng.below(3) {
            let k = rng.below(chunks.len() as u64) as usize;
            match rng.below(8) {
                0 => {
                    chunks.remove(k);
                }
                1 => {
                    let c = chunks[k].clone();
                    chunks.push(c);
                }
                2 => {
                    chunks[k].offset = chunks[k]
                        .offset
                        .wrapping_add(rng.below(9000))
                        .wrapping_sub(4500)
                }
                3 => chunks[k].seq = rng.below(6),
                4 => {
                    let at = rng.below(chunks[k].payload.len() as u64) as usize;
                    chunks[k].payload[at] ^= 1 << rng.below(8);
                }
                5 => {
                    let n = chunks[k].payload.len();
                    chunks[k].payload.truncate(1 + rng.below(n as u64) as usize);
                }
                6 => {
                    if let Some(t) = chunks[k].final_totals.as_mut() {
                        t.total_bytes = t.total_bytes.wrapping_add(rng.below(3)).wrapping_sub(1);
                    } else {
                        chunks[k].final_totals = Some(FinalTotals {
                            total_bytes: chunks[k].offset + chunks[k].payload.len() as u64,
                            total_chunks: chunks[k].seq + 1,
                            archive_hash: [0; 32],
                        });
                    }
                }
                _ => {
                    let j = rng.below(chunks.len() as u64) as usize;
                    chunks.swap(j, k);
                }
            }
            if chunks.is_empty() {
                break;
            }
        }
        let mut data = vec![seed[0]];
        for c in &chunks {
            data.extend(c.encode());
        }
        fuzz_chunks(&data);
    }
}

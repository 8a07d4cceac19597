//! Property test: any generation, block size, chunk size, compression and delivery order
//! (shuffled, with duplicates, interrupted and resumed) round-trips byte for byte.
//! Deterministic under `PROPTEST_RNG_SEED`; `PROPTEST_CASES` raises the depth.

mod common;

use std::path::Path;

use common::*;
use proptest::prelude::*;
use vellum_fs::SimFs;
use vellum_fs::rng::SplitMix64;
use vellum_snapshot_format::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn file_strategy() -> impl Strategy<Value = (String, usize, u64)> {
    (
        0usize..6,
        0usize..3,
        prop_oneof![0usize..10, 0usize..5000, 60_000usize..140_000],
        any::<u64>(),
    )
        .prop_map(|(f, d, len, seed)| {
            let name = if d == 0 {
                format!("f{f}")
            } else {
                format!("d{d}/f{f}")
            };
            (name, len, seed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_generation_round_trips_through_any_chunking_and_order(
        files in prop::collection::vec(file_strategy(), 1..8),
        block in prop::sample::select(vec![4096u32, 8192, 65_536]),
        chunk in 4096usize..70_000,
        zstd in any::<bool>(),
        order_seed in any::<u64>(),
        resume_at in 0usize..50,
    ) {
        let fs = SimFs::new();
        let src: Tree = files.iter().map(|(n, len, seed)| (n.clone(), pattern(*seed, *len))).collect();
        write_tree(&fs, &p("/gen"), &src);
        let opts = ExportOptions {
            block_bytes: block,
            compression: if zstd { Compression::Zstd } else { Compression::None },
            ..small_opts(order_seed, 5)
        };
        let (mut chunks, summary) = chunks_of(&fs, &p("/gen"), &opts, chunk);
        let mut rng = SplitMix64::new(order_seed);
        for i in (1..chunks.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            chunks.swap(i, j);
        }
        for _ in 0..rng.below(3) {
            let k = rng.below(chunks.len() as u64) as usize;
            let c = chunks[k].clone();
            chunks.push(c);
        }
        let staging = Path::new("/staging");
        let mut fs = fs;
        let mut rx = ChunkReceiver::open(fs.shared(), staging, ImportOptions::default()).unwrap();
        for (i, c) in chunks.iter().enumerate() {
            if i == resume_at {
                // Power loss mid-import: continue on what was durable.
                drop(rx);
                fs = fs.crash_drop_unsynced();
                rx = ChunkReceiver::open(fs.shared(), staging, ImportOptions::default()).unwrap();
                // The sender resends what it has no durable receipt for (here: everything so
                // far; what survived comes back as duplicates).
                for earlier in &chunks[..i] {
                    rx.receive(earlier).unwrap();
                }
            }
            rx.receive(c).unwrap();
        }
        let info = rx.finish(&p("/a.vsnap")).unwrap();
        prop_assert_eq!(info.archive_hash, summary.archive_hash);
        restore_chain(&fs, &[p("/a.vsnap")], &p("/db")).unwrap();
        prop_assert_eq!(read_tree(&fs, &p("/db")).unwrap(), src);
    }
}

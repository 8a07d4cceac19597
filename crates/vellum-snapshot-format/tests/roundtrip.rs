//! Export -> import -> restore round trips, chains and the catalog.

mod common;

use std::path::Path;

use common::*;
use vellum_fs::rng::SplitMix64;
use vellum_fs::{Fs, RealFs, SimFs};
use vellum_snapshot_format::*;

fn roundtrip_with_order(order: impl Fn(&mut Vec<Chunk>)) {
    let fs = SimFs::new();
    let src = sample_tree(1);
    write_tree(&fs, &p("/gen"), &src);
    let (mut chunks, summary) = chunks_of(&fs, &p("/gen"), &small_opts(1, 10), 8192);
    assert!(chunks.len() > 20, "many chunks: {}", chunks.len());
    order(&mut chunks);
    let info = import(&fs, &chunks, "/staging", "/got.vsnap").unwrap();
    assert_eq!(info.archive_hash, summary.archive_hash);
    restore_chain(&fs, &[p("/got.vsnap")], &p("/restored")).unwrap();
    assert_eq!(read_tree(&fs, &p("/restored")).unwrap(), src);
}

#[test]
fn chunks_in_order_round_trip_byte_identical() {
    roundtrip_with_order(|_| {});
}

#[test]
fn chunks_in_reverse_order_round_trip_byte_identical() {
    roundtrip_with_order(|c| c.reverse());
}

#[test]
fn shuffled_chunks_round_trip_byte_identical() {
    for seed in 0..5 {
        roundtrip_with_order(move |c| {
            let mut rng = SplitMix64::new(seed);
            for i in (1..c.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                c.swap(i, j);
            }
        });
    }
}

#[test]
fn duplicate_chunks_are_tolerated() {
    roundtrip_with_order(|c| {
        let dups: Vec<Chunk> = c.iter().step_by(3).cloned().collect();
        c.extend(dups);
        let first = c[0].clone();
        c.insert(5, first);
    });
}

#[test]
fn a_missing_chunk_is_reported_and_nothing_is_published() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(2));
    let (mut chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(2, 10), 8192);
    let missing = chunks.remove(7);
    let err = import(&fs, &chunks, "/staging", "/got.vsnap").unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err}");
    assert!(!fs.exists(&p("/got.vsnap")).unwrap());
    // Sending the missing chunk afterwards completes it.
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
    assert_eq!(rx.missing_seqs(10), vec![missing.seq]);
    rx.receive(&missing).unwrap();
    rx.finish(&p("/got.vsnap")).unwrap();
}

#[test]
fn a_missing_final_chunk_is_reported() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(3));
    let (mut chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(3, 10), 8192);
    let last = chunks.pop().unwrap();
    assert!(last.is_final() && chunks.iter().all(|c| !c.is_final()));
    let err = import(&fs, &chunks, "/staging", "/got.vsnap").unwrap_err();
    assert!(err.to_string().contains("final chunk"), "{err}");
}

#[test]
fn an_interrupted_import_resumes_from_the_staging_area() {
    let fs = SimFs::new();
    let src = sample_tree(4);
    write_tree(&fs, &p("/gen"), &src);
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(4, 10), 8192);
    let half = chunks.len() / 2;
    {
        let mut rx =
            ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
        for c in chunks.iter().skip(half) {
            assert_ne!(rx.receive(c).unwrap(), Receipt::Duplicate);
        }
        rx.sync().unwrap();
    }
    // "Restart": only what is durable survives.
    let fs = fs.crash_drop_unsynced();
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
    assert_eq!(rx.received_chunks(), chunks.len() - half);
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&p("/got.vsnap")).unwrap();
    restore_chain(&fs, &[p("/got.vsnap")], &p("/restored")).unwrap();
    assert_eq!(read_tree(&fs, &p("/restored")).unwrap(), src);
    assert!(
        !fs.exists(&p("/staging")).unwrap(),
        "staging removed after publish"
    );
}

#[test]
fn a_torn_log_tail_is_cut_and_its_chunk_resent() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(5));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(5, 10), 8192);
    {
        let mut rx =
            ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
        for c in &chunks[..4] {
            rx.receive(c).unwrap();
        }
        rx.sync().unwrap();
    }
    let log = p("/staging").join(LOG_FILE);
    fs.tamper(&log, |b| {
        let n = b.len();
        b.truncate(n - 10);
    })
    .unwrap();
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
    assert_eq!(rx.received_chunks(), 3);
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&p("/got.vsnap")).unwrap();
}

#[test]
fn a_logged_chunk_whose_bytes_rotted_is_forgotten_on_resume() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(6));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(6, 10), 8192);
    {
        let mut rx =
            ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
        for c in &chunks[..4] {
            rx.receive(c).unwrap();
        }
        rx.sync().unwrap();
    }
    fs.tamper(&p("/staging").join(PART_FILE), |b| b[8192 + 17] ^= 0x40)
        .unwrap();
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
    assert_eq!(rx.received_chunks(), 3);
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&p("/got.vsnap")).unwrap();
}

#[test]
fn seed_failure_10_the_archive_hash_is_blake3_of_the_streamed_bytes() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(7));
    let (bytes, summary) = archive_of(&fs, &p("/gen"), &small_opts(7, 10));
    let n = bytes.len();
    assert_eq!(
        summary.archive_hash,
        *blake3::hash(&bytes[..n - 32]).as_bytes()
    );
    assert_eq!(bytes[n - 32..], summary.archive_hash);
    // And the file decoder streams: a 1 MiB read buffer, not the archive in memory.
    let info = decode_archive(&mut SliceSource::new(&bytes), None, &mut NullSink).unwrap();
    assert_eq!(info.archive_hash, summary.archive_hash);
}

#[test]
fn seed_failure_11_files_over_64_kib_spanning_many_chunks_round_trip() {
    let fs = SimFs::new();
    let src = tree(&[
        ("big", pattern(11, 1_000_003)),
        ("exactly-64k", pattern(12, 65_536)),
        ("64k-plus-1", pattern(13, 65_537)),
        ("small", pattern(14, 10)),
    ]);
    write_tree(&fs, &p("/gen"), &src);
    for (chunk_bytes, block) in [(4096, 4096), (65_536, 65_536), (100_000, 256 << 10)] {
        let opts = ExportOptions {
            block_bytes: block,
            ..small_opts(11, 1)
        };
        let (chunks, _) = chunks_of(&fs, &p("/gen"), &opts, chunk_bytes);
        assert!(chunks.len() > 10);
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.payload.len() == chunk_bytes && !c.is_final())
        );
        let dest = format!("/got-{chunk_bytes}.vsnap");
        import(&fs, &chunks, &format!("/st-{chunk_bytes}"), &dest).unwrap();
        let target = format!("/restored-{chunk_bytes}");
        restore_chain(&fs, &[p(&dest)], &p(&target)).unwrap();
        assert_eq!(read_tree(&fs, &p(&target)).unwrap(), src);
    }
}

#[test]
fn seed_failure_12_offsets_are_honoured_and_the_final_marker_is_required() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(12));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(12, 1), 8192);
    // Sequence numbers swapped between two chunks (offsets kept): the archive is still
    // assembled by offset, so it verifies.
    let mut swapped = chunks.clone();
    let (a, b) = (swapped[2].seq, swapped[3].seq);
    swapped[2].seq = b;
    swapped[3].seq = a;
    import(&fs, &swapped, "/s1", "/ok.vsnap").unwrap();
    // Offsets swapped (payloads land in the wrong place): the archive does not verify.
    let mut moved = chunks.clone();
    let (a, b) = (moved[2].offset, moved[3].offset);
    moved[2].offset = b;
    moved[3].offset = a;
    let err = import(&fs, &moved, "/s2", "/bad.vsnap").unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert!(!fs.exists(&p("/bad.vsnap")).unwrap());
    // Without the final marker nothing is published.
    let mut no_final = chunks.clone();
    let last = no_final.last_mut().unwrap();
    last.final_totals = None;
    let err = import(&fs, &no_final, "/s3", "/nf.vsnap").unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err}");
    assert!(!fs.exists(&p("/nf.vsnap")).unwrap());
}

#[test]
fn seed_failure_13_each_file_is_restored_to_its_own_name() {
    let fs = SimFs::new();
    // Same sizes, different contents, names that sort and hash differently.
    let mut files = Tree::new();
    for i in 0..20u64 {
        files.insert(
            format!("collection-{}/index.bin", 19 - i),
            pattern(100 + i, 70_000),
        );
        files.insert(
            format!("collection-{i}/vectors.bin"),
            pattern(200 + i, 70_000),
        );
    }
    write_tree(&fs, &p("/gen"), &files);
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(13, 1), 65_536);
    import(&fs, &chunks, "/s", "/a.vsnap").unwrap();
    restore_chain(&fs, &[p("/a.vsnap")], &p("/r")).unwrap();
    let got = read_tree(&fs, &p("/r")).unwrap();
    for (name, bytes) in &files {
        assert_eq!(
            got.get(name),
            Some(bytes),
            "{name} restored with other bytes"
        );
    }
    assert_eq!(got.len(), files.len());
}

#[test]
fn zstd_sections_round_trip_and_shrink_compressible_files() {
    let fs = SimFs::new();
    let src = tree(&[
        ("meta", compressible(1, 500_000)),
        ("noise", pattern(2, 100_000)),
    ]);
    write_tree(&fs, &p("/gen"), &src);
    let plain = archive_of(&fs, &p("/gen"), &small_opts(20, 1)).0;
    let opts = ExportOptions {
        compression: Compression::Zstd,
        block_bytes: 64 << 10,
        ..small_opts(21, 1)
    };
    let (chunks, summary) = chunks_of(&fs, &p("/gen"), &opts, 4096);
    assert!(
        summary.archive_bytes < plain.len() as u64 / 2,
        "{} vs {}",
        summary.archive_bytes,
        plain.len()
    );
    let meta = summary
        .footer
        .sections
        .iter()
        .find(|s| s.name == "meta")
        .unwrap();
    assert!(meta.totals.stored_bytes * 10 < meta.totals.raw_bytes);
    import(&fs, &chunks, "/s", "/z.vsnap").unwrap();
    restore_chain(&fs, &[p("/z.vsnap")], &p("/r")).unwrap();
    assert_eq!(read_tree(&fs, &p("/r")).unwrap(), src);
}

#[test]
fn restore_replaces_an_existing_target_wholly() {
    let fs = SimFs::new();
    let old = tree(&[("only-old", pattern(1, 10)), ("shared", pattern(2, 5000))]);
    write_tree(&fs, &p("/db"), &old);
    let new = sample_tree(30);
    write_tree(&fs, &p("/gen"), &new);
    let files = list_generation(&fs, &p("/gen")).unwrap();
    export_to_file(&fs, &files, &small_opts(30, 1), &p("/s.vsnap")).unwrap();
    let report = restore_chain(&fs, &[p("/s.vsnap")], &p("/db")).unwrap();
    assert_eq!(report.files, new.len());
    assert_eq!(read_tree(&fs, &p("/db")).unwrap(), new);
    let leftovers: Vec<_> = fs
        .all_paths()
        .into_iter()
        .filter(|x| x.to_string_lossy().contains("restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Builds a chain full -> inc1 -> inc2 -> inc3 with modified, added and removed files.
fn build_chain(fs: &SimFs) -> (Vec<std::path::PathBuf>, Vec<Tree>) {
    let mut states = Vec::new();
    let mut paths = Vec::new();
    let mut state = sample_tree(40);
    let mut parent: Option<ExportSummary> = None;
    for step in 0..4u64 {
        if step > 0 {
            state.insert(
                format!("wal/{step:06}.log"),
                pattern(500 + step, 3000 + step as usize),
            );
            state.insert("manifest".into(), pattern(600 + step, 300));
            if step == 2 {
                state.remove("vectors/seg-000002");
                state.insert("vectors/seg-000003".into(), pattern(700, 90_000));
            }
            if step == 3 {
                state.remove("empty");
                state.remove("wal/000001.log");
            }
        }
        let dir = p(&format!("/gen{step}"));
        write_tree(fs, &dir, &state);
        let files = list_generation(fs, &dir).unwrap();
        let mut opts = small_opts(40 + step, 100 * (step + 1));
        if let Some(parent) = &parent {
            opts.parent = Some(parent.as_parent());
        }
        let path = p(&format!("/chain-{step}.vsnap"));
        let summary = export_to_file(fs, &files, &opts, &path).unwrap();
        if step > 0 {
            assert_eq!(summary.header.kind, SnapshotKind::Incremental);
            // Only changed files travel.
            assert!(
                summary.footer.sections.len() < 6,
                "{:?}",
                summary.footer.sections.len()
            );
            assert!(
                !summary
                    .footer
                    .sections
                    .iter()
                    .any(|s| s.name == "vectors/seg-000001")
            );
        }
        parent = Some(summary);
        paths.push(path);
        states.push(state.clone());
    }
    (paths, states)
}

#[test]
fn incremental_chains_of_depth_three_restore_each_prefix() {
    let fs = SimFs::new();
    let (paths, states) = build_chain(&fs);
    for n in 1..=paths.len() {
        let target = p(&format!("/restore-{n}"));
        let report = restore_chain(&fs, &paths[..n], &target).unwrap();
        assert_eq!(report.applied.len(), n);
        assert_eq!(
            read_tree(&fs, &target).unwrap(),
            states[n - 1],
            "chain prefix {n}"
        );
    }
}

#[test]
fn a_broken_or_mismatched_chain_is_refused_before_anything_is_written() {
    let fs = SimFs::new();
    let (paths, _) = build_chain(&fs);
    write_tree(&fs, &p("/db"), &tree(&[("old", pattern(1, 100))]));
    let cases: Vec<Vec<std::path::PathBuf>> = vec![
        vec![paths[0].clone(), paths[2].clone()], // gap
        vec![paths[1].clone(), paths[2].clone()], // no full
        vec![paths[0].clone(), paths[1].clone(), paths[0].clone()], // full in the middle
        vec![paths[0].clone(), paths[2].clone(), paths[1].clone()], // wrong order
        vec![],
    ];
    for chain in cases {
        let err = restore_chain(&fs, &chain, &p("/db")).unwrap_err();
        assert!(
            matches!(err, Error::BrokenChain { .. } | Error::InvalidInput { .. }),
            "{err}"
        );
        assert_eq!(
            read_tree(&fs, &p("/db")).unwrap(),
            tree(&[("old", pattern(1, 100))])
        );
        assert!(!fs.exists(&p("/.db.restore-staging")).unwrap());
    }
    // Same parent id, but the LSN range does not continue: refused too.
    let mut h0 = read_summary(fs.open(&paths[0]).unwrap().as_ref())
        .unwrap()
        .0;
    let mut h1 = read_summary(fs.open(&paths[1]).unwrap().as_ref())
        .unwrap()
        .0;
    check_chain(&[h0, h1]).unwrap();
    h1.lsn_start += 1;
    assert!(matches!(
        check_chain(&[h0, h1]),
        Err(Error::BrokenChain { .. })
    ));
    h0.kind = SnapshotKind::Incremental;
    assert!(check_chain(&[h0]).is_err());
}

#[test]
fn catalog_creates_lists_newest_first_gets_deletes_and_restores() {
    let fs = SimFs::new();
    let mut cat = Catalog::open(fs.shared(), &p("/snaps")).unwrap();
    let mut ids = Vec::new();
    let mut parent: Option<SnapshotId> = None;
    let mut last_state = Tree::new();
    for step in 0..4u64 {
        let mut state = sample_tree(50);
        state.insert("manifest".into(), pattern(900 + step, 100));
        let dir = p(&format!("/g{step}"));
        write_tree(&fs, &dir, &state);
        let files = list_generation(&fs, &dir).unwrap();
        let mut opts = small_opts(50 + step, 10 * (step + 1));
        if let Some(pid) = parent {
            opts.parent = Some(cat.parent_state(pid).unwrap());
        }
        let meta = cat.create(&files, &opts).unwrap();
        assert_eq!(cat.get(meta.id).unwrap(), &meta);
        ids.push(meta.id);
        parent = Some(meta.id);
        last_state = state;
    }
    let listed: Vec<SnapshotId> = cat.list().iter().map(|m| m.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    // Reopen: the index is durable.
    let cat2 = Catalog::open(fs.shared(), &p("/snaps")).unwrap();
    assert_eq!(cat2.list(), cat.list());
    // A parent cannot be deleted alone.
    assert!(matches!(cat.delete(ids[1]), Err(Error::HasChildren { .. })));
    cat.restore(ids[3], &p("/db")).unwrap();
    assert_eq!(read_tree(&fs, &p("/db")).unwrap(), last_state);
    cat.delete(ids[3]).unwrap();
    assert!(matches!(cat.get(ids[3]), Err(Error::NotFound { .. })));
    assert!(!fs.exists(&cat.archive_path(ids[3])).unwrap());
}

#[test]
fn retention_keeps_n_and_never_deletes_a_parent_of_a_kept_snapshot() {
    let fs = SimFs::new();
    let mut cat = Catalog::open(fs.shared(), &p("/snaps")).unwrap();
    // Two chains: A (full a0 <- a1 <- a2) older, B (full b0 <- b1) newer.
    let make = |seed: u64, parent: Option<SnapshotId>, cat: &mut Catalog| {
        let dir = p(&format!("/g{seed}"));
        let mut state = sample_tree(seed);
        state.insert("x".into(), pattern(seed, 10));
        write_tree(&fs, &dir, &state);
        let files = list_generation(&fs, &dir).unwrap();
        let mut opts = small_opts(seed, seed);
        if let Some(pid) = parent {
            opts.parent = Some(cat.parent_state(pid).unwrap());
        }
        cat.create(&files, &opts).unwrap().id
    };
    let a0 = make(1, None, &mut cat);
    let a1 = make(2, Some(a0), &mut cat);
    let a2 = make(3, Some(a1), &mut cat);
    let b0 = make(4, None, &mut cat);
    let b1 = make(5, Some(b0), &mut cat);
    // Keep 1: b1 and its parent b0 stay; chain A goes.
    let mut deleted = cat.retain(1).unwrap();
    deleted.sort();
    let mut expected = vec![a0, a1, a2];
    expected.sort();
    assert_eq!(deleted, expected);
    let left: Vec<SnapshotId> = cat.list().iter().map(|m| m.id).collect();
    assert_eq!(left, vec![b1, b0]);
    cat.restore(b1, &p("/db")).unwrap();
    // Keeping 5 of 2 deletes nothing.
    assert!(cat.retain(5).unwrap().is_empty());
}

#[test]
fn catalog_imports_a_chunk_stream_and_refuses_an_unknown_parent() {
    let fs = SimFs::new();
    let mut cat = Catalog::open(fs.shared(), &p("/snaps")).unwrap();
    let src = sample_tree(60);
    write_tree(&fs, &p("/gen"), &src);
    let (chunks, summary) = chunks_of(&fs, &p("/gen"), &small_opts(60, 5), 16384);
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/snaps/incoming"), ImportOptions::default()).unwrap();
    for c in chunks.iter().rev() {
        rx.receive(c).unwrap();
    }
    let meta = cat.import(rx).unwrap();
    assert_eq!(meta.archive_hash, summary.archive_hash);
    cat.restore(meta.id, &p("/db")).unwrap();
    assert_eq!(read_tree(&fs, &p("/db")).unwrap(), src);
    // An incremental whose parent the catalog lacks.
    let mut opts = small_opts(61, 9);
    opts.parent = Some(ParentState {
        id: SnapshotId::from_seed(999),
        lsn_end: 5,
        state: Vec::new(),
    });
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &opts, 16384);
    let mut rx = ChunkReceiver::open(
        fs.shared(),
        &p("/snaps/incoming2"),
        ImportOptions::default(),
    )
    .unwrap();
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    assert!(matches!(cat.import(rx), Err(Error::NotFound { .. })));
    assert_eq!(cat.list().len(), 1);
}

#[test]
fn the_same_round_trip_works_on_the_real_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = RealFs::new();
    let root = tmp.path();
    let src = sample_tree(70);
    write_tree(&fs, &root.join("gen"), &src);
    let files = list_generation(&fs, &root.join("gen")).unwrap();
    let mut chunks = Vec::new();
    export_chunks(&fs, &files, &small_opts(70, 1), 10_000, &mut |c| {
        chunks.push(c);
        Ok(())
    })
    .unwrap();
    chunks.reverse();
    let mut rx = ChunkReceiver::open(
        RealFs::shared(),
        &root.join("staging"),
        ImportOptions::default(),
    )
    .unwrap();
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&root.join("a.vsnap")).unwrap();
    write_tree(&fs, &root.join("db"), &tree(&[("old", vec![1, 2, 3])]));
    restore_chain(&fs, &[root.join("a.vsnap")], &root.join("db")).unwrap();
    assert_eq!(read_tree(&fs, &root.join("db")).unwrap(), src);
    assert_eq!(fs.list_dir(root).unwrap(), vec!["a.vsnap", "db", "gen"]);
}

/// Whether `a` and `b` lie on different file systems (device numbers; Unix only).
#[cfg(unix)]
fn on_different_file_systems(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(a).unwrap().dev() != std::fs::metadata(b).unwrap().dev()
}

/// Elsewhere the real half of the test below is skipped (it needs `/dev/shm` anyway).
#[cfg(not(unix))]
fn on_different_file_systems(_a: &Path, _b: &Path) -> bool {
    false
}

#[test]
fn a_rename_across_file_systems_is_a_typed_error_naming_both_paths() {
    // The classification itself, independent of the machine's mounts.
    let e = vellum_fs::Error::io(
        vellum_fs::OpKind::Rename,
        "/a -> /b",
        std::io::Error::from(std::io::ErrorKind::CrossesDevices),
    );
    let err = classify_rename_error(e, Path::new("/a"), Path::new("/b"));
    assert!(
        matches!(&err, Error::CrossDevice { from, to } if from == Path::new("/a") && to == Path::new("/b"))
    );
    assert!(err.to_string().contains("/a") && err.to_string().contains("/b"));
    // And for real, when this machine has a second file system (a tmpfs /dev/shm).
    let shm = Path::new("/dev/shm");
    let here = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let other_fs = shm.is_dir() && on_different_file_systems(shm, here.path());
    if !other_fs {
        println!("no second file system here; only the classification was checked");
        return;
    }
    let staging_parent = tempfile::tempdir_in(shm).unwrap();
    let fs = RealFs::new();
    write_tree(&fs, &here.path().join("gen"), &sample_tree(80));
    let files = list_generation(&fs, &here.path().join("gen")).unwrap();
    let mut chunks = Vec::new();
    export_chunks(&fs, &files, &small_opts(80, 1), 65_536, &mut |c| {
        chunks.push(c);
        Ok(())
    })
    .unwrap();
    let staging = staging_parent.path().join("staging");
    let mut rx = ChunkReceiver::open(RealFs::shared(), &staging, ImportOptions::default()).unwrap();
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    let dest = here.path().join("a.vsnap");
    let err = rx.finish(&dest).unwrap_err();
    match err {
        Error::CrossDevice { from, to } => {
            assert_eq!(from, staging.join(PART_FILE));
            assert_eq!(to, dest);
        }
        other => panic!("expected CrossDevice, got {other}"),
    }
    assert!(!dest.exists(), "no copy fallback");
}

#[test]
fn resume_cuts_unlogged_bytes_past_the_last_logged_chunk_durably() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(8));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(8, 10), 8192);
    {
        let mut rx =
            ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
        for c in &chunks[..3] {
            rx.receive(c).unwrap();
        }
        rx.sync().unwrap();
    }
    // A chunk far away was written and synced, but its log record never made it.
    let part = p("/staging").join(PART_FILE);
    fs.tamper(&part, |b| b.resize(1 << 20, 0xEE)).unwrap();
    drop(ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap());
    let image = fs.crash_drop_unsynced();
    assert_eq!(image.read_file(&part).unwrap().len(), 3 * 8192);
    let mut rx =
        ChunkReceiver::open(image.shared(), &p("/staging"), ImportOptions::default()).unwrap();
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&p("/got.vsnap")).unwrap();
}

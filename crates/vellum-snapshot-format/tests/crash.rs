//! Crash tests on the simulated file system: restore, import and the catalog, cut at every
//! operation, every image checked. Run with `--nocapture` to see how many images.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, Fault, FaultRule, Fs, OpKind, SimFs};
use vellum_snapshot_format::*;

/// Archives (as bytes) of a two-step chain and the trees they restore to.
struct Fixture {
    old: Tree,
    archives: Vec<Vec<u8>>,
    new: Tree,
}

fn fixture() -> Fixture {
    let fs = SimFs::new();
    let gen0 = tree(&[
        ("a", pattern(1, 6000)),
        ("d/b", pattern(2, 3000)),
        ("d/e/c", pattern(3, 100)),
        ("gone", pattern(4, 50)),
    ]);
    let mut gen1 = gen0.clone();
    gen1.insert("a".into(), pattern(5, 5000));
    gen1.insert("new".into(), pattern(6, 700));
    gen1.remove("gone");
    write_tree(&fs, &p("/g0"), &gen0);
    write_tree(&fs, &p("/g1"), &gen1);
    let (full, s0) = archive_of(&fs, &p("/g0"), &small_opts(1, 10));
    let mut opts = small_opts(2, 20);
    opts.parent = Some(s0.as_parent());
    let (inc, _) = archive_of(&fs, &p("/g1"), &opts);
    Fixture {
        old: tree(&[
            ("old-a", pattern(7, 2000)),
            ("a", pattern(8, 10)),
            ("o/x", pattern(9, 600)),
        ]),
        archives: vec![full, inc],
        new: gen1,
    }
}

fn put_file(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> vellum_fs::Result<()> {
    let f = fs.create(path)?;
    f.write_at(bytes, 0)?;
    f.sync_data()?;
    fs.sync_dir(vellum_fs::parent_dir(path))
}

fn try_write_tree(fs: &dyn Fs, dir: &Path, files: &Tree) -> vellum_fs::Result<()> {
    vellum_fs::create_dir_all_durable(fs, dir)?;
    for (name, bytes) in files {
        let path = dir.join(name);
        vellum_fs::create_dir_all_durable(fs, path.parent().unwrap())?;
        put_file(fs, &path, bytes)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
struct RestoreOutcome {
    setup_done: bool,
    restored: bool,
}

fn leftovers(fs: &SimFs) -> Vec<PathBuf> {
    fs.all_paths()
        .into_iter()
        .filter(|x| x.to_string_lossy().contains(".restore-"))
        .collect()
}

fn restore_scenario(fx: &Fixture, with_old: bool) -> impl Fn(&SimFs) -> RestoreOutcome + '_ {
    move |fs: &SimFs| {
        let mut out = RestoreOutcome::default();
        let setup = || -> vellum_fs::Result<()> {
            if with_old {
                try_write_tree(fs, &p("/db"), &fx.old)?;
            }
            put_file(fs, &p("/s0.vsnap"), &fx.archives[0])?;
            put_file(fs, &p("/s1.vsnap"), &fx.archives[1])
        };
        if setup().is_err() {
            return out;
        }
        out.setup_done = true;
        out.restored = restore_chain(fs, &[p("/s0.vsnap"), p("/s1.vsnap")], &p("/db")).is_ok();
        out
    }
}

fn restore_check<'a>(
    fx: &'a Fixture,
    with_old: bool,
) -> impl Fn(&SimFs, &RestoreOutcome) -> Result<(), String> + 'a {
    move |image: &SimFs, out: &RestoreOutcome| {
        if !out.setup_done {
            return Ok(());
        }
        let old = with_old.then(|| fx.old.clone());
        if out.restored {
            // Acknowledged: the new state is there and durable without any recovery, and
            // the staging and old directories are gone.
            if read_tree(image, &p("/db")).as_ref() != Some(&fx.new) {
                return Err("restore returned Ok but the image does not hold the new state".into());
            }
            if !leftovers(image).is_empty() {
                return Err(format!(
                    "leftovers after an acknowledged restore: {:?}",
                    leftovers(image)
                ));
            }
        }
        recover_swap(image, &p("/db")).map_err(|e| format!("recovery failed: {e}"))?;
        let got = read_tree(image, &p("/db"));
        let ok = got.as_ref() == Some(&fx.new) || got == old;
        if !ok {
            return Err(format!(
                "target is a mix: {:?}",
                got.map(|t| t.keys().cloned().collect::<Vec<_>>())
            ));
        }
        if out.restored && got.as_ref() != Some(&fx.new) {
            return Err("acknowledged restore rolled back".into());
        }
        if !leftovers(image).is_empty() {
            return Err(format!("recovery left {:?}", leftovers(image)));
        }
        // Recovery's own result is durable: a crash right after it changes nothing.
        let again = image.crash_drop_unsynced();
        if read_tree(&again, &p("/db")) != got || !leftovers(&again).is_empty() {
            return Err("recovery's result was not durable".into());
        }
        Ok(())
    }
}

#[test]
fn a_crash_at_any_step_of_restore_leaves_the_old_or_the_new_state_never_a_mix() {
    let fx = fixture();
    for with_old in [true, false] {
        for (model, images) in [
            (CrashModel::torn_512(), 32),
            (CrashModel::any_subset(), 16),
            (CrashModel::drop_unsynced(), 1),
        ] {
            let harness = CrashHarness {
                model,
                images_per_point: images,
                points: CrashPoints::EveryOp,
                seed: 0x5EED_0006,
            };
            let report = harness.run(
                restore_scenario(&fx, with_old),
                restore_check(&fx, with_old),
            );
            println!("restore (existing target: {with_old}, {model:?}): {report}");
            assert!(report.crash_points > 50, "{report}");
        }
    }
}

#[test]
fn a_crash_inside_recovery_is_recovered_by_the_next_recovery() {
    // Crash images taken in the middle of the swap, then recovery itself cut at each step.
    let fx = fixture();
    let scenario = restore_scenario(&fx, true);
    let dry = SimFs::new();
    dry.record_ops();
    scenario(&dry);
    let total = dry.op_log().len() as u64;
    let mut checked = 0;
    for k in (total.saturating_sub(30))..=total {
        let fs = SimFs::new();
        fs.cut_power_after(k);
        let out = scenario(&fs);
        fs.cut_power();
        for image in fs.crash_images(&CrashModel::torn_512(), 4, k) {
            // Cut recovery after j operations, then recover again on the resulting image.
            for j in 0..12 {
                let inner = image.crash_drop_unsynced();
                inner.cut_power_after(j);
                let _ = recover_swap(&inner, &p("/db"));
                inner.cut_power();
                for img2 in inner.crash_images(&CrashModel::torn_512(), 3, j) {
                    restore_check(&fx, true)(
                        &img2,
                        &RestoreOutcome {
                            restored: false,
                            ..out
                        },
                    )
                    .unwrap_or_else(|e| panic!("k {k} j {j}: {e}"));
                    checked += 1;
                }
            }
        }
    }
    println!("checked {checked} crash images of a crash during recovery");
}

#[test]
fn an_io_error_at_any_sync_of_restore_leaves_the_old_state_recoverable() {
    let fx = fixture();
    let dry = SimFs::new();
    restore_scenario(&fx, true)(&dry);
    let syncs = dry.stats().file_syncs + dry.stats().dir_syncs;
    let mut failures = 0;
    for kind in [OpKind::SyncData, OpKind::SyncDir] {
        for n in 1..=syncs {
            let fs = SimFs::new();
            try_write_tree(&fs, &p("/db"), &fx.old).unwrap();
            put_file(&fs, &p("/s0.vsnap"), &fx.archives[0]).unwrap();
            put_file(&fs, &p("/s1.vsnap"), &fx.archives[1]).unwrap();
            fs.inject(FaultRule::nth_of(kind, n, Fault::Eio));
            let result = restore_chain(&fs, &[p("/s0.vsnap"), p("/s1.vsnap")], &p("/db"));
            fs.clear_faults();
            if result.is_err() {
                failures += 1;
            }
            // Whatever happened, a crash now and a recovery give old or new.
            let image = fs.crash_drop_unsynced();
            recover_swap(&image, &p("/db")).unwrap();
            let got = read_tree(&image, &p("/db")).unwrap();
            assert!(got == fx.old || got == fx.new, "{kind:?} #{n}: mix");
            if result.is_ok() {
                assert_eq!(got, fx.new, "{kind:?} #{n}: acknowledged but lost");
            }
        }
    }
    assert!(failures > 5, "the faults fired: {failures}");
}

#[derive(Debug, Clone, Default)]
struct ImportOutcome {
    acked: Vec<u64>,
    finished: bool,
}

#[test]
fn a_crash_during_import_keeps_every_acknowledged_chunk_and_never_publishes_a_partial_archive() {
    let src_fs = SimFs::new();
    let src = tree(&[("a", pattern(1, 9000)), ("b/c", pattern(2, 4000))]);
    write_tree(&src_fs, &p("/gen"), &src);
    let (mut chunks, summary) = chunks_of(&src_fs, &p("/gen"), &small_opts(3, 1), 4096);
    chunks.reverse();
    chunks.swap(0, 2);
    let scenario = |fs: &SimFs| {
        let mut out = ImportOutcome::default();
        // Sync every third chunk, so some receipts are pending and some durable.
        let opts = ImportOptions {
            sync_every_bytes: 3 * 4096,
            ..ImportOptions::default()
        };
        let Ok(mut rx) = ChunkReceiver::open(fs.shared(), &p("/in/staging"), opts) else {
            return out;
        };
        let mut pending = Vec::new();
        for c in &chunks {
            match rx.receive(c) {
                Ok(Receipt::Durable) => {
                    out.acked.append(&mut pending);
                    out.acked.push(c.seq);
                }
                Ok(_) => pending.push(c.seq),
                Err(_) => return out,
            }
        }
        out.finished = rx.finish(&p("/out.vsnap")).is_ok();
        out
    };
    let check = |image: &SimFs, out: &ImportOutcome| -> Result<(), String> {
        if image.exists(&p("/out.vsnap")).unwrap() {
            let f = image.open(&p("/out.vsnap")).unwrap();
            let info =
                verify_file(f.as_ref()).map_err(|e| format!("published archive is bad: {e}"))?;
            if info.archive_hash != summary.archive_hash {
                return Err("published a different archive".into());
            }
            if out.finished && image.exists(&p("/in/staging")).unwrap() {
                return Err("staging left after an acknowledged finish".into());
            }
            return Ok(());
        }
        if out.finished {
            return Err("finish returned Ok but the archive is not there".into());
        }
        let mut rx =
            ChunkReceiver::open(image.shared(), &p("/in/staging"), ImportOptions::default())
                .map_err(|e| format!("resume failed: {e}"))?;
        for c in &chunks {
            let receipt = rx
                .receive(c)
                .map_err(|e| format!("resend of {} refused: {e}", c.seq))?;
            if out.acked.contains(&c.seq) && receipt != Receipt::Duplicate {
                return Err(format!("acknowledged chunk {} was lost", c.seq));
            }
        }
        let info = rx
            .finish(&p("/out.vsnap"))
            .map_err(|e| format!("finish after resume: {e}"))?;
        if info.archive_hash != summary.archive_hash {
            return Err("resumed import produced another archive".into());
        }
        Ok(())
    };
    let harness = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 6,
        points: CrashPoints::EveryOp,
        seed: 0x1A,
    };
    let report = harness.run(scenario, check);
    println!("import: {report}");
    assert!(report.crash_points > 30, "{report}");
}

#[test]
fn an_io_error_while_receiving_stops_the_receiver_until_reopened() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(9));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(9, 1), 8192);
    let every_chunk = ImportOptions {
        sync_every_bytes: 0,
        ..ImportOptions::default()
    };
    let mut rx = ChunkReceiver::open(fs.shared(), &p("/staging"), every_chunk).unwrap();
    assert_eq!(rx.receive(&chunks[0]).unwrap(), Receipt::Durable);
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio));
    assert!(rx.receive(&chunks[1]).is_err());
    fs.clear_faults();
    let err = rx.receive(&chunks[2]).unwrap_err();
    assert!(matches!(err, Error::Fs(ref e) if e.is_poisoned()), "{err}");
    drop(rx);
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/staging"), ImportOptions::default()).unwrap();
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&p("/out.vsnap")).unwrap();
}

#[derive(Debug, Clone, Default)]
struct CatalogOutcome {
    /// The id sets after each step; `acked` of them were acknowledged.
    plan: Vec<BTreeSet<SnapshotId>>,
    acked: usize,
}

#[test]
fn a_crash_during_catalog_changes_leaves_an_acknowledged_or_the_next_catalog() {
    let src = SimFs::new();
    let g = [
        tree(&[("m", pattern(1, 3000)), ("v", pattern(2, 5000))]),
        tree(&[("m", pattern(3, 3000)), ("v", pattern(2, 5000))]),
        tree(&[
            ("m", pattern(4, 100)),
            ("v", pattern(2, 5000)),
            ("w", pattern(5, 10)),
        ]),
    ];
    let ids: Vec<SnapshotId> = (0..4).map(|i| SnapshotId::from_seed(100 + i)).collect();
    let scenario = |fs: &SimFs| {
        let mut out = CatalogOutcome::default();
        let mut set = BTreeSet::new();
        // Plan: create full0, inc1 on 0, inc2 on 1, full3, retain(1) -> {3}.
        for (i, id) in ids.iter().enumerate() {
            set.insert(*id);
            out.plan.push(set.clone());
            let _ = i;
        }
        out.plan.push([ids[3]].into_iter().collect());
        let run = |out: &mut CatalogOutcome| -> Result<()> {
            try_write_tree(fs, &p("/g0"), &g[0])?;
            try_write_tree(fs, &p("/g1"), &g[1])?;
            try_write_tree(fs, &p("/g2"), &g[2])?;
            let mut cat = Catalog::open(fs.shared(), &p("/cat"))?;
            let gens = [p("/g0"), p("/g1"), p("/g2"), p("/g0")];
            for (i, id) in ids.iter().enumerate() {
                let files = list_generation(fs, &gens[i])?;
                let mut opts = small_opts(100 + i as u64, 10 * (i as u64 + 1));
                opts.id = *id;
                if i == 1 || i == 2 {
                    opts.parent = Some(cat.parent_state(ids[i - 1])?);
                }
                cat.create(&files, &opts)?;
                out.acked += 1;
            }
            cat.retain(1)?;
            out.acked += 1;
            Ok(())
        };
        let _ = src.exists(Path::new("/"));
        let _ = run(&mut out);
        out
    };
    let check = |image: &SimFs, out: &CatalogOutcome| -> Result<(), String> {
        if !image.exists(&p("/cat")).unwrap() {
            return if out.acked == 0 {
                Ok(())
            } else {
                Err("catalog vanished".into())
            };
        }
        if out.acked == out.plan.len() {
            // Everything acknowledged, including the deletions by retention: no archive of a
            // deleted snapshot is left, even before open cleans up.
            let names = image.list_dir(&p("/cat")).unwrap();
            let last = &out.plan[out.plan.len() - 1];
            if names.len() != last.len() + 1 {
                return Err(format!("deleted archives survived: {names:?}"));
            }
        }
        let cat = Catalog::open(image.shared(), &p("/cat")).map_err(|e| format!("open: {e}"))?;
        let got: BTreeSet<SnapshotId> = cat.list().iter().map(|m| m.id).collect();
        let empty = BTreeSet::new();
        let last = if out.acked == 0 {
            &empty
        } else {
            &out.plan[out.acked - 1]
        };
        let next = out.plan.get(out.acked);
        if &got != last && Some(&got) != next {
            return Err(format!(
                "catalog holds {} snapshots, acked {}",
                got.len(),
                out.acked
            ));
        }
        for m in cat.list() {
            let f = image.open(&cat.archive_path(m.id)).unwrap();
            let info = verify_file(f.as_ref()).map_err(|e| format!("archive {}: {e}", m.id))?;
            if info.archive_hash != m.archive_hash {
                return Err("index and archive disagree".into());
            }
            cat.chain(m.id)
                .map_err(|e| format!("chain of {}: {e}", m.id))?;
        }
        // Orphan cleanup at open is durable.
        let again = image.crash_drop_unsynced();
        let names = again.list_dir(&p("/cat")).unwrap();
        let expected: BTreeSet<String> = got
            .iter()
            .map(|id| format!("{}.{ARCHIVE_EXT}", id.to_hex()))
            .chain(std::iter::once(INDEX_FILE.to_owned()))
            .collect();
        if names.iter().any(|n| !expected.contains(n)) {
            return Err(format!("orphans survive a crash after open: {names:?}"));
        }
        Ok(())
    };
    let harness = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 4,
        points: CrashPoints::AroundSyncs,
        seed: 0xCA7,
    };
    let report = harness.run(scenario, check);
    println!("catalog: {report}");
    assert!(report.crash_points > 20);
}

#[test]
fn an_aborted_import_is_gone_durably() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(9));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(9, 1), 8192);
    let mut rx =
        ChunkReceiver::open(fs.shared(), &p("/in/staging"), ImportOptions::default()).unwrap();
    for c in &chunks[..3] {
        rx.receive(c).unwrap();
    }
    rx.abort().unwrap();
    let image = fs.crash_drop_unsynced();
    assert!(!image.exists(&p("/in/staging")).unwrap());
}

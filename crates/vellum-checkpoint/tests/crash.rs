//! Crash tests: a power cut at every operation of a run of checkpoints (some carrying a file
//! an earlier generation wrote), every image reopened.
//! Properties of docs/PROPERTIES.md: P8 (atomic switch), P9 (nothing referenced before it is
//! durable), P14 (recovery idempotent, survives a crash during recovery), P15 (close is not a
//! sync).

use std::path::Path;

use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, FileSpec, LoadedGeneration};
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, CrashReport, Fs, SimFs, WriteSurvival};

const DIR: &str = "/db/checkpoints";
const GENERATIONS: u64 = 6;

/// The files generation `g` commits: contents depend on `g`, the set of files changes too.
fn expected(g: u64) -> Vec<(String, Vec<u8>, Codec)> {
    let body = |salt: u64, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u64).wrapping_mul(31) ^ salt.wrapping_mul(0x9E37)) as u8 % 7)
            .collect()
    };
    let mut files = vec![
        (
            "idmap".to_owned(),
            body(g, 1500 + 300 * g as usize),
            Codec::ZSTD,
        ),
        ("meta".to_owned(), g.to_le_bytes().to_vec(), Codec::None),
        // Loaded without its checksum checked: only the syncs keep its bytes right.
        ("run".to_owned(), body(g + 300, 1100), Codec::Mapped),
    ];
    if g % 2 == 1 {
        files.push(("extra.gz".to_owned(), body(g + 100, 700), Codec::GZIP));
    }
    // Written by every third generation and carried over by the two after it, so some
    // retained generations name a file an expired one wrote.
    let base = base_generation(g);
    files.push(("base".to_owned(), body(base + 200, 900), Codec::ZSTD));
    files
}

/// The generation that wrote the `base` file generation `g` holds.
fn base_generation(g: u64) -> u64 {
    g - (g - 1) % 3
}

fn lsn_of(g: u64) -> u64 {
    g * 10
}

fn commit(cp: &mut Checkpointer, g: u64) -> vellum_checkpoint::Result<()> {
    let files = expected(g);
    let carried = base_generation(g) != g;
    let specs: Vec<FileSpec<'_>> = files
        .iter()
        .filter(|(n, ..)| !(carried && n == "base"))
        .map(|(n, b, c)| FileSpec {
            name: n,
            bytes: b,
            codec: *c,
        })
        .collect();
    let carry: &[&str] = if carried { &["base"] } else { &[] };
    let info = cp.commit_carrying(lsn_of(g), format!("gen {g}").as_bytes(), &specs, carry)?;
    assert_eq!(info.generation, g);
    Ok(())
}

fn matches_expected(loaded: &LoadedGeneration) -> Result<(), String> {
    let g = loaded.generation();
    if loaded.wal_lsn() != lsn_of(g) || loaded.metadata() != format!("gen {g}").as_bytes() {
        return Err(format!("generation {g}: wrong LSN or metadata"));
    }
    let want = expected(g);
    if loaded.files.len() != want.len() {
        return Err(format!("generation {g}: {} files", loaded.files.len()));
    }
    for (name, bytes, _) in &want {
        if loaded.file(name) != Some(bytes.as_slice()) {
            return Err(format!("generation {g}: file {name} differs"));
        }
    }
    Ok(())
}

fn config() -> CheckpointConfig {
    CheckpointConfig {
        retain_generations: 2,
        ..CheckpointConfig::default()
    }
}

/// Commits generations 1..=GENERATIONS; returns how many were acknowledged.
fn scenario(fs: &SimFs) -> u64 {
    let Ok((mut cp, _)) = Checkpointer::open(fs.shared(), Path::new(DIR), config()) else {
        return 0;
    };
    let mut acked = 0;
    for g in 1..=GENERATIONS {
        if commit(&mut cp, g).is_err() {
            break;
        }
        acked = g;
    }
    acked
}

/// Reopens an image and checks: the old or the new generation, whole; every retained
/// generation intact; the WAL LSN the oldest retained generation needs is reported.
fn check(image: &SimFs, acked: u64) -> Result<u64, String> {
    let (cp, loaded) = Checkpointer::open(image.shared(), Path::new(DIR), config())
        .map_err(|e| format!("open failed: {e}"))?;
    let loaded_gen = loaded.as_ref().map_or(0, LoadedGeneration::generation);
    if loaded_gen != acked && loaded_gen != acked + 1 {
        return Err(format!(
            "loaded generation {loaded_gen}, acknowledged {acked}"
        ));
    }
    if let Some(l) = &loaded {
        matches_expected(l)?;
    }
    // The previous generation is retained and intact (its manifest copy and files were
    // durable before the current one was published).
    if loaded_gen >= 2 {
        let prev = cp
            .load_generation(loaded_gen - 1)
            .map_err(|e| format!("previous generation {} unreadable: {e}", loaded_gen - 1))?;
        matches_expected(&prev)?;
        if cp.oldest_retained_wal_lsn() != Some(lsn_of(loaded_gen - 1)) {
            return Err(format!(
                "oldest retained LSN {:?}, expected {}",
                cp.oldest_retained_wal_lsn(),
                lsn_of(loaded_gen - 1)
            ));
        }
    }
    Ok(loaded_gen)
}

fn check_image(image: &SimFs, acked: &u64) -> Result<(), String> {
    let first = check(image, *acked)?;
    // Reopening again gives the same generation (recovery is idempotent), and a checkpoint
    // after recovery works and survives a clean crash.
    let second = check(image, *acked)?;
    if first != second {
        return Err(format!("reopen gave {second} after {first}"));
    }
    let (mut cp, _) =
        Checkpointer::open(image.shared(), Path::new(DIR), config()).map_err(|e| e.to_string())?;
    commit(&mut cp, first + 1).map_err(|e| format!("commit after recovery: {e}"))?;
    drop(cp);
    let after = image.crash_drop_unsynced();
    let third = check(&after, first + 1)?;
    if third != first + 1 {
        return Err(format!(
            "committed {} after recovery, reopened {third}",
            first + 1
        ));
    }
    Ok(())
}

#[test]
fn a_crash_at_every_operation_of_a_checkpoint_leaves_the_old_or_the_new_generation() {
    let mut total = CrashReport::default();
    for (model, images) in [
        (CrashModel::torn_512(), 256),
        (
            CrashModel {
                writes: WriteSurvival::Prefix,
                ..CrashModel::torn_4k()
            },
            64,
        ),
        (CrashModel::drop_unsynced(), 1),
    ] {
        let report = CrashHarness {
            model,
            images_per_point: images,
            points: CrashPoints::EveryOp,
            seed: 0xC4EC,
        }
        .run(scenario, check_image);
        println!("checkpoint crash sweep ({model:?}): {report}");
        total.add(report);
    }
    println!("checkpoint crash images checked in all: {}", total.images);
    assert!(total.images > 5_000);
}

#[test]
fn a_crash_during_recovery_after_a_crashed_checkpoint_still_recovers() {
    // Crash checkpoint 3 after its second file, then crash the recovery (orphan removal) at
    // every operation: the next recovery still sees generation 2, intact.
    let base = SimFs::new();
    let (mut cp, _) = Checkpointer::open(base.shared(), Path::new(DIR), config()).unwrap();
    commit(&mut cp, 1).unwrap();
    commit(&mut cp, 2).unwrap();
    base.arm_fail_point(
        vellum_checkpoint::fail_points::AFTER_FILE,
        2,
        vellum_fs::FailAction::PowerCut,
    );
    assert!(commit(&mut cp, 3).is_err());
    drop(cp);
    let mut images = 0;
    let mut points = 0;
    for image in base.crash_images(&CrashModel::torn_512(), 16, 3) {
        // How many operations one recovery of this image takes.
        let probe = SimFs::new();
        copy_tree(&image, &probe);
        let before = probe.stats().ops;
        Checkpointer::open(probe.shared(), Path::new(DIR), config()).unwrap();
        let recovery_ops = probe.stats().ops - before;
        for k in 0..=recovery_ops {
            let fs = SimFs::new();
            copy_tree(&image, &fs);
            fs.cut_power_after(fs.stats().ops + k);
            let _ = Checkpointer::open(fs.shared(), Path::new(DIR), config());
            fs.cut_power();
            for img in fs.crash_images(&CrashModel::torn_512(), 8, k) {
                check(&img, 2).unwrap_or_else(|e| panic!("recovery crashed after {k} ops: {e}"));
                images += 1;
            }
            points += 1;
        }
    }
    println!("crash-during-recovery: checked {images} crash images at {points} crash points");
    assert!(images > 30);
}

/// Copies every file of `from` into `to`, durably (the starting state of a scenario).
fn copy_tree(from: &SimFs, to: &SimFs) {
    for path in from.all_paths() {
        if from.is_dir(&path).unwrap() {
            vellum_fs::create_dir_all_durable(to, &path).unwrap();
        } else {
            let bytes = from.read_file(&path).unwrap();
            let f = to.create(&path).unwrap();
            f.write_at(&bytes, 0).unwrap();
            f.sync_data().unwrap();
            to.sync_dir(vellum_fs::parent_dir(&path)).unwrap();
        }
    }
}

//! Behaviour of checkpoints: codecs, retention (regression R4, docs/PROPERTIES.md), damage and fallback,
//! decompression bounds, orphans, fail-stop, and the same scenario on the real file system.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use vellum_checkpoint::{
    CheckpointConfig, CheckpointFileName, Checkpointer, Codec, Error, FileEntry, FileSpec,
    LoadOptions, Manifest, data_file_name, manifest_file_name,
};
use vellum_fs::{DynFs, FailAction, Fault, FaultRule, Fs, OpKind, RealFs, SimFs};

const DIR: &str = "/ck";

fn open(fs: &SimFs, retain: u32) -> (Checkpointer, Option<vellum_checkpoint::LoadedGeneration>) {
    Checkpointer::open(
        fs.shared(),
        Path::new(DIR),
        CheckpointConfig {
            retain_generations: retain,
            ..CheckpointConfig::default()
        },
    )
    .unwrap()
}

fn one(cp: &mut Checkpointer, lsn: u64, body: &[u8]) -> vellum_checkpoint::CommitInfo {
    cp.commit(
        lsn,
        b"",
        &[FileSpec {
            name: "state",
            bytes: body,
            codec: Codec::ZSTD,
        }],
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn every_codec_round_trips_any_contents(
        a in proptest::collection::vec(any::<u8>(), 0..5000),
        b in proptest::collection::vec(0u8..4, 0..20000),
        level in 1i32..=19,
    ) {
        let fs = SimFs::new();
        let (mut cp, _) = open(&fs, 2);
        let specs = [
            FileSpec { name: "raw", bytes: &a, codec: Codec::None },
            FileSpec { name: "z", bytes: &b, codec: Codec::Zstd { level } },
            FileSpec { name: "g", bytes: &a, codec: Codec::Gzip { level: 9 } },
            FileSpec { name: "gb", bytes: &b, codec: Codec::GZIP },
            FileSpec { name: "m", bytes: &b, codec: Codec::Mapped },
        ];
        cp.commit(5, b"m", &specs).unwrap();
        let (_, loaded) = open(&fs.crash_drop_unsynced(), 2);
        let loaded = loaded.unwrap();
        prop_assert_eq!(loaded.file("raw"), Some(&a[..]));
        prop_assert_eq!(loaded.file("z"), Some(&b[..]));
        prop_assert_eq!(loaded.file("g"), Some(&a[..]));
        prop_assert_eq!(loaded.file("gb"), Some(&b[..]));
        prop_assert_eq!(loaded.file("m"), Some(&b[..]));
    }
}

#[test]
fn retention_keeps_n_generations_and_reports_the_wal_they_need() {
    // Regression R4: a retained checkpoint is useless without the WAL that rolls it forward,
    // so the oldest retained generation's LSN is what bounds WAL truncation.
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 3);
    let mut info = None;
    for g in 1..=5u64 {
        info = Some(one(&mut cp, g * 100, &[g as u8; 64]));
    }
    let info = info.unwrap();
    assert_eq!(info.generation, 5);
    assert_eq!(info.oldest_retained_generation, 3);
    assert_eq!(info.oldest_retained_wal_lsn, 300);
    assert_eq!(cp.retained_generations(), vec![3, 4, 5]);
    let names = fs.list_dir(Path::new(DIR)).unwrap();
    for g in [1u64, 2] {
        assert!(!names.contains(&manifest_file_name(g)));
        assert!(!names.contains(&data_file_name(g, "state")));
    }
    drop(cp);
    let (cp, loaded) = open(&fs.crash_drop_unsynced(), 3);
    assert_eq!(loaded.unwrap().generation(), 5);
    assert_eq!(cp.retained_generations(), vec![3, 4, 5]);
    assert_eq!(cp.oldest_retained_wal_lsn(), Some(300));
    for g in 3..=5u64 {
        assert_eq!(
            cp.load_generation(g).unwrap().file("state"),
            Some(&[g as u8; 64][..])
        );
    }
    let stats = cp.stats().unwrap();
    assert_eq!(stats.generation, 5);
    assert_eq!(stats.wal_lsn, 500);
    assert_eq!(stats.raw_bytes_total, 64);
    assert!(
        stats.stored_bytes_total < 64,
        "zstd compresses a run of one byte"
    );
    assert_eq!(stats.oldest_retained_wal_lsn, 300);
}

#[test]
fn a_short_file_in_the_current_generation_is_a_clear_error_and_fallback_opens_the_previous() {
    // Property P9: the manifest is durable but the file's growth is not (shortened here on purpose).
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    one(&mut cp, 10, &[1; 3000]);
    cp.commit(
        20,
        b"",
        &[FileSpec {
            name: "state",
            bytes: &[2; 3000],
            codec: Codec::None,
        }],
    )
    .unwrap();
    drop(cp);
    let target = Path::new(DIR).join(data_file_name(2, "state"));
    assert!(fs.exists(&target).unwrap(), "the file to damage exists");
    fs.tamper(&target, |b| b.truncate(1024)).unwrap();
    let err =
        Checkpointer::open(fs.shared(), Path::new(DIR), CheckpointConfig::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::CurrentDamaged {
                generation: Some(2),
                previous: Some(1),
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("data-0000000000000002-state"), "{text}");
    assert!(text.contains("1024 bytes"), "{text}");
    let (mut cp, loaded) = Checkpointer::open_with(
        fs.shared(),
        Path::new(DIR),
        CheckpointConfig::default(),
        LoadOptions {
            fallback_to_previous: true,
        },
    )
    .unwrap();
    let loaded = loaded.unwrap();
    assert_eq!(loaded.generation(), 1);
    assert_eq!(loaded.fell_back_from, Some(Some(2)));
    assert_eq!(loaded.file("state"), Some(&[1; 3000][..]));
    assert_eq!(cp.oldest_retained_wal_lsn(), Some(10));
    // The next checkpoint is numbered past the damaged one and retention removes it.
    let info = one(&mut cp, 30, &[3; 10]);
    assert_eq!(info.generation, 3);
    let names = fs.list_dir(Path::new(DIR)).unwrap();
    assert!(!names.contains(&data_file_name(2, "state")), "{names:?}");
    drop(cp);
    let (_, loaded) = open(&fs.crash_drop_unsynced(), 2);
    assert_eq!(loaded.unwrap().generation(), 3);
}

#[test]
fn a_flipped_bit_in_any_checkpoint_file_is_detected() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    let body: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    for codec in [Codec::None, Codec::ZSTD, Codec::GZIP] {
        cp.commit(
            1,
            b"",
            &[FileSpec {
                name: "f",
                bytes: &body,
                codec,
            }],
        )
        .unwrap();
    }
    drop(cp);
    let generation = 3u64;
    for target in [data_file_name(generation, "f"), "CURRENT".to_owned()] {
        let path = Path::new(DIR).join(&target);
        let len = fs.read_file(&path).unwrap().len();
        for pos in (0..len).step_by(len / 37 + 1) {
            let img = fs.crash_drop_unsynced();
            img.tamper(&path, |b| b[pos] ^= 0x10).unwrap();
            let err = Checkpointer::open(img.shared(), Path::new(DIR), CheckpointConfig::default())
                .unwrap_err();
            assert!(
                matches!(err, Error::CurrentDamaged { .. }),
                "{target}@{pos}: {err}"
            );
            let (_, loaded) = Checkpointer::open_with(
                img.shared(),
                Path::new(DIR),
                CheckpointConfig::default(),
                LoadOptions {
                    fallback_to_previous: true,
                },
            )
            .unwrap();
            let loaded = loaded.unwrap();
            assert_eq!(loaded.file("f"), Some(&body[..]));
            assert!(loaded.generation() < 3 || target == "CURRENT");
        }
    }
}

#[test]
fn a_mapped_file_opens_with_its_length_checked_and_verify_file_finds_a_flipped_bit() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    let body: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    cp.commit(1, b"", &[spec_with("run", &body, Codec::Mapped)])
        .unwrap();
    assert_eq!(cp.verify_file("run").unwrap(), Some(()));
    assert_eq!(cp.verify_file("absent").unwrap(), None);
    drop(cp);
    let path = Path::new(DIR).join(data_file_name(1, "run"));

    let flipped = fs.crash_drop_unsynced();
    flipped.tamper(&path, |b| b[1234] ^= 0x10).unwrap();
    let (cp, loaded) = open(&flipped, 2);
    // Open does not read the bytes: the caller's records carry their own checksums.
    assert_eq!(
        loaded.unwrap().file("run").unwrap()[1234],
        body[1234] ^ 0x10
    );
    let err = cp.verify_file("run").unwrap_err();
    assert!(
        err.to_string().contains(&data_file_name(1, "run")) && err.to_string().contains("checksum"),
        "{err}"
    );

    let short = fs.crash_drop_unsynced();
    short.tamper(&path, |b| b.truncate(3999)).unwrap();
    let err = Checkpointer::open(short.shared(), Path::new(DIR), CheckpointConfig::default())
        .unwrap_err();
    assert!(matches!(err, Error::CurrentDamaged { .. }), "{err}");
}

fn spec_with<'a>(name: &'a str, bytes: &'a [u8], codec: Codec) -> FileSpec<'a> {
    FileSpec { name, bytes, codec }
}

#[test]
fn a_stream_that_decodes_past_the_recorded_length_is_refused() {
    // A decompression bomb: 64 MiB of zeros compresses to a few KiB; a manifest claiming
    // 100 bytes must make the loader stop after 101.
    let fs = SimFs::new();
    vellum_fs::create_dir_all_durable(&fs, Path::new(DIR)).unwrap();
    let bomb = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap();
    assert!(bomb.len() < 1 << 16);
    let name = Path::new(DIR).join(data_file_name(1, "bomb"));
    let f = fs.create(&name).unwrap();
    f.write_at(&bomb, 0).unwrap();
    f.sync_data().unwrap();
    let manifest = Manifest {
        generation: 1,
        wal_lsn: 0,
        metadata: vec![],
        files: vec![FileEntry {
            name: "bomb".into(),
            codec: Codec::ZSTD,
            raw_len_bytes: 100,
            raw_crc32: 0,
            stored_len_bytes: bomb.len() as u64,
            stored_crc32: crc32fast::hash(&bomb),
            origin_generation: 1,
        }],
    };
    vellum_fs::atomic_replace(&fs, &Path::new(DIR).join("CURRENT"), &manifest.encode()).unwrap();
    let err =
        Checkpointer::open(fs.shared(), Path::new(DIR), CheckpointConfig::default()).unwrap_err();
    assert!(err.to_string().contains("decodes to 101+ bytes"), "{err}");
}

#[test]
fn files_of_a_checkpoint_that_crashed_before_publishing_are_removed_on_open() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    one(&mut cp, 1, b"one");
    fs.arm_fail_point(
        vellum_checkpoint::fail_points::BEFORE_PUBLISH,
        1,
        FailAction::PowerCut,
    );
    assert!(
        cp.commit(
            2,
            b"",
            &[FileSpec {
                name: "state",
                bytes: b"two",
                codec: Codec::None
            }]
        )
        .is_err()
    );
    drop(cp);
    let img = fs
        .crash_images(&vellum_fs::CrashModel::torn_512(), 1, 0)
        .next()
        .unwrap();
    let before = img.list_dir(Path::new(DIR)).unwrap();
    assert!(before.contains(&manifest_file_name(2)), "{before:?}");
    let (_, loaded) = open(&img, 2);
    assert_eq!(loaded.unwrap().file("state"), Some(&b"one"[..]));
    let after = img.list_dir(Path::new(DIR)).unwrap();
    assert_eq!(
        after,
        vec![
            "CURRENT".to_owned(),
            data_file_name(1, "state"),
            manifest_file_name(1)
        ]
    );
}

#[test]
fn a_failed_sync_stops_the_checkpointer_and_reopen_recovers_the_previous_generation() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    one(&mut cp, 1, b"one");
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio));
    assert!(
        cp.commit(
            2,
            b"",
            &[FileSpec {
                name: "state",
                bytes: b"two",
                codec: Codec::None
            }]
        )
        .is_err()
    );
    let again = cp
        .commit(
            3,
            b"",
            &[FileSpec {
                name: "state",
                bytes: b"three",
                codec: Codec::None,
            }],
        )
        .unwrap_err();
    assert!(again.to_string().contains("reopen"), "{again}");
    drop(cp);
    fs.clear_faults();
    let (_, loaded) = open(&fs.crash_drop_unsynced(), 2);
    assert_eq!(loaded.unwrap().file("state"), Some(&b"one"[..]));
}

#[test]
fn requests_that_break_the_rules_are_refused_before_writing() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    one(&mut cp, 50, b"x");
    let bad_name = cp.commit(
        60,
        b"",
        &[FileSpec {
            name: "../x",
            bytes: b"",
            codec: Codec::None,
        }],
    );
    assert!(matches!(bad_name, Err(Error::InvalidRequest { .. })));
    let dup = cp.commit(
        60,
        b"",
        &[
            FileSpec {
                name: "a",
                bytes: b"",
                codec: Codec::None,
            },
            FileSpec {
                name: "a",
                bytes: b"",
                codec: Codec::None,
            },
        ],
    );
    assert!(matches!(dup, Err(Error::InvalidRequest { .. })));
    let back = cp.commit(40, b"", &[]);
    assert!(matches!(
        back,
        Err(Error::LsnBackwards {
            current: 50,
            requested: 40,
            ..
        })
    ));
    let level = cp.commit(
        60,
        b"",
        &[FileSpec {
            name: "a",
            bytes: b"",
            codec: Codec::Zstd { level: 22 },
        }],
    );
    assert!(matches!(level, Err(Error::InvalidConfig { .. })));
    // Still healthy: refusals are not I/O failures.
    one(&mut cp, 60, b"y");
    assert_eq!(cp.current_generation(), Some(2));
}

#[test]
fn the_same_checkpoints_work_on_the_real_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: DynFs = Arc::new(RealFs::new());
    let dir = tmp.path().join("ck");
    let cfg = CheckpointConfig::default();
    let (mut cp, loaded) = Checkpointer::open(fs.clone(), &dir, cfg).unwrap();
    assert!(loaded.is_none());
    for g in 1..=3u64 {
        cp.commit(
            g,
            b"meta",
            &[FileSpec {
                name: "state",
                bytes: &vec![g as u8; 10_000],
                codec: Codec::ZSTD,
            }],
        )
        .unwrap();
    }
    drop(cp);
    let (cp, loaded) = Checkpointer::open(fs.clone(), &dir, cfg).unwrap();
    let loaded = loaded.unwrap();
    assert_eq!(loaded.generation(), 3);
    assert_eq!(loaded.file("state"), Some(&vec![3u8; 10_000][..]));
    assert_eq!(cp.retained_generations(), vec![2, 3]);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
}

#[test]
fn the_current_generation_files_are_exactly_what_a_single_retained_generation_leaves() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 1);
    assert!(cp.current_generation_files().is_empty());
    for g in 1..=3u64 {
        cp.commit(
            g,
            b"",
            &[
                FileSpec {
                    name: "state",
                    bytes: &[g as u8; 64],
                    codec: Codec::ZSTD,
                },
                FileSpec {
                    name: "raw.bin",
                    bytes: b"raw",
                    codec: Codec::None,
                },
            ],
        )
        .unwrap();
    }
    let files = cp.current_generation_files();
    assert_eq!(
        files,
        [
            "CURRENT".to_owned(),
            manifest_file_name(3),
            data_file_name(3, "state"),
            data_file_name(3, "raw.bin"),
        ]
    );
    let mut on_disk = fs.list_dir(Path::new(DIR)).unwrap();
    on_disk.sort();
    let mut listed = files.clone();
    listed.sort();
    assert_eq!(on_disk, listed);
    for name in &files {
        let parsed = CheckpointFileName::parse(name).unwrap();
        assert!(parsed.generation().is_none_or(|g| g == 3), "{name}");
    }
}

fn spec<'a>(name: &'a str, bytes: &'a [u8]) -> FileSpec<'a> {
    FileSpec {
        name,
        bytes,
        codec: Codec::ZSTD,
    }
}

#[test]
fn a_carried_file_is_not_written_again_and_outlives_the_generation_that_wrote_it() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    let base: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    cp.commit(1, b"", &[spec("base", &base), spec("delta", b"d1")])
        .unwrap();
    let written_before = fs.stats().bytes_written;
    for g in 2..=5u64 {
        let delta = format!("d{g}");
        cp.commit_carrying(g, b"", &[spec("delta", delta.as_bytes())], &["base"])
            .unwrap();
    }
    let manifest = cp.current().unwrap();
    assert_eq!(manifest.generation, 5);
    assert_eq!(manifest.file("base").unwrap().origin_generation, 1);
    assert_eq!(manifest.file("delta").unwrap().origin_generation, 5);
    // Generation 1 left the window long ago; its base file stays, its other files go.
    let mut on_disk = fs.list_dir(Path::new(DIR)).unwrap();
    on_disk.sort();
    assert!(on_disk.contains(&data_file_name(1, "base")), "{on_disk:?}");
    assert!(
        !on_disk.contains(&data_file_name(1, "delta")),
        "{on_disk:?}"
    );
    assert!(!on_disk.contains(&manifest_file_name(1)), "{on_disk:?}");
    let mut listed = cp.current_generation_files();
    assert!(listed.contains(&data_file_name(1, "base")), "{listed:?}");
    // Carrying wrote small files and manifests, never the (incompressible-sized) base again:
    // four commits wrote less than one copy of it.
    let written = fs.stats().bytes_written - written_before;
    assert!(
        written < 4 * 400,
        "{written} bytes for four carrying commits"
    );
    drop(cp);
    // Reopen: the carried file loads (verified), and the open removes nothing it names;
    // the previous generation (4) loads too.
    let (cp, loaded) = open(&fs, 2);
    let loaded = loaded.unwrap();
    assert_eq!(loaded.file("base"), Some(&base[..]));
    assert_eq!(loaded.file("delta"), Some(&b"d5"[..]));
    assert_eq!(cp.load_generation(4).unwrap().file("base"), Some(&base[..]));
    let mut again = fs.list_dir(Path::new(DIR)).unwrap();
    again.sort();
    assert_eq!(again, on_disk);
    // The next full write of the base lets the old one go once no retained generation
    // names it.
    let mut cp = cp;
    let base2 = vec![9u8; 4096];
    cp.commit(6, b"", &[spec("base", &base2), spec("delta", b"")])
        .unwrap();
    assert!(
        fs.exists(&Path::new(DIR).join(data_file_name(1, "base")))
            .unwrap()
    );
    cp.commit_carrying(7, b"", &[spec("delta", b"d7")], &["base"])
        .unwrap();
    assert!(
        !fs.exists(&Path::new(DIR).join(data_file_name(1, "base")))
            .unwrap()
    );
    listed = cp.current_generation_files();
    listed.sort();
    assert!(listed.contains(&data_file_name(6, "base")), "{listed:?}");
}

#[test]
fn carrying_a_file_the_current_generation_lacks_is_refused() {
    let fs = SimFs::new();
    let (mut cp, _) = open(&fs, 2);
    let err = cp.commit_carrying(1, b"", &[], &["base"]).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
    cp.commit(1, b"", &[spec("base", b"b")]).unwrap();
    let err = cp
        .commit_carrying(2, b"", &[spec("base", b"c")], &["base"])
        .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    // Refusals stop nothing: the next commit goes through.
    cp.commit_carrying(2, b"", &[], &["base"]).unwrap();
}

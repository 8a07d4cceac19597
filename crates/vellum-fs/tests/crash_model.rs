//! The crash model: every image the simulator produces is reachable under the documented
//! model (durable data always present; nothing appears that was never written; a synced
//! file survives whole), and for short histories the enumeration is complete.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::read_all;
use proptest::prelude::*;
use vellum_fs::{CrashModel, DirSurvival, Fs, SimFs, WriteSurvival, create_dir_all_durable};

const FILES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Write { file: usize, offset: u16, len: u16 },
    Append { file: usize, len: u16 },
    SetLen { file: usize, len: u16 },
    Sync(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..FILES, 0u16..6000, 1u16..2500).prop_map(|(file, offset, len)| Op::Write { file, offset, len }),
        2 => (0..FILES, 1u16..2500).prop_map(|(file, len)| Op::Append { file, len }),
        1 => (0..FILES, 0u16..7000).prop_map(|(file, len)| Op::SetLen { file, len }),
        2 => (0..FILES).prop_map(Op::Sync),
    ]
}

/// Per file: bytes at the last sync, and what may have happened since.
#[derive(Debug, Clone, Default)]
struct FileModel {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// (offset, len, byte) of each write since the last sync.
    writes: Vec<(u64, u64, u8)>,
    /// Lengths set since the last sync.
    set_lens: Vec<u64>,
}

fn path(i: usize) -> PathBuf {
    PathBuf::from(format!("/d/f{i}"))
}

fn check_image(image: &SimFs, models: &[FileModel], model: &CrashModel) -> Result<(), String> {
    for (i, m) in models.iter().enumerate() {
        let got = read_all(image, &path(i))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("f{i}: durable file vanished"))?;
        let unsynced = !m.writes.is_empty() || !m.set_lens.is_empty();
        if !unsynced || model.writes == WriteSurvival::DropAll {
            if got != m.durable {
                return Err(format!(
                    "f{i}: synced contents changed ({} vs {} bytes)",
                    got.len(),
                    m.durable.len()
                ));
            }
            continue;
        }
        let max_len = m
            .writes
            .iter()
            .map(|(o, l, _)| o + l)
            .chain(m.set_lens.iter().copied())
            .chain([m.durable.len() as u64])
            .max()
            .unwrap_or(0);
        if got.len() as u64 > max_len {
            return Err(format!(
                "f{i}: length {} beyond anything written ({max_len})",
                got.len()
            ));
        }
        if m.set_lens.is_empty() && got.len() < m.durable.len() {
            return Err(format!(
                "f{i}: shorter ({}) than its durable length {}",
                got.len(),
                m.durable.len()
            ));
        }
        let min_set = m.set_lens.iter().copied().min();
        for (p, &b) in got.iter().enumerate() {
            let p = p as u64;
            let touched_by_write = m.writes.iter().any(|(o, l, _)| p >= *o && p < o + l);
            let cut = min_set.is_some_and(|s| p >= s);
            let durable = m.durable.get(p as usize).copied();
            if !touched_by_write && !cut {
                // Durable data is always present where nothing unsynced touched it.
                if let Some(d) = durable {
                    if b != d {
                        return Err(format!("f{i}: durable byte at {p} changed from {d} to {b}"));
                    }
                    continue;
                }
            }
            // Otherwise the byte must come from somewhere: the durable bytes, a write
            // covering it, or zero fill.
            let from_write = m
                .writes
                .iter()
                .any(|(o, l, w)| p >= *o && p < o + l && *w == b);
            if !(from_write || b == 0 || durable == Some(b)) {
                return Err(format!("f{i}: byte {b} at {p} was never written there"));
            }
        }
    }
    Ok(())
}

fn run_sequence(ops: &[Op], model: CrashModel, seed: u64) -> Result<usize, String> {
    let fs = SimFs::new();
    create_dir_all_durable(&fs, Path::new("/d")).unwrap();
    let mut models = vec![FileModel::default(); FILES];
    let files: Vec<_> = (0..FILES).map(|i| fs.create(&path(i)).unwrap()).collect();
    fs.sync_dir(Path::new("/d")).unwrap();
    let mut next_byte = 1u8;
    for op in ops {
        match op {
            Op::Write { file, offset, len } => {
                let (o, l) = (u64::from(*offset), u64::from(*len));
                files[*file]
                    .write_at(&vec![next_byte; *len as usize], o)
                    .unwrap();
                let m = &mut models[*file];
                if m.live.len() < (o + l) as usize {
                    m.live.resize((o + l) as usize, 0);
                }
                m.live[o as usize..(o + l) as usize].fill(next_byte);
                m.writes.push((o, l, next_byte));
            }
            Op::Append { file, len } => {
                let o = files[*file]
                    .append(&vec![next_byte; *len as usize])
                    .unwrap();
                let l = u64::from(*len);
                let m = &mut models[*file];
                assert_eq!(o, m.live.len() as u64, "append offset");
                m.live.resize((o + l) as usize, next_byte);
                m.writes.push((o, l, next_byte));
            }
            Op::SetLen { file, len } => {
                files[*file].set_len(u64::from(*len)).unwrap();
                let m = &mut models[*file];
                m.live.resize(*len as usize, 0);
                m.set_lens.push(u64::from(*len));
            }
            Op::Sync(file) => {
                files[*file].sync_data().unwrap();
                let m = &mut models[*file];
                m.durable = m.live.clone();
                m.writes.clear();
                m.set_lens.clear();
            }
        }
        next_byte = next_byte % 250 + 1;
    }
    fs.cut_power();
    let mut checked = 0;
    for image in fs.crash_images(&model, 48, seed) {
        check_image(&image, &models, &model)?;
        checked += 1;
    }
    Ok(checked)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_crash_image_is_reachable_under_the_model(
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<u64>(),
    ) {
        let mut images = 0;
        for model in [CrashModel::drop_unsynced(), CrashModel::any_subset(), CrashModel::torn_512(), CrashModel::torn_4k(),
                      CrashModel { writes: WriteSurvival::Prefix, ..CrashModel::torn_512() }] {
            images += run_sequence(&ops, model, seed).map_err(TestCaseError::fail)?;
        }
        prop_assert!(images > 0);
    }
}

#[test]
fn short_histories_enumerate_every_combination_of_unsynced_sectors() {
    let fs = SimFs::new();
    let file = fs.create(Path::new("/f")).unwrap();
    file.write_at(&[1; 1024], 0).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    // Two unsynced writes: one spanning two 512-byte sectors, one in a third sector.
    file.write_at(&[2; 1024], 0).unwrap();
    file.write_at(&[3; 512], 1024).unwrap();
    fs.cut_power();
    let images = fs.crash_images(&CrashModel::torn_512(), 1 << 10, 0);
    assert_eq!(images.pieces(), 3);
    assert_eq!(images.total(), 8);
    let mut seen = BTreeSet::new();
    for image in images {
        let bytes = read_all(&image, Path::new("/f")).unwrap().unwrap();
        let sectors: Vec<u8> = bytes.chunks(512).map(|c| c[0]).collect();
        seen.insert(sectors);
    }
    let expected: BTreeSet<Vec<u8>> = [
        vec![1, 1],
        vec![2, 1],
        vec![1, 2],
        vec![2, 2],
        vec![1, 1, 3],
        vec![2, 1, 3],
        vec![1, 2, 3],
        vec![2, 2, 3],
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
}

#[test]
fn unsynced_directory_operations_may_be_lost_but_renames_stay_whole() {
    let fs = SimFs::new();
    create_dir_all_durable(&fs, Path::new("/d")).unwrap();
    let a = fs.create(Path::new("/d/a")).unwrap();
    a.write_at(b"A", 0).unwrap();
    a.sync_data().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    // Pending: create b, rename a -> c.
    let b = fs.create(Path::new("/d/b")).unwrap();
    b.sync_data().unwrap();
    fs.rename(Path::new("/d/a"), Path::new("/d/c")).unwrap();
    fs.cut_power();
    let model = CrashModel {
        dir_ops: DirSurvival::AnySubset,
        ..CrashModel::drop_unsynced()
    };
    let mut seen = BTreeSet::new();
    for image in fs.crash_images(&model, 64, 0) {
        let names = image.list_dir(Path::new("/d")).unwrap();
        let a_or_c = names.iter().filter(|n| *n == "a" || *n == "c").count();
        assert_eq!(
            a_or_c, 1,
            "the renamed file must be under exactly one name: {names:?}"
        );
        seen.insert(names);
    }
    assert_eq!(
        seen.len(),
        4,
        "all four combinations of the two pending operations: {seen:?}"
    );
    // With the directory synced, nothing is lost.
    let fs2 = SimFs::new();
    create_dir_all_durable(&fs2, Path::new("/d")).unwrap();
    fs2.create(Path::new("/d/x")).unwrap();
    fs2.sync_dir(Path::new("/d")).unwrap();
    fs2.cut_power();
    for image in fs2.crash_images(&CrashModel::torn_512(), 64, 0) {
        assert_eq!(
            image.list_dir(Path::new("/d")).unwrap(),
            vec!["x".to_owned()]
        );
    }
}

#[test]
fn a_file_created_in_an_unsynced_directory_can_vanish() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/new/deep")).unwrap();
    let f = fs.create(Path::new("/new/deep/file")).unwrap();
    f.write_at(b"data", 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(Path::new("/new/deep")).unwrap();
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    assert!(
        !image.exists(Path::new("/new")).unwrap(),
        "/new was never synced into /"
    );
}

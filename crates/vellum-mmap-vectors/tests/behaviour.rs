//! Behaviour of the store: typed errors, torn-page detection, idempotent replay,
//! copy-on-write, regressions R6 and R7 (docs/PROPERTIES.md), and the real file system.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use vellum_checkpoint::{Checkpointer, data_file_name};
use vellum_fs::{DynFs, Fs, RealFs, SimFs};
use vellum_mmap_vectors::segment::{HEADER_BYTES, segment_file_name};
use vellum_mmap_vectors::{Error, HeaderError, StoreConfig, VectorStore, is_segment_file_name};

fn seg_path(i: u32) -> std::path::PathBuf {
    Path::new(STORE_DIR).join(segment_file_name(i))
}

#[test]
fn get_returns_what_was_stored_and_len_contains_iter_agree() {
    let fs = SimFs::new();
    let (_cp, mut store, _) = open(&fs).unwrap();
    let mut model = Model::new();
    for id in 0..25u64 {
        store.upsert(id * 3, &vector(id, 0)).unwrap();
        model.insert(id * 3, vector(id, 0));
    }
    assert!(store.delete(9).unwrap());
    assert!(!store.delete(9).unwrap());
    model.remove(&9);
    same_as(&store, &model).unwrap();
    assert!(store.contains(3) && !store.contains(9) && !store.contains(4));
    assert_eq!(store.get(4).unwrap(), None);
    let mut seen: Vec<u64> = store.iter().map(|r| r.unwrap().0).collect();
    seen.sort_unstable();
    assert_eq!(seen, model.keys().copied().collect::<Vec<_>>());
    // Slices are f32-aligned views of the map, and several can be held at once.
    let a = store.get(0).unwrap().unwrap();
    let b = store.get(3).unwrap().unwrap();
    assert_eq!(a.as_ptr() as usize % 64, 0, "slots are 64-byte aligned");
    assert_ne!(a.as_ptr(), b.as_ptr());
    assert_eq!(store.stats().segments, 7, "25 vectors in segments of 4");
}

#[test]
fn a_vector_of_the_wrong_dimension_is_refused_with_a_typed_error() {
    let fs = SimFs::new();
    let (_cp, mut store, _) = open(&fs).unwrap();
    let err = store.upsert(7, &[1.0, 2.0]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DimensionMismatch {
                id: 7,
                expected: 4,
                found: 2
            }
        ),
        "{err}"
    );
    let err = store
        .upsert_batch([(1, &[0.0f32; 4][..]), (2, &[0.0f32; 5][..])])
        .unwrap_err();
    assert!(matches!(err, Error::DimensionMismatch { id: 2, .. }));
    assert!(store.is_empty(), "a batch with a bad vector writes nothing");
}

#[test]
fn reopening_with_another_dimension_names_the_checkpoint_file() {
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    store.upsert(1, &vector(1, 0)).unwrap();
    store.checkpoint(&mut cp, 1, b"").unwrap();
    drop((cp, store));
    let (cp, loaded) = Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config()).unwrap();
    let err = VectorStore::open_from(
        fs.shared(),
        Path::new(STORE_DIR),
        StoreConfig {
            slots_per_segment: 4,
            ..StoreConfig::new(8)
        },
        &cp,
        loaded.as_ref(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigMismatch {
                field: "dimension",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("vectors.meta"), "{err}");
}

/// Checkpoints one vector, damages segment 0 with `damage`, and returns the open error.
fn open_after_damage(damage: impl FnOnce(&mut Vec<u8>)) -> Error {
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    store.upsert(1, &vector(1, 0)).unwrap();
    store.checkpoint(&mut cp, 1, b"").unwrap();
    drop((cp, store));
    assert!(
        fs.exists(&seg_path(0)).unwrap(),
        "the segment to damage exists"
    );
    fs.tamper(&seg_path(0), damage).unwrap();
    let (cp, loaded) = Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config()).unwrap();
    VectorStore::open_from(
        fs.shared(),
        Path::new(STORE_DIR),
        store_config(),
        &cp,
        loaded.as_ref(),
    )
    .unwrap_err()
}

#[test]
fn a_segment_of_the_wrong_size_is_a_typed_error_naming_the_file() {
    let err = open_after_damage(|b| b.truncate(b.len() - 64));
    assert!(matches!(err, Error::SegmentSize { .. }), "{err}");
    assert!(err.to_string().contains("segment-00000000.vec"), "{err}");
}

#[test]
fn a_segment_of_an_unknown_version_or_element_type_is_a_typed_error() {
    let err = open_after_damage(|b| {
        b[8] = 9; // version
        let crc = crc32fast::hash(&b[..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
    });
    assert!(
        matches!(
            err,
            Error::SegmentHeader {
                detail: HeaderError::UnsupportedVersion { version: 9 },
                ..
            }
        ),
        "{err}"
    );
    let err = open_after_damage(|b| {
        b[12] = 2; // f16: reserved, not implemented
        let crc = crc32fast::hash(&b[..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
    });
    assert!(
        matches!(
            err,
            Error::SegmentHeader {
                detail: HeaderError::UnknownElementType { id: 2 },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("segment-00000000.vec"), "{err}");
    let err = open_after_damage(|b| b[20] ^= 1);
    assert!(
        matches!(
            err,
            Error::SegmentHeader {
                detail: HeaderError::ChecksumMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_torn_slot_is_detected_by_get_and_verify_and_never_served() {
    // Property P11: a slot of the checkpoint whose bytes changed on disk (a torn or rotted page).
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    for id in 0..4u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    drop((cp, store));
    let image = fs.crash_drop_unsynced();
    // Tear the second half of slot 2 (each slot is 64 bytes here): zeros, as a lost sector.
    image
        .tamper(&seg_path(0), |b| {
            let start = HEADER_BYTES + 2 * 64 + 8;
            b[start..start + 8].fill(0);
        })
        .unwrap();
    let (_, store, _) = open(&image).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.checked, 4);
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let bad = report.damaged[0].id;
    let err = store.get(bad).unwrap_err();
    assert!(matches!(err, Error::SlotCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("segment-00000000.vec"), "{err}");
    for id in (0..4u64).filter(|&i| i != bad) {
        assert_eq!(store.get(id).unwrap().unwrap(), vector(id, 0).as_slice());
    }
    let iter_errors = store.iter().filter(|r| r.is_err()).count();
    assert_eq!(iter_errors, 1);
}

#[test]
fn replaying_operations_already_applied_changes_nothing() {
    let fs = SimFs::new();
    let (_cp, mut store, _) = open(&fs).unwrap();
    let ops: Vec<(u64, Option<u64>)> = (0..30u64)
        .map(|i| (i % 7, if i % 5 == 4 { None } else { Some(i) }))
        .collect();
    let apply = |store: &mut VectorStore, model: &mut Model| {
        for &(id, v) in &ops {
            match v {
                Some(v) => {
                    store.upsert(id, &vector(id, v)).unwrap();
                    model.insert(id, vector(id, v));
                }
                None => {
                    store.delete(id).unwrap();
                    model.remove(&id);
                }
            }
        }
    };
    let mut model = Model::new();
    apply(&mut store, &mut model);
    same_as(&store, &model).unwrap();
    let before = store.stats();
    // Re-applying the final value of each id (what a replay past the checkpoint does) uses no
    // new slot and changes nothing.
    for (id, v) in model.clone() {
        store.upsert(id, &v).unwrap();
    }
    assert_eq!(store.stats(), before);
    apply(&mut store, &mut model);
    same_as(&store, &model).unwrap();
}

#[test]
fn a_checkpointed_slot_is_never_overwritten_before_the_next_checkpoint() {
    // Property P10 / copy-on-write: after a checkpoint, update and delete everything many times
    // without checkpointing: the durable bytes of the checkpointed slots never change.
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    for id in 0..8u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    let durable_before = fs.crash_drop_unsynced().read_file(&seg_path(0)).unwrap();
    for round in 1..20u64 {
        for id in 0..8u64 {
            if round % 3 == 0 {
                store.delete(id).unwrap();
            } else {
                store.upsert(id, &vector(id, round)).unwrap();
            }
        }
    }
    // Everything written since: in the map, possibly on disk; the checkpointed slots of
    // segment 0 (ids 0..4) must hold the old bytes in the live file too.
    let live = fs.read_file(&seg_path(0)).unwrap();
    assert_eq!(
        live[..HEADER_BYTES + 4 * 64],
        durable_before[..HEADER_BYTES + 4 * 64]
    );
    drop((cp, store));
    for image in fs.crash_images(&vellum_fs::CrashModel::torn_512(), 64, 1) {
        let (_, store, _) = open(&image).unwrap();
        let model: Model = (0..8u64).map(|id| (id, vector(id, 0))).collect();
        same_as(&store, &model).unwrap();
    }
}

#[test]
fn the_id_map_is_a_new_file_per_checkpoint_and_never_rewritten_in_place() {
    // Regression R6: the id map was rewritten in place, so a crash tore it.
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    store.upsert(1, &vector(1, 0)).unwrap();
    store.checkpoint(&mut cp, 1, b"").unwrap();
    let first = Path::new(CK_DIR).join(data_file_name(1, "vectors.idmap"));
    let first_bytes = fs.read_file(&first).unwrap();
    // One change: the base is carried over and the change goes to a new delta file.
    store.upsert(2, &vector(2, 0)).unwrap();
    store.checkpoint(&mut cp, 2, b"").unwrap();
    let carried = Path::new(CK_DIR).join(data_file_name(2, "vectors.idmap"));
    assert!(!fs.exists(&carried).unwrap());
    let delta = Path::new(CK_DIR).join(data_file_name(2, "vectors.idmap-delta"));
    assert!(fs.exists(&delta).unwrap());
    // More changes than the base holds: a new base, in a new file.
    store.upsert(3, &vector(3, 0)).unwrap();
    store.checkpoint(&mut cp, 3, b"").unwrap();
    let third = Path::new(CK_DIR).join(data_file_name(3, "vectors.idmap"));
    assert!(fs.exists(&third).unwrap());
    assert_eq!(
        fs.read_file(&first).unwrap(),
        first_bytes,
        "generation 1's id map untouched"
    );
    assert_ne!(fs.read_file(&third).unwrap(), first_bytes);
}

#[test]
fn reclaiming_free_segments_then_writing_loses_nothing() {
    // Regression R7: after compaction, later writes were lost on recovery.
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    let mut model = Model::new();
    for id in 0..12u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
        model.insert(id, vector(id, 0));
    }
    assert_eq!(store.stats().segments, 3);
    store.checkpoint(&mut cp, 1, b"").unwrap();
    for id in 4..12u64 {
        store.delete(id).unwrap();
        model.remove(&id);
    }
    // Two checkpoints: the first stops referencing the slots, the second drops the
    // generation that still did (retention 2); then segments 1 and 2 are wholly free.
    store.checkpoint(&mut cp, 2, b"").unwrap();
    assert_eq!(
        store.stats().segments,
        3,
        "generation 1 still references them"
    );
    store.checkpoint(&mut cp, 3, b"").unwrap();
    assert_eq!(store.stats().segments, 1, "{:?}", store.stats());
    assert!(!fs.exists(&seg_path(2)).unwrap());
    for id in 100..110u64 {
        store.upsert(id, &vector(id, 1)).unwrap();
        model.insert(id, vector(id, 1));
    }
    store.checkpoint(&mut cp, 4, b"").unwrap();
    store.upsert(200, &vector(200, 0)).unwrap();
    drop((cp, store));
    for image in fs.crash_images(&vellum_fs::CrashModel::torn_512(), 64, 7) {
        let (_, store, _) = open(&image).unwrap();
        same_as(&store, &model).unwrap();
    }
}

#[test]
fn the_same_store_works_on_the_real_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: DynFs = Arc::new(RealFs::new());
    let ck = tmp.path().join("ck");
    let dir = tmp.path().join("vectors");
    let config = StoreConfig {
        slots_per_segment: 64,
        ..StoreConfig::new(16)
    };
    let v = |id: u64| -> Vec<f32> { (0..16).map(|i| (id * 16 + i) as f32).collect() };
    {
        let (mut cp, loaded) = Checkpointer::open(fs.clone(), &ck, ck_config()).unwrap();
        let mut store =
            VectorStore::open_from(fs.clone(), &dir, config, &cp, loaded.as_ref()).unwrap();
        for id in 0..300u64 {
            store.upsert(id, &v(id)).unwrap();
        }
        for id in (0..300u64).step_by(3) {
            store.delete(id).unwrap();
        }
        store.checkpoint(&mut cp, 1, b"").unwrap();
        store.upsert(1000, &v(1000)).unwrap(); // not checkpointed: gone after reopen
    }
    let (cp, loaded) = Checkpointer::open(fs.clone(), &ck, ck_config()).unwrap();
    let store = VectorStore::open_from(fs.clone(), &dir, config, &cp, loaded.as_ref()).unwrap();
    assert_eq!(store.len(), 200);
    assert_eq!(store.get(1000).unwrap(), None);
    for id in (0..300u64).filter(|id| id % 3 != 0) {
        assert_eq!(store.get(id).unwrap().unwrap(), v(id).as_slice());
    }
    assert!(store.verify().unwrap().damaged.is_empty());
    assert!(fs.exists(&dir.join(segment_file_name(0))).unwrap());
}

#[test]
fn a_failed_map_flush_stops_the_store_and_reopen_recovers_the_previous_checkpoint() {
    use vellum_fs::{Fault, FaultRule, OpKind};
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    let mut model = Model::new();
    for id in 0..6u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
        model.insert(id, vector(id, 0));
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    store.upsert(1, &vector(1, 5)).unwrap();
    store.delete(2).unwrap();
    fs.inject(FaultRule::nth_of(OpKind::FlushMap, 1, Fault::Eio));
    assert!(store.checkpoint(&mut cp, 2, b"").is_err());
    // Fail-stop: nothing more is accepted until reopen (the flush is never retried).
    let err = store.upsert(9, &vector(9, 0)).unwrap_err();
    assert!(err.to_string().contains("reopen"), "{err}");
    assert!(store.delete(3).is_err());
    drop((cp, store));
    fs.clear_faults();
    for image in fs.crash_images(&vellum_fs::CrashModel::torn_512(), 32, 3) {
        let (_, store, loaded) = open(&image).unwrap();
        assert_eq!(loaded.unwrap().generation(), 1);
        same_as(&store, &model).unwrap();
    }
}

#[test]
fn the_store_can_be_shared_between_threads_for_reads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<VectorStore>();
    let fs = SimFs::new();
    let (_cp, mut store, _) = open(&fs).unwrap();
    for id in 0..16u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    let store = &store;
    std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for id in (t..16).step_by(2) {
                    assert_eq!(store.get(id).unwrap().unwrap(), vector(id, 0).as_slice());
                }
            });
        }
    });
}

/// Every live slot maps back to its id and vector; nothing else is live.
fn slots_agree(store: &VectorStore, model: &Model) {
    let mut slots: Vec<u64> = store.slots().collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), model.len(), "one slot per live id");
    for (&id, v) in model {
        let slot = store.slot_of(id).expect("live id has a slot");
        assert_eq!(store.id_at(slot), Some(id));
        assert_eq!(store.vector_at(slot).unwrap(), Some(v.as_slice()));
    }
    let capacity = store.stats().slot_capacity;
    let live = (0..capacity).filter(|&s| store.id_at(s).is_some()).count();
    assert_eq!(live, model.len(), "no free slot reads as live");
}

#[test]
fn slots_name_the_current_vector_of_each_id_through_replace_delete_and_reopen() {
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    let mut model = Model::new();
    for id in 0..10u64 {
        store.upsert(id, &vector(id, 1)).unwrap();
        model.insert(id, vector(id, 1));
    }
    let before = store.slot_of(3).unwrap();
    store.upsert(3, &vector(3, 2)).unwrap();
    model.insert(3, vector(3, 2));
    assert_ne!(store.slot_of(3), Some(before), "a replaced vector moves");
    assert_eq!(store.id_at(before), None, "the old slot is no longer live");
    assert_eq!(store.vector_at(before).unwrap(), None);
    let same = store.slot_of(4).unwrap();
    store.upsert(4, &vector(4, 1)).unwrap();
    assert_eq!(
        store.slot_of(4),
        Some(same),
        "storing the same vector again keeps its slot"
    );
    store.delete(7).unwrap();
    model.remove(&7);
    slots_agree(&store, &model);
    store.checkpoint(&mut cp, 1, b"").unwrap();
    store.delete(0).unwrap();
    model.remove(&0);
    store.upsert(20, &vector(20, 1)).unwrap();
    model.insert(20, vector(20, 1));
    slots_agree(&store, &model);
    let kept: Vec<(u64, u64)> = [1u64, 2, 3, 9]
        .iter()
        .map(|&id| (id, store.slot_of(id).unwrap()))
        .collect();
    store.checkpoint(&mut cp, 2, b"").unwrap();
    drop((cp, store));
    let (_, store, _) = open(&fs.crash_drop_unsynced()).unwrap();
    slots_agree(&store, &model);
    for (id, slot) in kept {
        assert_eq!(store.slot_of(id), Some(slot), "slots survive a reopen");
    }
}

#[test]
fn reopening_with_another_slots_per_segment_setting_keeps_the_stored_geometry() {
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    for id in 0..10u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    let segments = store.stats().segments;
    drop((cp, store));
    let other = StoreConfig {
        slots_per_segment: 64,
        ..StoreConfig::new(4)
    };
    for round in 0..2u64 {
        let (mut cp, loaded) =
            Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config()).unwrap();
        let mut store = VectorStore::open_from(
            fs.shared(),
            Path::new(STORE_DIR),
            other,
            &cp,
            loaded.as_ref(),
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(store.len() as u64, 10 + round * 5);
        for id in 0..store.len() as u64 {
            assert_eq!(
                store.get(id).unwrap().unwrap(),
                &vector(id, 0)[..],
                "id {id}"
            );
        }
        if round == 0 {
            assert_eq!(store.stats().segments, segments);
            for id in 10..15u64 {
                store.upsert(id, &vector(id, 0)).unwrap();
            }
            store.checkpoint(&mut cp, 2, b"").unwrap();
        }
    }
}

#[test]
fn a_checkpoint_given_up_after_a_failed_commit_stops_the_store_naming_the_cause() {
    let fs = SimFs::new();
    let (_cp, mut store, _) = open(&fs).unwrap();
    store.upsert(1, &vector(1, 0)).unwrap();
    let flushed = store.prepare_checkpoint("").unwrap().flush().unwrap();
    flushed.abandon(&"No space left on device (os error 28)");
    let e = store.upsert(2, &vector(2, 0)).unwrap_err();
    assert!(e.is_poisoned(), "{e}");
    assert!(e.to_string().contains("os error 28"), "{e}");
    // Dropping one without a word still stops the store, with the generic reason.
    let fs = SimFs::new();
    let (_cp, mut store, _) = open(&fs).unwrap();
    drop(store.prepare_checkpoint("").unwrap());
    let e = store.upsert(2, &vector(2, 0)).unwrap_err();
    assert!(
        e.to_string().contains("dropped without being published"),
        "{e}"
    );
}

#[test]
fn the_segment_files_are_the_segments_in_the_directory_through_growth_and_reclaim() {
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    let listed = |fs: &SimFs| {
        let mut names = fs.list_dir(Path::new(STORE_DIR)).unwrap();
        names.sort();
        names
    };
    assert!(store.segment_files().is_empty());
    for id in 0..12u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    assert_eq!(store.segment_files().len(), 3);
    assert_eq!(store.segment_files(), listed(&fs));
    assert!(
        store
            .segment_files()
            .iter()
            .all(|n| is_segment_file_name(n))
    );
    for id in 4..12u64 {
        store.delete(id).unwrap();
    }
    for lsn in 1..=3 {
        store.checkpoint(&mut cp, lsn, b"").unwrap();
    }
    assert_eq!(store.segment_files().len(), 1, "{:?}", store.stats());
    assert_eq!(store.segment_files(), listed(&fs));
    assert_eq!(
        Path::new(STORE_DIR).join(&store.segment_files()[0]),
        seg_path(0)
    );
}

//! Space that follows the data: segment files grow by doubling with their slots, a short
//! segment is refused naming the length its slots need, and compaction packs live vectors
//! into the lowest slots so trailing segments go.

mod common;

use std::path::Path;

use common::*;
use vellum_checkpoint::Checkpointer;
use vellum_fs::{Fs, SimFs};
use vellum_mmap_vectors::segment::{HEADER_BYTES, segment_file_name};
use vellum_mmap_vectors::{Error, StoreConfig, VectorStore};

fn seg_path(i: u32) -> std::path::PathBuf {
    Path::new(STORE_DIR).join(segment_file_name(i))
}

/// The file length of segment `i` on `fs`.
fn seg_len(fs: &SimFs, i: u32) -> u64 {
    fs.open(&seg_path(i)).unwrap().len().unwrap()
}

/// Opens the store on `fs` with segments of 64 four-dimensional slots (64 bytes each).
fn open_64(fs: &SimFs) -> vellum_mmap_vectors::Result<(Checkpointer, VectorStore)> {
    let config = StoreConfig {
        slots_per_segment: 64,
        ..StoreConfig::new(4)
    };
    let (cp, loaded) = Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config()).unwrap();
    let store = VectorStore::open_from(
        fs.shared(),
        Path::new(STORE_DIR),
        config,
        &cp,
        loaded.as_ref(),
    )?;
    Ok((cp, store))
}

#[test]
fn segment_files_grow_with_their_slots_by_doubling_up_to_the_full_segment() {
    let fs = SimFs::new();
    let (mut cp, mut store) = open_64(&fs).unwrap();
    let slot = 64u64; // 4 f32 padded to 64 bytes
    let header = HEADER_BYTES as u64;
    let mut lengths = Vec::new();
    for id in 0..70u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
        let len = seg_len(&fs, 0);
        if lengths.last() != Some(&len) {
            lengths.push(len);
        }
    }
    // A quarter of the segment first, then doubling.
    assert_eq!(
        lengths,
        [16, 32, 64].map(|n| header + n * slot).to_vec(),
        "segment 0 lengths"
    );
    assert_eq!(
        seg_len(&fs, 1),
        header + 16 * slot,
        "segment 1 starts small"
    );
    assert_eq!(
        store.stats().segment_bytes,
        header + 64 * slot + header + 16 * slot
    );
    store.checkpoint(&mut cp, 1, b"").unwrap();
    drop((cp, store));
    let (_cp, mut store) = open_64(&fs).unwrap();
    for id in 0..70u64 {
        assert_eq!(store.get(id).unwrap().unwrap(), vector(id, 0).as_slice());
    }
    // The partly grown segment 1 grows on after the reopen.
    for id in 70..90u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    assert_eq!(seg_len(&fs, 1), header + 32 * slot);
}

#[test]
fn a_segment_ending_before_a_referenced_slot_is_refused_naming_the_length_needed() {
    let fs = SimFs::new();
    let (mut cp, mut store) = open_64(&fs).unwrap();
    for id in 0..20u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    drop((cp, store));
    let header = HEADER_BYTES as u64;
    // Whole slots, but only 16 of the 20 referenced.
    fs.tamper(&seg_path(0), |b| b.truncate(HEADER_BYTES + 16 * 64))
        .unwrap();
    let err = open_64(&fs).map(|_| ()).unwrap_err();
    match &err {
        Error::SegmentSize {
            expected, found, ..
        } => {
            assert_eq!(*expected, header + 20 * 64, "{err}");
            assert_eq!(*found, header + 16 * 64, "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("segment-00000000.vec"), "{err}");
}

#[test]
fn compaction_packs_live_vectors_into_the_lowest_slots_and_trailing_segments_go() {
    let fs = SimFs::new();
    let (mut cp, mut store) = open_64(&fs).unwrap();
    for id in 0..200u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
    }
    for id in (0..200u64).filter(|id| id % 10 != 0) {
        store.delete(id).unwrap();
    }
    // Freed slots become reusable once no retained generation references them.
    for lsn in 1..=3 {
        store.checkpoint(&mut cp, lsn, b"").unwrap();
    }
    assert_eq!(
        store.stats().segments,
        3,
        "the fourth held only deleted ids"
    );
    let moves = store.compaction_moves();
    assert_eq!(moves.len(), 18, "20 live, 2 already in the lowest 20 slots");
    for id in moves {
        let (old, new) = store.relocate(id).unwrap().expect("a lower free slot");
        assert!(new < old);
    }
    assert!(store.compaction_moves().is_empty());
    for lsn in 4..=6 {
        store.checkpoint(&mut cp, lsn, b"").unwrap();
    }
    assert_eq!(
        store.stats().segments,
        1,
        "segments 1 and 2 emptied and reclaimed"
    );
    assert!(!fs.exists(&seg_path(1)).unwrap());
    drop((cp, store));
    let (_cp, store) = open_64(&fs).unwrap();
    assert_eq!(store.len(), 20);
    for id in (0..200u64).step_by(10) {
        assert_eq!(store.get(id).unwrap().unwrap(), vector(id, 0).as_slice());
    }
}

#[test]
fn the_last_segment_file_shrinks_to_the_slots_it_still_uses_and_grows_again() {
    let fs = SimFs::new();
    let (mut cp, mut store) = open_64(&fs).unwrap();
    let slot = 64u64;
    let header = HEADER_BYTES as u64;
    let mut model = Model::new();
    for id in 0..64u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
        model.insert(id, vector(id, 0));
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    assert_eq!(seg_len(&fs, 0), header + 64 * slot);
    // Ids 0..4 sit in slots 0..4; the rest go.
    for id in 4..64u64 {
        store.delete(id).unwrap();
        model.remove(&id);
    }
    // Released once no retained generation names the slots: two more checkpoints.
    for lsn in 2..5 {
        store.checkpoint(&mut cp, lsn, b"").unwrap();
    }
    // Four slots used: the file is cut to the first size growth gives (16 slots).
    assert_eq!(seg_len(&fs, 0), header + 16 * slot);
    same_as(&store, &model).unwrap();
    // It grows again as slots fill, by doubling.
    for id in 100..130u64 {
        store.upsert(id, &vector(id, 0)).unwrap();
        model.insert(id, vector(id, 0));
    }
    assert_eq!(seg_len(&fs, 0), header + 64 * slot);
    store.checkpoint(&mut cp, 5, b"").unwrap();
    drop((cp, store));
    let (_, store) = open_64(&fs).unwrap();
    same_as(&store, &model).unwrap();
}

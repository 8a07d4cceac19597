//! The id map in two levels: a checkpoint carries the last base over and writes only the ids
//! changed since it (the delta), until they outnumber `base / idmap_rewrite_divisor` and a
//! new base is written. What a checkpoint writes follows what changed; reopening applies
//! the delta, whatever moved, was replaced or deleted since the base.

mod common;

use std::path::Path;

use common::*;
use vellum_checkpoint::Checkpointer;
use vellum_fs::SimFs;
use vellum_mmap_vectors::{IDMAP_DELTA_FILE, IDMAP_FILE, StoreConfig, VectorStore};

/// Four-dimensional vectors in segments of 64 slots, the default rewrite divisor (8).
fn config() -> StoreConfig {
    StoreConfig {
        slots_per_segment: 64,
        ..StoreConfig::new(DIM)
    }
}

fn open_with(fs: &SimFs) -> (Checkpointer, VectorStore) {
    let (cp, loaded) = Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config()).unwrap();
    let store = VectorStore::open_from(
        fs.shared(),
        Path::new(STORE_DIR),
        config(),
        &cp,
        loaded.as_ref(),
    )
    .unwrap();
    (cp, store)
}

/// Stores version `version` of every id in `ids`, in the store and the model.
fn put(store: &mut VectorStore, model: &mut Model, ids: std::ops::Range<u64>, version: u64) {
    for id in ids {
        store.upsert(id, &vector(id, version)).unwrap();
        model.insert(id, vector(id, version));
    }
}

/// (origin generation of the base, raw bytes of the delta) in the current generation.
fn idmap_files(cp: &Checkpointer) -> (u64, u64) {
    let m = cp.current().unwrap();
    let base = m.file(IDMAP_FILE).unwrap().origin_generation;
    let delta = m.file(IDMAP_DELTA_FILE).unwrap().raw_len_bytes;
    (base, delta)
}

/// Bytes of a delta (or base) file holding `n` entries: 24 header, 20 per entry, 4 trailer.
fn idmap_bytes(n: u64) -> u64 {
    24 + 20 * n + 4
}

#[test]
fn a_checkpoint_after_one_change_carries_the_base_and_writes_one_delta_entry() {
    let fs = SimFs::new();
    let (mut cp, mut store) = open_with(&fs);
    let mut model = Model::new();
    put(&mut store, &mut model, 0..2_000u64, 0);
    store.checkpoint(&mut cp, 1, b"").unwrap();
    assert_eq!(idmap_files(&cp), (1, idmap_bytes(0)));
    let base_bytes = cp
        .current()
        .unwrap()
        .file(IDMAP_FILE)
        .unwrap()
        .raw_len_bytes;
    assert_eq!(base_bytes, idmap_bytes(2_000));

    store.upsert(7, &vector(7, 1)).unwrap();
    model.insert(7, vector(7, 1));
    store.checkpoint(&mut cp, 2, b"").unwrap();
    assert_eq!(idmap_files(&cp), (1, idmap_bytes(1)));
    store.delete(8).unwrap();
    model.remove(&8);
    store.upsert(5_000, &vector(5_000, 0)).unwrap();
    model.insert(5_000, vector(5_000, 0));
    store.checkpoint(&mut cp, 3, b"").unwrap();
    // Cumulative since the base: 7, 8 (deleted) and 5000.
    assert_eq!(idmap_files(&cp), (1, idmap_bytes(3)));
    drop((cp, store));

    // Generation 1 is no longer retained (two are): its base stays, named by 2 and 3.
    let (cp, store) = open_with(&fs);
    same_as(&store, &model).unwrap();
    assert_eq!(cp.retained_generations(), [2, 3]);
}

#[test]
fn the_base_is_written_again_once_the_changes_outnumber_an_eighth_of_it() {
    let fs = SimFs::new();
    let (mut cp, mut store) = open_with(&fs);
    let mut model = Model::new();
    put(&mut store, &mut model, 0..800u64, 0);
    store.checkpoint(&mut cp, 1, b"").unwrap();
    let mut lsn = 1;
    let mut origins = Vec::new();
    // 40 changes per checkpoint: deltas of 40, 80 (= 800 / 10), 120 > 100 -> a new base.
    for round in 0..4u64 {
        put(&mut store, &mut model, round * 40..round * 40 + 40, 1);
        lsn += 1;
        store.checkpoint(&mut cp, lsn, b"").unwrap();
        origins.push(idmap_files(&cp));
    }
    assert_eq!(
        origins,
        [
            (1, idmap_bytes(40)),
            (1, idmap_bytes(80)),
            (4, idmap_bytes(0)),
            (4, idmap_bytes(40)),
        ]
    );
    drop((cp, store));
    let (_, store) = open_with(&fs);
    same_as(&store, &model).unwrap();
}

#[test]
fn moves_replacements_and_deletes_since_the_base_survive_the_reuse_of_their_old_slots() {
    // Compaction moves vectors down; their old slots are reused once no retained
    // generation names them. A delta that missed a move would leave the carried base
    // naming a slot that now holds another vector.
    let fs = SimFs::new();
    let (mut cp, mut store) = open_with(&fs);
    let mut model = Model::new();
    put(&mut store, &mut model, 0..1_000u64, 0);
    let mut lsn = 1;
    store.checkpoint(&mut cp, lsn, b"").unwrap();
    for id in (0..25u64).map(|i| i * 3) {
        store.delete(id).unwrap();
        model.remove(&id);
    }
    for _ in 0..3 {
        lsn += 1;
        store.checkpoint(&mut cp, lsn, b"").unwrap();
    }
    let moves = store.compaction_moves();
    assert!(!moves.is_empty());
    for id in moves {
        store.relocate(id).unwrap();
    }
    for _ in 0..3 {
        lsn += 1;
        store.checkpoint(&mut cp, lsn, b"").unwrap();
    }
    // The moved vectors' old slots are free now: new vectors take them.
    put(&mut store, &mut model, 2_000..2_030u64, 0);
    lsn += 1;
    store.checkpoint(&mut cp, lsn, b"").unwrap();
    assert_eq!(idmap_files(&cp).0, 1, "the base was carried throughout");
    same_as(&store, &model).unwrap();
    drop((cp, store));
    let (_, store) = open_with(&fs);
    same_as(&store, &model).unwrap();
}

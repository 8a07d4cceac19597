//! Shared helpers for the store's tests: a model, deterministic vectors, open/compare.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use vellum_checkpoint::{CheckpointConfig, Checkpointer, LoadedGeneration};
use vellum_fs::SimFs;
use vellum_mmap_vectors::{StoreCheckpoint, StoreConfig, VectorStore};

pub const STORE_DIR: &str = "/db/vectors";
pub const CK_DIR: &str = "/db/checkpoints";
pub const DIM: u32 = 4;

pub type Model = BTreeMap<u64, Vec<f32>>;

/// A deterministic vector for (id, version).
pub fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| (id * 1000 + version * 10 + i) as f32 * 0.5)
        .collect()
}

/// Four slots per segment (so scenarios grow and reclaim segments), and a new id map base
/// only once more ids changed than the base holds (so checkpoints alternate between
/// writing a base and carrying it with a delta).
pub fn store_config() -> StoreConfig {
    StoreConfig {
        slots_per_segment: 4,
        idmap_rewrite_divisor: 1,
        ..StoreConfig::new(DIM)
    }
}

pub fn ck_config() -> CheckpointConfig {
    CheckpointConfig {
        retain_generations: 2,
        ..CheckpointConfig::default()
    }
}

/// Opens the checkpointer and the store on `fs`.
pub fn open(fs: &SimFs) -> Result<(Checkpointer, VectorStore, Option<LoadedGeneration>), String> {
    let (cp, loaded) = Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config())
        .map_err(|e| format!("checkpoint open: {e}"))?;
    let store = VectorStore::open_from(
        fs.shared(),
        Path::new(STORE_DIR),
        store_config(),
        &cp,
        loaded.as_ref(),
    )
    .map_err(|e| format!("store open: {e}"))?;
    Ok((cp, store, loaded))
}

/// Opens the store at an older retained generation (as a fallback would).
pub fn open_generation(fs: &SimFs, generation: u64) -> Result<VectorStore, String> {
    let (cp, _) = Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config())
        .map_err(|e| format!("checkpoint open: {e}"))?;
    let loaded = cp
        .load_generation(generation)
        .map_err(|e| format!("load generation {generation}: {e}"))?;
    VectorStore::open(
        fs.shared(),
        Path::new(STORE_DIR),
        store_config(),
        Some(StoreCheckpoint {
            loaded: &loaded,
            file_prefix: "",
            oldest_retained_generation: cp.oldest_retained_generation().unwrap_or(generation),
        }),
    )
    .map_err(|e| format!("store open at generation {generation}: {e}"))
}

/// Checks that the store holds exactly `model`, every slot verified.
pub fn same_as(store: &VectorStore, model: &Model) -> Result<(), String> {
    if store.len() != model.len() {
        return Err(format!(
            "store has {} vectors, model {}",
            store.len(),
            model.len()
        ));
    }
    for (id, want) in model {
        match store.get(*id) {
            Ok(Some(got)) if got == want.as_slice() => {}
            Ok(Some(got)) => return Err(format!("id {id}: {got:?} != {want:?}")),
            Ok(None) => return Err(format!("id {id} missing")),
            Err(e) => return Err(format!("id {id}: {e}")),
        }
    }
    let report = store.verify().map_err(|e| format!("verify: {e}"))?;
    if !report.damaged.is_empty() {
        return Err(format!("verify found damage: {:?}", report.damaged));
    }
    Ok(())
}

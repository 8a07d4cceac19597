//! The write path: log a batch, wait for its turn in LSN order, apply it under the state
//! lock; and the apply step that replay shares.
//!
//! # Write path (numbered as in docs/ARCHITECTURE.md)
//!
//! 1. Validate every point (dimension, finite components) before anything is logged.
//! 2. Append the batch to the WAL as one all-or-nothing batch; under `SyncPolicy::Always`
//!    this returns after a sync covering it (concurrent writers share syncs).
//! 3. Wait for every earlier LSN to be applied, so memory changes in log order.
//! 4. Apply under the state lock: index delete of a replaced id (before its vector moves),
//!    store upsert/delete (copy-on-write slot), payloads, index insert.
//! 5. Acknowledge. A reader sees a batch whole or not at all (step 4 holds the write lock).

use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use vellum_index::Hnsw;
use vellum_mmap_vectors::VectorStore;

use super::source::StoreSource;
use super::types::BatchOp;
use super::{CollectionInner, PARALLEL_INSERT_MIN_BATCH, State, WriteBatch};
use crate::error::{Error, Result};
use crate::record::{self, Op};

/// The ticket counter that makes writers apply in LSN order.
#[derive(Debug)]
pub(super) struct ApplyOrder {
    pub(super) applied: u64,
}

impl CollectionInner {
    /// Writes a batch durably (per the sync policy) and applies it; returns its last LSN.
    pub(super) fn write(&self, batch: WriteBatch) -> Result<u64> {
        self.check_usable()?;
        self.check_writable("writing")?;
        if batch.is_empty() {
            return Ok(self.order.lock().applied);
        }
        let mut records = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            records.push(match op {
                BatchOp::Upsert(p) => {
                    self.check_vector(Some(p.id), &p.vector)?;
                    record::encode_upsert(p.id, &p.vector, p.payload.as_deref())?
                }
                BatchOp::Delete(id) => record::encode_delete(*id),
            });
        }
        let lsns = match self.wal.append_batch(&records) {
            Ok(lsns) => lsns,
            Err(e) => {
                let e = Error::Wal(e);
                // A refused batch (too large, say) consumed no LSN; an I/O failure poisoned
                // the log and may have: only then stop, so later writers do not wait for an
                // LSN that will never be applied.
                if self.wal.is_poisoned() {
                    self.stop(&e);
                }
                return Err(e);
            }
        };
        // Apply in LSN order: wait until every earlier batch is applied.
        {
            let mut order = self.order.lock();
            while order.applied + 1 < *lsns.start() {
                if self.failstop.is_poisoned() {
                    return Err(self.poisoned(self.failstop.check().unwrap_err()));
                }
                self.order_cv.wait(&mut order);
            }
        }
        let result = {
            let mut state = self.state.write();
            let result = apply_batch(&mut state, batch.ops);
            if result.is_ok() {
                state.applied_lsn = *lsns.end();
            }
            result
        };
        if let Err(e) = result {
            // Memory no longer matches the log: stop; reopening replays the log.
            self.stop(&e);
            return Err(e);
        }
        {
            let mut order = self.order.lock();
            order.applied = *lsns.end();
            self.order_cv.notify_all();
        }
        let n = (lsns.end() - lsns.start()) + 1;
        self.ops_since_checkpoint.fetch_add(n, Ordering::Relaxed);
        Ok(*lsns.end())
    }

    /// Makes every write so far durable (a barrier under every sync policy).
    pub(crate) fn sync(&self) -> Result<()> {
        self.check_usable()?;
        self.wal.sync().map(drop).map_err(|e| {
            let e = Error::Wal(e);
            self.stop(&e);
            e
        })
    }
}

/// Applies a batch in order. A large upsert-only batch of distinct ids takes the parallel
/// graph build; the result is the same set of live ids and vectors as one-by-one.
pub(super) fn apply_batch(state: &mut State, ops: Vec<BatchOp>) -> Result<()> {
    let parallel = state.index.is_some()
        && ops.len() >= PARALLEL_INSERT_MIN_BATCH
        && ops.iter().all(|op| matches!(op, BatchOp::Upsert(_)))
        && {
            let mut ids: Vec<u64> = ops
                .iter()
                .map(|op| match op {
                    BatchOp::Upsert(p) => p.id,
                    BatchOp::Delete(id) => *id,
                })
                .collect();
            ids.sort_unstable();
            ids.windows(2).all(|w| w[0] != w[1])
        };
    if !parallel {
        for op in ops {
            let op = match op {
                BatchOp::Upsert(p) => Op::Upsert {
                    id: p.id,
                    vector: p.vector,
                    payload: p.payload,
                },
                BatchOp::Delete(id) => Op::Delete { id },
            };
            apply(state, op)?;
        }
        return Ok(());
    }
    let State {
        store,
        index,
        payloads,
        vector_reads,
        ..
    } = state;
    let index = index.as_mut().expect("checked above");
    let mut slots = Vec::with_capacity(ops.len());
    for op in ops {
        let BatchOp::Upsert(p) = op else {
            unreachable!("checked above")
        };
        unindex(store, Some(&mut *index), vector_reads, p.id)?;
        store.upsert(p.id, &p.vector)?;
        set_payload(payloads, p.id, p.payload);
        slots.push(slot_after_upsert(store, p.id)?);
    }
    let source = StoreSource::new(store, vector_reads);
    index.insert_batch_parallel(&source, &slots)?;
    source.into_result()
}

/// Removes `id`'s node (keyed by its current slot) from the graph if it is there. Done
/// before the store moves or drops the vector, so the graph is repaired with the vector it
/// was linked by.
fn unindex(
    store: &VectorStore,
    index: Option<&mut Hnsw>,
    reads: &AtomicU64,
    id: u64,
) -> Result<()> {
    if let Some(index) = index
        && let Some(slot) = store.slot_of(id)
        && index.contains(slot)
    {
        let source = StoreSource::new(store, reads);
        index.delete(&source, slot)?;
        source.into_result()?;
    }
    Ok(())
}

/// The slot `id` was just stored in.
fn slot_after_upsert(store: &VectorStore, id: u64) -> Result<u64> {
    store.slot_of(id).ok_or_else(|| Error::Inconsistent {
        reason: format!("id {id} is missing from the store right after its upsert"),
    })
}

fn set_payload(payloads: &mut FxHashMap<u64, Vec<u8>>, id: u64, payload: Option<Vec<u8>>) {
    match payload {
        Some(p) => {
            payloads.insert(id, p);
        }
        None => {
            payloads.remove(&id);
        }
    }
}

/// Applies one operation to memory. Idempotent for replay: re-applying a record whose effect
/// is present leaves the same state.
pub(super) fn apply(state: &mut State, op: Op) -> Result<()> {
    let State {
        store,
        index,
        payloads,
        vector_reads,
        ..
    } = state;
    match op {
        Op::Upsert {
            id,
            vector,
            payload,
        } => {
            unindex(store, index.as_mut(), vector_reads, id)?;
            store.upsert(id, &vector)?;
            set_payload(payloads, id, payload);
            if let Some(index) = index.as_mut() {
                let slot = slot_after_upsert(store, id)?;
                let source = StoreSource::new(store, vector_reads);
                index.insert(&source, slot)?;
                source.into_result()?;
            }
        }
        Op::Delete { id } => {
            unindex(store, index.as_mut(), vector_reads, id)?;
            store.delete(id)?;
            payloads.remove(&id);
        }
    }
    Ok(())
}

//! The write path: log a batch, wait for its turn in LSN order, apply it under the state
//! lock; and the apply step that replay shares.
//!
//! # Write path (numbered as in docs/ARCHITECTURE.md)
//!
//! 1. Validate every point (dimension, finite components) before anything is logged.
//! 2. Wait for room in the pending tail (HNSW collections): backpressure when the indexer
//!    lags by more than the bound (`DatabaseOptions::with_index_lag`).
//! 3. Append the batch to the WAL as one all-or-nothing batch; under `SyncPolicy::Always`
//!    this returns after a sync covering it (concurrent writers share syncs).
//! 4. Wait for every earlier LSN to be applied, so memory changes in log order.
//! 5. Apply under the state lock: a replaced or deleted point leaves the pending tail, or
//!    its graph node becomes a tombstone (repaired later by the indexer, no distance
//!    computed here); store upsert/delete (copy-on-write slot); payloads; the new slot
//!    joins the pending tail. No graph insert happens here.
//! 6. Acknowledge: the write is durable and visible (searches scan the pending tail). A
//!    reader sees a batch whole or not at all (step 5 holds the write lock). The
//!    collection's indexer thread, started if needed, inserts the tail into the graph.

use std::sync::atomic::Ordering;

use vellum_index::Hnsw;
use vellum_mmap_vectors::VectorStore;

use super::pending::Pending;
use super::types::BatchOp;
use super::{CollectionInner, State, WriteBatch};
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
        let upserts = batch
            .ops
            .iter()
            .filter(|op| matches!(op, BatchOp::Upsert(_)))
            .count();
        if upserts > 0 {
            self.bound_unsaved_payloads()?;
        }
        let hnsw = matches!(self.config.index, crate::options::IndexKind::Hnsw(_));
        let reserved = if hnsw && upserts > 0 {
            self.wait_for_room(upserts)?;
            upserts
        } else {
            0
        };
        let _room = Reserved {
            inner: self,
            slots: reserved,
        };
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
            let mut pending = self.pending.lock();
            let result = apply_batch(&mut state, &mut pending, batch.ops);
            drop(pending);
            if std::mem::take(&mut state.repairs_left) {
                self.repairs_waiting.store(true, Ordering::Release);
            }
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
        self.counters.wrote(n);
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

/// Room reserved in the pending tail by `wait_for_room`, given back when the write ends
/// (its slots are in the tail by then, or it failed).
struct Reserved<'a> {
    inner: &'a CollectionInner,
    slots: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.slots > 0 {
            self.inner.pending.lock().unreserve(self.slots);
        }
    }
}

/// Applies a batch in order.
pub(super) fn apply_batch(
    state: &mut State,
    pending: &mut Pending,
    ops: Vec<BatchOp>,
) -> Result<()> {
    for op in ops {
        let op = match op {
            BatchOp::Upsert(p) => Op::Upsert {
                id: p.id,
                vector: p.vector,
                payload: p.payload,
            },
            BatchOp::Delete(id) => Op::Delete { id },
        };
        apply(state, pending, op)?;
    }
    Ok(())
}

/// Takes `id`'s current slot out of the index: out of the pending tail if it waits there,
/// else its graph node becomes a tombstone whose neighbours the indexer repairs (no
/// distance computed here). Returns whether a repair was left.
fn unindex(
    store: &VectorStore,
    index: Option<&Hnsw>,
    pending: &mut Pending,
    id: u64,
) -> Result<bool> {
    match store.slot_of(id) {
        Some(slot) => unindex_slot(index, pending, slot),
        None => Ok(false),
    }
}

/// Takes `slot` out of the index (see `unindex`).
fn unindex_slot(index: Option<&Hnsw>, pending: &mut Pending, slot: u64) -> Result<bool> {
    if let Some(index) = index
        && !pending.remove(slot)
        && index.contains(slot)
    {
        index.delete_deferred(slot)?;
        return Ok(true);
    }
    Ok(false)
}

/// Moves `id`'s vector down into the lowest free slot if there is one below its own
/// (compaction), re-indexed as a replacement would be: the old slot leaves the tail or
/// becomes a graph tombstone, the new one joins the tail. Returns whether it moved.
pub(super) fn relocate(state: &mut State, pending: &mut Pending, id: u64) -> Result<bool> {
    let State {
        store,
        index,
        repairs_left,
        ..
    } = state;
    let Some((old, new)) = store.relocate(id)? else {
        return Ok(false);
    };
    if index.is_some() {
        *repairs_left |= unindex_slot(index.as_ref(), pending, old)?;
        pending.push(new);
    }
    Ok(true)
}

/// The slot `id` was just stored in.
fn slot_after_upsert(store: &VectorStore, id: u64) -> Result<u64> {
    store.slot_of(id).ok_or_else(|| Error::Inconsistent {
        reason: format!("id {id} is missing from the store right after its upsert"),
    })
}

/// Applies one operation to memory. Idempotent for replay: re-applying a record whose effect
/// is present leaves the same state.
pub(super) fn apply(state: &mut State, pending: &mut Pending, op: Op) -> Result<()> {
    let State {
        store,
        index,
        payloads,
        repairs_left,
        ..
    } = state;
    match op {
        Op::Upsert {
            id,
            vector,
            payload,
        } => {
            *repairs_left |= unindex(store, index.as_ref(), pending, id)?;
            store.upsert(id, &vector)?;
            payloads.set(id, payload.as_deref());
            if index.is_some() {
                pending.push(slot_after_upsert(store, id)?);
            }
        }
        Op::Delete { id } => {
            *repairs_left |= unindex(store, index.as_ref(), pending, id)?;
            store.delete(id)?;
            if payloads.contains(id) {
                payloads.set(id, None);
            }
        }
    }
    Ok(())
}

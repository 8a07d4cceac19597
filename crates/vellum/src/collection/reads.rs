//! The read path: points by id, search (index or exact scan), ids, counters and the log
//! records, each under the state read lock.

use std::sync::atomic::Ordering;

use vellum_index::{Filter, QuantizedSearch, SearchOptions};

use super::quantized::StoreCodes;
use super::scan::EXACT_SCAN_CHUNK_SLOTS;
use super::source::StoreSource;
use super::{
    CollectionInner, CollectionStats, Hit, Point, SearchFilter, SearchParams, State, WalEntry,
};
use crate::error::{Error, Result};
use crate::record::{self, Op};

/// HNSW collections of at most this many points are searched by an exact scan.
pub(crate) const EXACT_SCAN_MAX_POINTS: usize = 256;

impl CollectionInner {
    pub(super) fn get(&self, id: u64) -> Result<Option<Point>> {
        self.check_usable()?;
        let state = self.state.read();
        let Some(v) = state.store.get(id)? else {
            return Ok(None);
        };
        Ok(Some(Point {
            id,
            vector: v.to_vec(),
            payload: state.payloads.get(id)?.map(<[u8]>::to_vec),
        }))
    }

    /// The points among `ids` that are live now, in the order given, read under one lock
    /// (so the page is one consistent state).
    pub(super) fn get_many(&self, ids: &[u64]) -> Result<Vec<Point>> {
        self.check_usable()?;
        let state = self.state.read();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(v) = state.store.get(id)? {
                out.push(Point {
                    id,
                    vector: v.to_vec(),
                    payload: state.payloads.get(id)?.map(<[u8]>::to_vec),
                });
            }
        }
        Ok(out)
    }

    /// Fills in the payloads and vectors a search asked for, under one hold of the lock.
    pub(super) fn fill_hits(&self, hits: &mut [Hit], payload: bool, vector: bool) -> Result<()> {
        if !(payload || vector) {
            return Ok(());
        }
        let state = self.state.read();
        for hit in hits {
            if payload {
                hit.payload = state.payloads.get(hit.id)?.map(<[u8]>::to_vec);
            }
            if vector {
                hit.vector = state.store.get(hit.id)?.map(<[f32]>::to_vec);
            }
        }
        Ok(())
    }

    pub(super) fn with_vector<R>(&self, id: u64, f: impl FnOnce(&[f32]) -> R) -> Result<Option<R>> {
        self.check_usable()?;
        let state = self.state.read();
        Ok(state.store.get(id)?.map(f))
    }

    pub(super) fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<Vec<Hit>> {
        self.check_usable()?;
        self.check_vector(None, query)?;
        self.note_search();
        self.counters.searched();
        let state = self.state.read();
        // A typed filter the payload indexes answer becomes the set of ids it admits: a
        // small set is scanned exactly (cheaper than a graph walk that must pass many
        // refused nodes, and exact), a large one restricts the graph walk by id.
        let planned = match params.filter {
            Some(SearchFilter::Where(filter)) => {
                super::payload_index::planned_ids(&state, filter, false)?
            }
            _ => None,
        };
        let narrowed;
        let params = match &planned {
            Some(ids) => {
                let n = state.store.len();
                if state.index.is_none() || params.exact || ids.len() <= planned_exact_max(n) {
                    let slots: Vec<u64> = ids
                        .iter()
                        .filter_map(|&id| state.store.slot_of(id))
                        .collect();
                    let unfiltered = SearchParams {
                        filter: None,
                        ..*params
                    };
                    return self.exact_hits(&state, &slots, query, k, &unfiltered);
                }
                narrowed = SearchParams {
                    filter: Some(SearchFilter::SortedIds(ids)),
                    ..*params
                };
                &narrowed
            }
            None => params,
        };
        // A small collection is scanned exactly: cheaper than a graph walk at that size
        // (a walk computes about ef × M distances), and exact.
        let small = state.store.len() <= EXACT_SCAN_MAX_POINTS;
        let Some(index) = state.index.as_ref().filter(|_| !(params.exact || small)) else {
            if state.store.len() as u64 > EXACT_SCAN_CHUNK_SLOTS {
                // Long enough that writers would notice: scanned a chunk per lock hold.
                let bound = state.store.slot_bound();
                drop(state);
                return self.scan_in_chunks(query, k, params, bound);
            }
            let slots: Vec<u64> = state.store.slots().collect();
            return self.exact_hits(&state, &slots, query, k, params);
        };
        let source = StoreSource::new(&state.store, &state.vector_reads);
        let hits = with_slot_filter(&state, params.filter, |filter| {
            // The tail is copied before the graph is searched: a slot the indexer
            // finishes meanwhile is then in the graph (found there or not, as any graph
            // node), never in neither. One in both is merged once.
            let tail = self.pending.lock().slots();
            let options = SearchOptions {
                ef: params.ef,
                filter,
            };
            let graph_hits = match state.quant.active() {
                // On the codes, the best candidates rescored on the originals.
                Some((trained, setting)) if !params.exact => {
                    let codes = StoreCodes::new(&state.store, &trained.quantizer);
                    let hits = index.search_quantized(
                        &source,
                        &codes,
                        query,
                        k,
                        &options,
                        &QuantizedSearch {
                            rescore: setting.rescore,
                            oversampling: setting.oversampling,
                        },
                    )?;
                    codes.into_result()?;
                    hits
                }
                _ => index.search_with(&source, query, k, &options)?,
            };
            if tail.is_empty() {
                return Ok(graph_hits);
            }
            let tail_hits = vellum_index::exact_search(
                &source,
                &tail,
                self.config.metric,
                query,
                k,
                filter.as_ref(),
            )?;
            Ok::<_, Error>(merge_hits(graph_hits, tail_hits, k))
        })??;
        source.into_result()?;
        to_hits(&state, hits)
    }

    /// The exact `k` nearest among `slots` (live slots of `state`), filtered as `params`
    /// says, as hits.
    pub(super) fn exact_hits(
        &self,
        state: &State,
        slots: &[u64],
        query: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<Vec<Hit>> {
        let source = StoreSource::new(&state.store, &state.vector_reads);
        let hits = with_slot_filter(state, params.filter, |filter| {
            vellum_index::exact_search(
                &source,
                slots,
                self.config.metric,
                query,
                k,
                filter.as_ref(),
            )
        })??;
        source.into_result()?;
        to_hits(state, hits)
    }

    pub(crate) fn len(&self) -> usize {
        self.state.read().store.len()
    }

    pub(super) fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.state.read().store.ids().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn stats(&self) -> CollectionStats {
        let state = self.state.read();
        // Counted under the state lock, so no write moves points meanwhile: what is not
        // pending is in the graph (`verify` checks that exactly, slot by slot).
        let (index_pending, indexer_running) = {
            let pending = self.pending.lock();
            let len = if state.index.is_some() {
                pending.len() as u64
            } else {
                0
            };
            (len, pending.indexer_running)
        };
        let indexed = state.store.len() as u64 - index_pending;
        let wal = self.wal.stats();
        let store = state.store.stats();
        let payload_stats = state.payloads.stats();
        let cp = self.checkpoint_stats.lock().clone();
        let counters = self.counters.now();
        CollectionStats {
            name: self.name.clone(),
            points: state.store.len() as u64,
            payloads: payload_stats.payloads,
            payload_runs: payload_stats.runs,
            payload_run_bytes: payload_stats.run_bytes,
            payload_live_bytes: payload_stats.live_bytes,
            payload_unsaved_bytes: payload_stats.unsaved_bytes,
            payload_indexes: state.payloads.index_infos(),
            wal_bytes: wal.log_bytes,
            wal_segments: wal.segments as u64,
            last_lsn: state.applied_lsn,
            ops_since_checkpoint: self.ops_since_checkpoint.load(Ordering::Relaxed),
            generation: cp.generation,
            checkpoint_lsn: cp.wal_lsn,
            checkpoint_stored_bytes: cp.stored_bytes,
            checkpoint_raw_bytes: cp.raw_bytes,
            vector_segment_bytes: store.segment_bytes,
            indexed,
            index_pending,
            indexer_running,
            wal_first_lsn: wal.first_lsn,
            retained_generations: cp.retained,
            graph_loaded_from_checkpoint: self.graph_loaded,
            replayed_at_open: self.replayed_at_open,
            vectors_read_since_open: state.vector_reads.load(Ordering::Relaxed),
            tail_cut_at_open: self.tail_cut_at_open.clone(),
            writes_since_open: counters.writes,
            searches_since_open: counters.searches,
            checkpoints_since_open: counters.checkpoints,
            checkpoint_time_total: counters.checkpoint_time_total,
            checkpoint_lock_held_max: counters.checkpoint_lock_held_max,
            wal_syncs_since_open: wal.syncs,
            wal_sync_time_total: wal.sync_time_total,
            wal_sync_time_max: wal.sync_time_max,
            wal_bytes_written_since_open: wal.appended_bytes,
            quantization: state.quant.active().map(|(t, _)| t.quantizer.kind()),
            quantized_code_bytes: state.store.code_bytes(),
            quantizer_trained_points: state.quant.trained.as_ref().map_or(0, |t| t.trained_points),
        }
    }

    pub(super) fn wal_entries(&self, from_lsn: u64, limit: usize) -> Result<Vec<WalEntry>> {
        let mut out = Vec::new();
        let mut iter = self
            .wal
            .iter_from(from_lsn.max(self.wal.stats().first_lsn))?;
        while out.len() < limit {
            let Some(item) = iter.next_record() else {
                break;
            };
            let (lsn, bytes) = item?;
            out.push(match record::decode(bytes, lsn, self.config.dim)? {
                Op::Upsert { id, payload, .. } => WalEntry {
                    lsn,
                    kind: "upsert",
                    id,
                    payload_bytes: payload.map(|p| p.len() as u64),
                },
                Op::Delete { id } => WalEntry {
                    lsn,
                    kind: "delete",
                    id,
                    payload_bytes: None,
                },
            });
        }
        Ok(out)
    }
}

/// The largest set of admitted points a filtered search scans exactly rather than walking
/// the graph: 4,096, or 1/8 of the collection when that is more. A walk that may return
/// only one point in eight passes many refused nodes for each admitted one (and widens its
/// candidate list). On fashion-mnist 60k (filter_bench), 10% of the points admitted: the
/// scan ran 337 QPS, the walk 53; at 50% the walk runs (376 QPS).
fn planned_exact_max(points: usize) -> usize {
    (points / 8).max(4096)
}

/// Runs `f` with the search filter translated to vector-store slots (the index and the
/// scan are keyed by slot), reading ids and payloads from `state`. A payload that cannot be
/// read (a record failing its checksum) fails the call after `f` returns: the filter
/// itself cannot return an error, so it refuses the point and the first error is kept.
fn with_slot_filter<R>(
    state: &State,
    filter: Option<SearchFilter<'_>>,
    f: impl FnOnce(Option<Filter<'_>>) -> R,
) -> Result<R> {
    let store = &state.store;
    let payloads = &state.payloads;
    let failed: std::sync::OnceLock<Error> = std::sync::OnceLock::new();
    let read = |id: u64| match payloads.get(id) {
        Ok(p) => Some(p),
        Err(e) => {
            let _ = failed.set(e);
            None
        }
    };
    let out = match filter {
        None => f(None),
        Some(SearchFilter::Ids(ids)) => {
            let allowed: Vec<u64> = ids.iter().filter_map(|&id| store.slot_of(id)).collect();
            f(Some(Filter::AllowIds(&allowed)))
        }
        Some(SearchFilter::SortedIds(ids)) => {
            if !ids.is_sorted() {
                return Err(Error::InvalidArgument(
                    "SearchFilter::SortedIds needs its ids in ascending order".into(),
                ));
            }
            let pred = move |slot: u64| {
                store
                    .id_at(slot)
                    .is_some_and(|id| ids.binary_search(&id).is_ok())
            };
            f(Some(Filter::Allow(&pred)))
        }
        Some(SearchFilter::Id(p)) => {
            let pred = move |slot: u64| store.id_at(slot).is_some_and(p);
            f(Some(Filter::Allow(&pred)))
        }
        Some(SearchFilter::Payload(p)) => {
            let pred = |slot: u64| store.id_at(slot).is_some_and(|id| read(id).is_some_and(p));
            f(Some(Filter::Allow(&pred)))
        }
        Some(SearchFilter::Where(filter)) => {
            let pred = |slot: u64| {
                store
                    .id_at(slot)
                    .is_some_and(|id| read(id).is_some_and(|payload| filter.matches(id, payload)))
            };
            f(Some(Filter::Allow(&pred)))
        }
    };
    match failed.into_inner() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Slot results as hits, the ids read under the same hold of the lock as the vectors.
fn to_hits(state: &State, neighbours: Vec<vellum_index::Neighbour>) -> Result<Vec<Hit>> {
    neighbours
        .into_iter()
        .map(|n| match state.store.id_at(n.id) {
            Some(id) => Ok(Hit {
                id,
                distance: n.distance,
                payload: None,
                vector: None,
            }),
            None => Err(Error::Inconsistent {
                reason: format!(
                    "the index returned vector slot {}, which holds no live vector",
                    n.id
                ),
            }),
        })
        .collect()
}

/// The `k` closest of two result lists, each slot once.
fn merge_hits(
    mut a: Vec<vellum_index::Neighbour>,
    b: Vec<vellum_index::Neighbour>,
    k: usize,
) -> Vec<vellum_index::Neighbour> {
    a.extend(b);
    a.sort_by(|x, y| x.distance.total_cmp(&y.distance).then(x.id.cmp(&y.id)));
    let mut seen = rustc_hash::FxHashSet::default();
    a.retain(|n| seen.insert(n.id));
    a.truncate(k);
    a
}

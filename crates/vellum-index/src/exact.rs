//! Exact (flat) search: the ground truth, and the right choice for small collections.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashSet;

use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::source::VectorSource;

/// Collections at least this large are scanned on all rayon threads.
pub const PARALLEL_EXACT_MIN_LEN: usize = 32_768;

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// External id of the vector.
    pub id: u64,
    /// Distance to the query under the index metric (smaller is closer).
    pub distance: f32,
}

/// Which ids a search may return.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Filter<'a> {
    /// Only ids for which the predicate is true.
    Allow(&'a (dyn Fn(u64) -> bool + Sync)),
    /// Every id except those for which the predicate is true.
    Deny(&'a (dyn Fn(u64) -> bool + Sync)),
    /// Only the listed ids (ids not in the collection are ignored).
    AllowIds(&'a [u64]),
}

impl std::fmt::Debug for Filter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Allow(_) => f.write_str("Filter::Allow(..)"),
            Filter::Deny(_) => f.write_str("Filter::Deny(..)"),
            Filter::AllowIds(ids) => write!(f, "Filter::AllowIds({} ids)", ids.len()),
        }
    }
}

/// A filter ready for per-id membership tests.
pub(crate) enum Resolved<'a> {
    All,
    Allow(&'a (dyn Fn(u64) -> bool + Sync)),
    Deny(&'a (dyn Fn(u64) -> bool + Sync)),
    Set(FxHashSet<u64>),
}

impl<'a> Resolved<'a> {
    pub(crate) fn new(filter: Option<&Filter<'a>>) -> Resolved<'a> {
        match filter {
            None => Resolved::All,
            Some(Filter::Allow(p)) => Resolved::Allow(*p),
            Some(Filter::Deny(p)) => Resolved::Deny(*p),
            Some(Filter::AllowIds(ids)) => Resolved::Set(ids.iter().copied().collect()),
        }
    }

    #[inline]
    pub(crate) fn accepts(&self, id: u64) -> bool {
        match self {
            Resolved::All => true,
            Resolved::Allow(p) => p(id),
            Resolved::Deny(p) => !p(id),
            Resolved::Set(set) => set.contains(&id),
        }
    }
}

/// A candidate ordered by distance, then by key, so ties break the same way everywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored<K> {
    pub(crate) distance: f32,
    pub(crate) key: K,
}

impl<K: Ord> PartialEq for Scored<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord> Eq for Scored<K> {}
impl<K: Ord> PartialOrd for Scored<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Scored<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// The `k` smallest items pushed so far.
pub(crate) struct TopK<K> {
    k: usize,
    heap: BinaryHeap<Scored<K>>,
}

impl<K: Ord + Copy> TopK<K> {
    pub(crate) fn new(k: usize) -> TopK<K> {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, distance: f32, key: K) {
        if self.k == 0 {
            return;
        }
        let item = Scored { distance, key };
        if self.heap.len() < self.k {
            self.heap.push(item);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && item < *worst
        {
            *worst = item;
        }
    }

    pub(crate) fn into_sorted(self) -> Vec<Scored<K>> {
        self.heap.into_sorted_vec()
    }
}

fn check_dim(expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::DimensionMismatch { expected, found })
    }
}

/// Top-`k` of `ids` nearest to `query`, sorted by distance (ties by id), scanning every id.
///
/// `ids` are the live ids of the collection; the filter narrows them further. Large lists
/// are scanned in parallel on the current rayon pool.
pub fn exact_search<S: VectorSource + ?Sized>(
    source: &S,
    ids: &[u64],
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<&Filter<'_>>,
) -> Result<Vec<Neighbour>> {
    check_dim(source.dim(), query.len())?;
    let resolved = Resolved::new(filter);
    let prepared = crate::query::PreparedQuery::new(metric, query);
    let scan = |chunk: &[u64]| {
        let mut top = TopK::new(k);
        for &id in chunk {
            if resolved.accepts(id) {
                top.push(prepared.distance(source.vector(id)), id);
            }
        }
        top
    };
    let top = if ids.len() >= PARALLEL_EXACT_MIN_LEN {
        let chunk_len = ids.len().div_ceil(rayon::current_num_threads().max(1) * 4);
        ids.par_chunks(chunk_len.max(1024)).map(scan).reduce(
            || TopK::new(k),
            |mut a, b| {
                for item in b.heap {
                    a.push(item.distance, item.key);
                }
                a
            },
        )
    } else {
        scan(ids)
    };
    Ok(top
        .into_sorted()
        .into_iter()
        .map(|s| Neighbour {
            id: s.key,
            distance: s.distance,
        })
        .collect())
}

//! The graph under concurrent inserts, deletes and searches through `&self`: every result is
//! valid while changes run, nothing deadlocks, and a search never waits for an insert that
//! is in the middle of linking (proved with a source that pauses the insert, not by timing).

mod common;

use common::random_data;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use vellum_index::{FlatVectors, Hnsw, HnswParams, Metric, Neighbour, VectorSource};

const DIM: usize = 16;

fn params() -> HnswParams {
    HnswParams {
        m: 8,
        ef_construction: 64,
        ef_search: 32,
        seed: 7,
    }
}

/// A result is valid: ids unique and among `allowed`, distances true and ascending.
fn check_valid(
    source: &FlatVectors<'_>,
    query: &[f32],
    hits: &[Neighbour],
    allowed: impl Fn(u64) -> bool,
) {
    let mut seen = std::collections::HashSet::new();
    for (i, hit) in hits.iter().enumerate() {
        assert!(allowed(hit.id), "id {} may not be returned", hit.id);
        assert!(seen.insert(hit.id), "id {} returned twice", hit.id);
        let d = Metric::L2.distance(query, source.vector(hit.id));
        assert!(
            (d - hit.distance).abs() <= 1e-4 * d.max(1.0),
            "distance of {}",
            hit.id
        );
        if i > 0 {
            assert!(hits[i - 1].distance <= hit.distance, "not sorted");
        }
    }
}

fn recall(index: &Hnsw, source: &FlatVectors<'_>, data: &[f32], queries: usize) -> f64 {
    let mut found = 0;
    for q in 0..queries {
        let query = &data[q * 7 * DIM..q * 7 * DIM + DIM];
        let truth: Vec<u64> = index
            .exact_search(source, query, 10, None)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        let hits = index.search(source, query, 10).unwrap();
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    found as f64 / (queries * 10) as f64
}

#[test]
fn searches_beside_two_inserting_threads_return_valid_results_and_the_graph_ends_complete() {
    let rows = 4000;
    let data = random_data(1, rows, DIM);
    let source = FlatVectors::new(&data, DIM);
    let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    index
        .insert_batch(&source, &(0..1000).collect::<Vec<u64>>())
        .unwrap();
    let inserted = AtomicUsize::new(1000);
    let writers_done = AtomicUsize::new(0);
    let searches = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let (index, source, inserted, writers_done) =
                (&index, &source, &inserted, &writers_done);
            s.spawn(move || {
                // Writer w inserts every other id of 1000..4000, one at a time.
                for id in (1000 + w..rows as u64).step_by(2) {
                    index.insert(source, id).unwrap();
                    inserted.fetch_add(1, Ordering::Relaxed);
                }
                writers_done.fetch_add(1, Ordering::Release);
            });
        }
        for r in 0..2usize {
            let (index, source, data, writers_done, searches) =
                (&index, &source, &data, &writers_done, &searches);
            s.spawn(move || {
                let mut q = r;
                while writers_done.load(Ordering::Acquire) < 2 {
                    let query = &data[(q % rows) * DIM..(q % rows) * DIM + DIM];
                    let hits = index.search(source, query, 10).unwrap();
                    check_valid(source, query, &hits, |id| id < rows as u64);
                    assert!(!hits.is_empty(), "a graph of 1000+ nodes found nothing");
                    searches.fetch_add(1, Ordering::Relaxed);
                    q += 13;
                }
            });
        }
    });
    assert_eq!(index.len(), rows);
    assert_eq!(index.ids().unwrap(), (0..rows as u64).collect::<Vec<_>>());
    let r = recall(&index, &source, &data, 100);
    println!(
        "{} searches ran beside {} inserts; recall@10 afterwards {r:.3}",
        searches.load(Ordering::Relaxed),
        rows - 1000
    );
    assert!(r >= 0.9, "recall {r}");
}

#[test]
fn a_search_never_returns_an_id_deleted_before_it_began() {
    let rows = 3000;
    let data = random_data(2, rows, DIM);
    let source = FlatVectors::new(&data, DIM);
    let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    index
        .insert_batch_parallel(&source, &(0..rows as u64).collect::<Vec<u64>>())
        .unwrap();
    // Ids 0.. are deleted in order; `deleted` counts those whose delete has returned.
    let deleted = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (index, source, deleted, done) = (&index, &source, &deleted, &done);
        s.spawn(move || {
            for id in 0..1500u64 {
                if id % 2 == 0 {
                    index.delete(source, id).unwrap();
                } else {
                    index.delete_deferred(id).unwrap();
                }
                deleted.store(id as usize + 1, Ordering::Release);
            }
            done.store(true, Ordering::Release);
        });
        for r in 0..2usize {
            let data = &data;
            s.spawn(move || {
                let mut q = r;
                while !done.load(Ordering::Acquire) {
                    let before = deleted.load(Ordering::Acquire) as u64;
                    let query = &data[(q % rows) * DIM..(q % rows) * DIM + DIM];
                    let hits = index.search(source, query, 10).unwrap();
                    check_valid(source, query, &hits, |id| id >= before);
                    q += 17;
                }
            });
        }
    });
    assert_eq!(index.len(), rows - 1500);
    assert_eq!(index.repair_deferred(&source, usize::MAX).unwrap(), 0);
    assert_eq!(index.deferred_repairs(), 0);
    for q in 0..50 {
        let query = &data[q * 31 * DIM..q * 31 * DIM + DIM];
        let hits = index.search(&source, query, 10).unwrap();
        check_valid(&source, query, &hits, |id| id >= 1500);
        assert_eq!(hits.len(), 10);
    }
}

/// A source that pauses the thread making its `pause_after`-th vector read until told to
/// go on: the insert reading through it stops in the middle of linking, with whatever it
/// holds held (a node's lock, the entry lock, the growth lock shared).
struct GateSource<'a> {
    inner: FlatVectors<'a>,
    reads: AtomicUsize,
    pause_after: usize,
    paused: mpsc::SyncSender<()>,
    resume: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl VectorSource for GateSource<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn vector(&self, id: u64) -> &[f32] {
        if self.reads.fetch_add(1, Ordering::Relaxed) == self.pause_after {
            self.paused.send(()).unwrap();
            self.resume.lock().unwrap().recv().unwrap();
        }
        self.inner.vector(id)
    }
}

/// Pauses an insert of `new` (sequential or parallel) mid-link and runs searches meanwhile:
/// they must finish while the insert is still paused. (Another insert may rightly wait: the
/// paused one can hold a node lock it needs.)
fn search_finishes_while_an_insert_is_paused(
    index: &Hnsw,
    data: &[f32],
    new: &[u64],
    parallel: bool,
) {
    let (paused_tx, paused_rx) = mpsc::sync_channel(1);
    let (resume_tx, resume_rx) = mpsc::channel();
    let gate = GateSource {
        inner: FlatVectors::new(data, DIM),
        reads: AtomicUsize::new(0),
        pause_after: 40,
        paused: paused_tx,
        resume: std::sync::Mutex::new(resume_rx),
    };
    let plain = FlatVectors::new(data, DIM);
    std::thread::scope(|s| {
        let inserter = s.spawn(|| {
            if parallel {
                // One pool thread pauses; the others go on linking the batch's other nodes.
                index.insert_batch_parallel(&gate, new).unwrap();
            } else {
                index.insert_batch(&gate, new).unwrap();
            }
        });
        paused_rx.recv().unwrap();
        // The insert is paused inside `link`. A search and another insert must complete.
        let (done_tx, done_rx) = mpsc::channel();
        s.spawn(move || {
            let mut found = usize::MAX;
            for q in 0..20 {
                let query = &data[q * 97 * DIM..q * 97 * DIM + DIM];
                found = found.min(index.search(&plain, query, 5).unwrap().len());
            }
            done_tx.send(found).unwrap();
        });
        // A generous bound that only a deadlock exceeds: the assertion is the ordering (the
        // search finished while the insert was still paused), not a duration.
        let found = done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the search waited for a paused insert");
        assert_eq!(found, 5);
        assert!(
            !inserter.is_finished(),
            "the paused insert went on without its gate"
        );
        resume_tx.send(()).unwrap();
        inserter.join().unwrap();
    });
}

#[test]
fn searches_finish_while_an_insert_is_paused_mid_link() {
    let rows = 3000;
    let data = random_data(3, rows, DIM);
    let source = FlatVectors::new(&data, DIM);
    for parallel in [false, true] {
        let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
        index
            .insert_batch(&source, &(0..1000).collect::<Vec<u64>>())
            .unwrap();
        let new: Vec<u64> = (1000..2000).collect();
        search_finishes_while_an_insert_is_paused(&index, &data, &new, parallel);
        assert_eq!(index.len(), 2000);
    }
    // An opened graph: the first insert copies the links, then pauses mid-link.
    let base = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    base.insert_batch(&source, &(0..1000).collect::<Vec<u64>>())
        .unwrap();
    let opened = Hnsw::from_bytes(base.to_bytes().unwrap()).unwrap();
    assert!(opened.is_zero_copy());
    search_finishes_while_an_insert_is_paused(&opened, &data, &[1500], false);
    assert!(!opened.is_zero_copy());
    assert_eq!(opened.len(), 1001);
}

#[test]
fn an_opened_graph_copies_its_links_once_while_searches_go_on() {
    let rows = 2000;
    let data = random_data(4, rows, DIM);
    let source = FlatVectors::new(&data, DIM);
    let base = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    base.insert_batch(&source, &(0..1500).collect::<Vec<u64>>())
        .unwrap();
    let opened = Hnsw::from_bytes(base.to_bytes().unwrap()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (opened, source, done, data) = (&opened, &source, &done, &data);
        for r in 0..2usize {
            s.spawn(move || {
                let mut q = r;
                while !done.load(Ordering::Acquire) {
                    let query = &data[(q % rows) * DIM..(q % rows) * DIM + DIM];
                    let hits = opened.search(source, query, 10).unwrap();
                    check_valid(source, query, &hits, |id| id < rows as u64);
                    assert_eq!(hits.len(), 10);
                    q += 11;
                }
            });
        }
        // Two threads race to make the first change: one copy, both inserts land.
        std::thread::scope(|inner| {
            inner.spawn(|| {
                opened
                    .insert_batch(source, &(1500..1750).collect::<Vec<_>>())
                    .unwrap()
            });
            inner.spawn(|| {
                opened
                    .insert_batch(source, &(1750..2000).collect::<Vec<_>>())
                    .unwrap()
            });
        });
        done.store(true, Ordering::Release);
    });
    assert_eq!(opened.len(), rows);
    assert!(recall(&opened, &source, &data, 50) >= 0.9);
}

/// Two near points inserted at the same time never see each other, and the heuristic of a
/// neighbour both link to used to drop one "because the other leads to it" when it did
/// not: 5% of these builds left a point no search could reach (found by the golden test).
/// Shrinks now keep such a node of the insert under way, and `repair_unreachable` (which
/// the facade runs at the end of `wait_indexed` and before every checkpoint) links back
/// what is left: without it, about 1 build in 50 here still leaves one.
#[test]
fn every_point_of_small_parallel_builds_is_reachable_once_repaired() {
    let dim = 4;
    let rows = 40u64;
    let data: Vec<f32> = (0..rows)
        .flat_map(|id| {
            (0..dim as u64).map(move |d| match d {
                0 => id as f32 * 0.5,
                _ => ((id * 13 + d * 5 + 3) % 17) as f32 + 0.25 * d as f32,
            })
        })
        .collect();
    let source = FlatVectors::new(&data, dim);
    let params = HnswParams {
        m: 4,
        ef_construction: 32,
        ef_search: 32,
        seed: 3,
    };
    let ids: Vec<u64> = (0..rows).collect();
    let mut unreachable = Vec::new();
    for build in 0..200 {
        let index = Hnsw::new(dim, Metric::L2, params).unwrap();
        for chunk in ids.chunks(8) {
            index.insert_batch_parallel(&source, chunk).unwrap();
        }
        index.repair_unreachable(&source).unwrap();
        // ef below the point count, so this is the graph walk, not the exact scan.
        let options = vellum_index::SearchOptions {
            ef: Some(rows as usize - 1),
            filter: None,
        };
        for &id in &ids {
            let hits = index
                .search_with(&source, source.vector(id), 1, &options)
                .unwrap();
            if hits[0].id != id {
                unreachable.push((build, id));
            }
        }
    }
    println!("200 parallel builds of {rows} points, every point searched for");
    assert!(
        unreachable.is_empty(),
        "(build, id) unreachable: {unreachable:?}"
    );
}

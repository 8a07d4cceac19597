//! Replacing an id's vector with `Hnsw::upsert`: the id is found at its new vector only,
//! once, the count is unchanged, and search keeps agreeing with exact search after any
//! sequence of upserts and deletes.

mod common;

use std::collections::BTreeMap;

use common::random_data;
use proptest::prelude::*;
use vellum_index::{
    Error, FlatVectors, Hnsw, HnswParams, Metric, Neighbour, OwnedVectors, SearchOptions,
    VectorSource,
};

const DIM: usize = 8;

fn params() -> HnswParams {
    HnswParams {
        m: 8,
        ef_construction: 64,
        ef_search: 32,
        seed: 11,
    }
}

/// `rows` random vectors under ids `0..rows`, indexed.
fn built(rows: usize) -> (Hnsw, OwnedVectors) {
    let data = random_data(3, rows, DIM);
    let mut vectors = OwnedVectors::new(DIM);
    for (id, row) in (0u64..).zip(data.chunks_exact(DIM)) {
        vectors.insert(id, row).unwrap();
    }
    let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    index
        .insert_batch(&vectors, &(0..rows as u64).collect::<Vec<u64>>())
        .unwrap();
    (index, vectors)
}

/// Every live id, each once: a search as wide as the index (the exact path).
fn all_hits<S: VectorSource>(index: &Hnsw, vectors: &S, query: &[f32]) -> Vec<Neighbour> {
    let options = SearchOptions {
        ef: Some(index.len().max(1)),
        ..SearchOptions::default()
    };
    index
        .search_with(vectors, query, index.len(), &options)
        .unwrap()
}

fn assert_each_id_once(hits: &[Neighbour]) {
    let mut seen = std::collections::HashSet::new();
    for hit in hits {
        assert!(seen.insert(hit.id), "id {} was returned twice", hit.id);
    }
}

#[test]
fn an_upserted_id_is_found_at_its_new_vector_and_no_longer_at_its_old_one() {
    let (index, mut vectors) = built(300);
    let old = vectors.get(7).unwrap().to_vec();
    let new: Vec<f32> = (0..DIM).map(|d| 5.0 + d as f32).collect();
    vectors.insert(7, &new).unwrap();
    assert!(index.upsert(&vectors, 7).unwrap(), "7 was present");
    assert_eq!(index.len(), 300, "a replace does not change the count");

    let hits = index.search(&vectors, &new, 3).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (7, 0.0));
    // The old vector's place is empty now: nothing sits at distance 0 from it, and 7 is
    // not returned there at all (its new vector is far away).
    let near_old = index.search(&vectors, &old, 10).unwrap();
    assert!(near_old.iter().all(|h| h.distance > 0.0), "{near_old:?}");
    assert!(near_old.iter().all(|h| h.id != 7), "{near_old:?}");
    let everything = all_hits(&index, &vectors, &old);
    assert_eq!(everything.len(), 300);
    assert_each_id_once(&everything);
}

/// The graph must move a replaced id, not just the source: an index that kept the old node
/// (scored with the new vector, since the source holds only that) would still answer an
/// exhaustive search right, but a narrow walk near the new place would not reach it.
#[test]
fn upserted_ids_are_found_by_a_narrow_graph_walk_at_their_new_place() {
    let rows = 4000;
    let (index, mut vectors) = built(rows);
    let moved: Vec<u64> = (0..rows as u64).step_by(20).collect();
    for &id in &moved {
        // The opposite side of the cloud from where the id was.
        let new: Vec<f32> = vectors.get(id).unwrap().iter().map(|x| -x).collect();
        vectors.insert(id, &new).unwrap();
    }
    assert_eq!(index.upsert_batch(&vectors, &moved).unwrap(), moved.len());
    assert_eq!(index.len(), rows);
    let narrow = SearchOptions {
        ef: Some(10),
        ..SearchOptions::default()
    };
    let found = moved
        .iter()
        .filter(|&&id| {
            let hits = index
                .search_with(&vectors, vectors.get(id).unwrap(), 1, &narrow)
                .unwrap();
            hits.first().map(|h| (h.id, h.distance)) == Some((id, 0.0))
        })
        .count();
    assert!(
        found * 100 >= moved.len() * 95,
        "a narrow walk found {found} of {} moved ids at their new place",
        moved.len()
    );
}

#[test]
fn upserting_an_absent_id_inserts_it() {
    let (index, mut vectors) = built(50);
    let v = vec![9.0; DIM];
    vectors.insert(1000, &v).unwrap();
    assert!(!index.upsert(&vectors, 1000).unwrap());
    assert_eq!(index.len(), 51);
    assert_eq!(index.search(&vectors, &v, 1).unwrap()[0].id, 1000);
}

#[test]
fn insert_still_refuses_a_present_id() {
    let (index, vectors) = built(20);
    assert!(matches!(
        index.insert(&vectors, 3),
        Err(Error::DuplicateId { id: 3 })
    ));
    assert_eq!(index.len(), 20);
}

#[test]
fn an_id_upserted_then_deleted_can_be_inserted_again() {
    let (index, mut vectors) = built(100);
    vectors.insert(4, &[3.0; DIM]).unwrap();
    index.upsert(&vectors, 4).unwrap();
    index.delete(&vectors, 4).unwrap();
    assert!(!index.contains(4));
    assert_eq!(index.len(), 99);
    let hits = index.search(&vectors, &[3.0; DIM], 5).unwrap();
    assert!(hits.iter().all(|h| h.id != 4));
    vectors.insert(4, &[-3.0; DIM]).unwrap();
    index.insert(&vectors, 4).unwrap();
    assert_eq!(index.len(), 100);
    let hits = index.search(&vectors, &[-3.0; DIM], 1).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (4, 0.0));
    assert_each_id_once(&all_hits(&index, &vectors, &[0.0; DIM]));
}

#[test]
fn upsert_batch_replaces_some_inserts_others_and_counts_the_replaced() {
    let (index, mut vectors) = built(100);
    let ids = [5u64, 50, 500, 501];
    for (i, &id) in ids.iter().enumerate() {
        vectors.insert(id, &[10.0 + i as f32; DIM]).unwrap();
    }
    assert_eq!(index.upsert_batch(&vectors, &ids).unwrap(), 2);
    assert_eq!(index.len(), 102);
    for (i, &id) in ids.iter().enumerate() {
        let hits = index.search(&vectors, &[10.0 + i as f32; DIM], 1).unwrap();
        assert_eq!((hits[0].id, hits[0].distance), (id, 0.0));
    }
}

#[test]
fn upsert_batch_refuses_a_repeated_id_before_changing_anything() {
    let (index, mut vectors) = built(30);
    // An opened graph file: the first change would copy it into memory.
    let opened = Hnsw::from_bytes(index.to_bytes().unwrap()).unwrap();
    vectors.insert(2, &[1.0; DIM]).unwrap();
    assert!(matches!(
        opened.upsert_batch(&vectors, &[1, 2, 1]),
        Err(Error::DuplicateId { id: 1 })
    ));
    assert!(opened.is_zero_copy(), "the refused batch changed the index");
    assert_eq!(opened.ids().unwrap(), (0..30).collect::<Vec<u64>>());
}

#[test]
fn upsert_on_an_opened_graph_file_replaces_the_id() {
    let (index, mut vectors) = built(200);
    let opened = Hnsw::from_bytes(index.to_bytes().unwrap()).unwrap();
    assert!(opened.is_zero_copy());
    vectors.insert(150, &[7.0; DIM]).unwrap();
    assert!(opened.upsert(&vectors, 150).unwrap());
    assert_eq!(opened.len(), 200);
    let hits = opened.search(&vectors, &[7.0; DIM], 1).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (150, 0.0));
}

#[test]
fn upsert_refuses_a_source_of_another_dimension() {
    let (index, _) = built(10);
    let data = [0.0f32; 3];
    assert!(matches!(
        index.upsert(&FlatVectors::new(&data, 3), 1),
        Err(Error::DimensionMismatch { .. })
    ));
}

#[test]
fn searches_running_during_upserts_never_return_an_id_twice() {
    let rows = 1500;
    let data = random_data(8, rows, DIM);
    let source = FlatVectors::new(&data, DIM);
    let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    index
        .insert_batch(&source, &(0..rows as u64).collect::<Vec<u64>>())
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Each round replaces the nodes of 0..100 (with the same vectors, so the source
            // never changes under a search).
            for _ in 0..20 {
                index
                    .upsert_batch(&source, &(0..100).collect::<Vec<u64>>())
                    .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        for t in 0..2u64 {
            let (index, done, data) = (&index, &done, &data);
            s.spawn(move || {
                let mut q = t as usize;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    q = (q + 7) % 100;
                    let query = &data[q * DIM..(q + 1) * DIM];
                    assert_each_id_once(&index.search(&source, query, 20).unwrap());
                    assert_each_id_once(&all_hits(index, &source, query));
                }
            });
        }
    });
    assert_eq!(index.len(), rows);
}

/// Pauses the first read of one id's vector until the test says go on.
struct PauseOnce<'a> {
    inner: FlatVectors<'a>,
    pause_on: u64,
    armed: std::sync::atomic::AtomicBool,
    reached: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    resume: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl VectorSource for PauseOnce<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn vector(&self, id: u64) -> &[f32] {
        if id == self.pause_on && self.armed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.reached.lock().unwrap().send(()).unwrap();
            self.resume.lock().unwrap().recv().unwrap();
        }
        self.inner.vector(id)
    }
}

/// Made to happen, not hoped for: an exhaustive search scores id 0's node, pauses, id 0 is
/// upserted (same vector, new node at the end of the arrays), and the search goes on to
/// score the new node too. It must still return id 0 once.
#[test]
fn a_search_that_races_an_upsert_returns_the_id_once() {
    let rows = 1001;
    let data = random_data(9, rows, DIM);
    let (reached_tx, reached_rx) = std::sync::mpsc::channel();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel();
    let source = PauseOnce {
        inner: FlatVectors::new(&data, DIM),
        pause_on: 500,
        armed: std::sync::atomic::AtomicBool::new(false),
        reached: std::sync::Mutex::new(reached_tx),
        resume: std::sync::Mutex::new(resume_rx),
    };
    let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
    // 1000 nodes, then one more: the arrays double to 2000, so the upsert's new node fits
    // in the arrays the search is scanning (no growth).
    index
        .insert_batch(&source, &(0..1000).collect::<Vec<u64>>())
        .unwrap();
    index.insert(&source, 1000).unwrap();
    source
        .armed
        .store(true, std::sync::atomic::Ordering::Release);
    std::thread::scope(|s| {
        let search = s.spawn(|| all_hits(&index, &source, &data[..DIM]));
        reached_rx.recv().unwrap();
        assert!(index.upsert(&source, 0).unwrap());
        resume_tx.send(()).unwrap();
        let hits = search.join().unwrap();
        assert_each_id_once(&hits);
        // The search kept the `rows` best of what it scored (id 0 twice among them), so
        // one fewer remains.
        assert_eq!(hits.len(), rows - 1);
        assert_eq!((hits[0].id, hits[0].distance), (0, 0.0));
    });
}

/// Top `k` of `model` by brute force, ties by id (the index's order).
fn brute_force(model: &BTreeMap<u64, Vec<f32>>, query: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = model
        .iter()
        .map(|(&id, v)| (id, Metric::L2.distance(query, v)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u64, Vec<f32>),
    Delete(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..60, prop::collection::vec(-1.0f32..1.0, DIM)).prop_map(|(id, v)| Op::Upsert(id, v)),
        1 => (0u64..60).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn after_any_upserts_and_deletes_search_agrees_with_exact_search(
        ops in prop::collection::vec(op(), 1..160),
        queries in prop::collection::vec(prop::collection::vec(-1.0f32..1.0, DIM), 4),
    ) {
        let index = Hnsw::new(DIM, Metric::L2, params()).unwrap();
        let mut vectors = OwnedVectors::new(DIM);
        let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Upsert(id, v) => {
                    vectors.insert(id, &v).unwrap();
                    let replaced = index.upsert(&vectors, id).unwrap();
                    prop_assert_eq!(replaced, model.insert(id, v).is_some());
                }
                Op::Delete(id) => {
                    if model.remove(&id).is_some() {
                        index.delete(&vectors, id).unwrap();
                        vectors.remove(id);
                    } else {
                        prop_assert!(index.delete(&vectors, id).is_err());
                    }
                }
            }
            prop_assert_eq!(index.len(), model.len());
        }
        prop_assert_eq!(index.ids().unwrap(), model.keys().copied().collect::<Vec<u64>>());
        for query in &queries {
            let want = brute_force(&model, query, 10);
            let exact: Vec<(u64, f32)> = index
                .exact_search(&vectors, query, 10, None)
                .unwrap()
                .iter()
                .map(|h| (h.id, h.distance))
                .collect();
            prop_assert_eq!(&exact, &want);
            // As wide as the index: the search must return exactly the model's answer.
            let wide: Vec<(u64, f32)> = all_hits(&index, &vectors, query)
                .iter()
                .take(10)
                .map(|h| (h.id, h.distance))
                .collect();
            prop_assert_eq!(&wide, &want);
        }
        // The graph walk (default ef, narrower than the index once it has grown) finds
        // each id at its current vector.
        let found = model
            .iter()
            .filter(|(id, v)| {
                let hits = index.search(&vectors, v, 1).unwrap();
                hits.first().map(|h| (h.id, h.distance)) == Some((**id, 0.0))
            })
            .count();
        prop_assert!(
            found as f64 >= 0.95 * model.len() as f64,
            "self-queries found {} of {}", found, model.len()
        );
    }
}

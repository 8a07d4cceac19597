//! Exact search against brute force, HNSW recall, deletes, filters, save and reopen.

mod common;

use common::random_data;
use std::collections::HashSet;

use proptest::prelude::*;
use vellum_index::{
    Filter, FlatVectors, Hnsw, HnswParams, Metric, Neighbour, SearchOptions, exact_search,
};

const METRICS: [Metric; 3] = [Metric::L2, Metric::Cosine, Metric::Dot];

/// Scalar, float64 reference distance, written independently of the crate's kernels.
fn reference_distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    match metric {
        Metric::L2 => a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum(),
        Metric::Dot => -dot,
        _ => {
            let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
            let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum();
            if na * nb > 0.0 {
                1.0 - dot / (na * nb).sqrt()
            } else {
                1.0
            }
        }
    }
}

fn brute_force(
    source: &FlatVectors<'_>,
    ids: &[u64],
    metric: Metric,
    query: &[f32],
    k: usize,
    accept: impl Fn(u64) -> bool,
) -> Vec<(u64, f64)> {
    let mut all: Vec<(u64, f64)> = ids
        .iter()
        .copied()
        .filter(|&id| accept(id))
        .map(|id| {
            use vellum_index::VectorSource;
            (id, reference_distance(metric, query, source.vector(id)))
        })
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Same length, distances equal within tolerance, and each returned id is at the brute-force
/// distance of its rank (ids may swap only between near-equal distances).
fn assert_matches_brute_force(
    got: &[Neighbour],
    want: &[(u64, f64)],
    source: &FlatVectors<'_>,
    metric: Metric,
    query: &[f32],
) {
    use vellum_index::VectorSource;
    assert_eq!(got.len(), want.len(), "result count");
    for (g, w) in got.iter().zip(want) {
        let tolerance = 1e-4 * (1.0 + w.1.abs());
        assert!(
            (f64::from(g.distance) - w.1).abs() <= tolerance,
            "{g:?} vs {w:?}"
        );
        let actual = reference_distance(metric, query, source.vector(g.id));
        assert!(
            (actual - w.1).abs() <= tolerance,
            "id {} is not at rank distance",
            g.id
        );
    }
    let unique: HashSet<u64> = got.iter().map(|n| n.id).collect();
    assert_eq!(unique.len(), got.len(), "duplicate ids in {got:?}");
}

fn build(data: &[f32], dim: usize, metric: Metric, params: HnswParams) -> Hnsw {
    let source = FlatVectors::new(data, dim);
    let index = Hnsw::new(dim, metric, params).unwrap();
    let ids: Vec<u64> = (0..source.len() as u64).collect();
    index.insert_batch(&source, &ids).unwrap();
    index
}

fn recall(got: &[Neighbour], want: &[Neighbour]) -> f64 {
    let want: HashSet<u64> = want.iter().map(|n| n.id).collect();
    got.iter().filter(|n| want.contains(&n.id)).count() as f64 / want.len().max(1) as f64
}

/// Mean recall@k of HNSW against the index's exact search over `queries`.
fn mean_recall(
    index: &Hnsw,
    source: &FlatVectors<'_>,
    queries: &[f32],
    k: usize,
    options: &SearchOptions<'_>,
) -> f64 {
    let dim = index.dim();
    let mut total = 0.0;
    let count = queries.len() / dim;
    for query in queries.chunks_exact(dim) {
        let got = index.search_with(source, query, k, options).unwrap();
        let want = index
            .exact_search(source, query, k, options.filter.as_ref())
            .unwrap();
        total += recall(&got, &want);
    }
    total / count as f64
}

#[derive(Debug, Clone)]
enum FilterKind {
    None,
    AllowEveryNth(u64),
    DenyEveryNth(u64),
    AllowIds(Vec<u64>),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn exact_search_equals_brute_force_for_every_metric_and_filter(
        seed in any::<u64>(),
        rows in 1usize..300,
        dim in 1usize..24,
        k in 1usize..20,
        metric in prop::sample::select(METRICS.to_vec()),
        filter in prop_oneof![
            Just(FilterKind::None),
            (2u64..7).prop_map(FilterKind::AllowEveryNth),
            (2u64..7).prop_map(FilterKind::DenyEveryNth),
            prop::collection::vec(0u64..400, 0..40).prop_map(FilterKind::AllowIds),
        ],
    ) {
        let data = random_data(seed, rows + 1, dim);
        let (data, query) = data.split_at(rows * dim);
        let source = FlatVectors::new(data, dim);
        let ids: Vec<u64> = (0..rows as u64).collect();
        let allow_nth = |n: u64| move |id: u64| id.is_multiple_of(n);
        let (accept, filter): (Box<dyn Fn(u64) -> bool>, Option<Filter<'_>>) = match &filter {
            FilterKind::None => (Box::new(|_| true), None),
            FilterKind::AllowEveryNth(n) => {
                let p: &(dyn Fn(u64) -> bool + Sync) = Box::leak(Box::new(allow_nth(*n)));
                (Box::new(allow_nth(*n)), Some(Filter::Allow(p)))
            }
            FilterKind::DenyEveryNth(n) => {
                let p: &(dyn Fn(u64) -> bool + Sync) = Box::leak(Box::new(allow_nth(*n)));
                let n = *n;
                (Box::new(move |id| id % n != 0), Some(Filter::Deny(p)))
            }
            FilterKind::AllowIds(list) => {
                let set: HashSet<u64> = list.iter().copied().collect();
                (Box::new(move |id| set.contains(&id)), Some(Filter::AllowIds(list)))
            }
        };
        let want = brute_force(&source, &ids, metric, query, k, &accept);
        let got = exact_search(&source, &ids, metric, query, k, filter.as_ref()).unwrap();
        assert_matches_brute_force(&got, &want, &source, metric, query);

        // The index's exact path and its small-set search path agree with brute force too.
        let index = build(data, dim, metric, HnswParams { ef_construction: 32, ..HnswParams::default() });
        let got = index.exact_search(&source, query, k, filter.as_ref()).unwrap();
        assert_matches_brute_force(&got, &want, &source, metric, query);
        let options = SearchOptions { ef: Some(rows.max(1)), filter };
        let got = index.search_with(&source, query, k, &options).unwrap();
        assert_matches_brute_force(&got, &want, &source, metric, query);
    }
}

#[test]
fn hnsw_reaches_recall_at_10_of_at_least_0_99_with_large_ef_on_random_sets() {
    let dim = 12;
    let data = random_data(11, 1500, dim);
    let queries = random_data(12, 40, dim);
    for metric in METRICS {
        let index = build(&data, dim, metric, HnswParams::default());
        let source = FlatVectors::new(&data, dim);
        let options = SearchOptions {
            ef: Some(200),
            filter: None,
        };
        let r = mean_recall(&index, &source, &queries, 10, &options);
        assert!(r >= 0.99, "{metric:?}: recall@10 {r}");
    }
}

#[test]
fn parallel_build_reaches_the_same_recall() {
    let dim = 12;
    let data = random_data(21, 1500, dim);
    let queries = random_data(22, 40, dim);
    let source = FlatVectors::new(&data, dim);
    let index = Hnsw::new(dim, Metric::L2, HnswParams::default()).unwrap();
    let ids: Vec<u64> = (0..1500).collect();
    index.insert_batch_parallel(&source, &ids).unwrap();
    assert_eq!(index.len(), 1500);
    let r = mean_recall(
        &index,
        &source,
        &queries,
        10,
        &SearchOptions {
            ef: Some(200),
            filter: None,
        },
    );
    assert!(r >= 0.99, "recall@10 {r}");
}

#[test]
fn sequential_build_is_deterministic_for_a_seed_and_order() {
    let data = random_data(31, 600, 8);
    let a = build(&data, 8, Metric::Cosine, HnswParams::default())
        .to_bytes()
        .unwrap();
    let b = build(&data, 8, Metric::Cosine, HnswParams::default())
        .to_bytes()
        .unwrap();
    assert_eq!(a, b);
    let other_seed = HnswParams {
        seed: 99,
        ..HnswParams::default()
    };
    let c = build(&data, 8, Metric::Cosine, other_seed)
        .to_bytes()
        .unwrap();
    assert_ne!(a, c, "a different seed draws different levels");
}

#[test]
fn deleted_ids_are_never_returned_and_recall_holds_after_many_deletes() {
    let dim = 10;
    let data = random_data(41, 1200, dim);
    let queries = random_data(42, 40, dim);
    let source = FlatVectors::new(&data, dim);
    let index = build(&data, dim, Metric::L2, HnswParams::default());
    // Delete 60%, in a scattered order.
    let deleted: Vec<u64> = (0..1200u64).filter(|i| (i * 7919) % 5 < 3).collect();
    for &id in &deleted {
        index.delete(&source, id).unwrap();
    }
    assert_eq!(index.len(), 1200 - deleted.len());
    let deleted: HashSet<u64> = deleted.into_iter().collect();
    for query in queries.chunks_exact(dim) {
        for hit in index
            .search_with(&source, query, 50, &SearchOptions::default())
            .unwrap()
        {
            assert!(!deleted.contains(&hit.id), "deleted id {} returned", hit.id);
        }
    }
    let options = SearchOptions {
        ef: Some(200),
        filter: None,
    };
    let r = mean_recall(&index, &source, &queries, 10, &options);
    assert!(r >= 0.97, "recall@10 after deletes {r}");
    // The saved file drops the tombstones and keeps the recall.
    let reopened = Hnsw::from_bytes(index.to_bytes().unwrap()).unwrap();
    assert_eq!(reopened.len(), index.len());
    for query in queries.chunks_exact(dim) {
        for hit in reopened.search(&source, query, 50).unwrap() {
            assert!(
                !deleted.contains(&hit.id),
                "deleted id {} returned after reopen",
                hit.id
            );
        }
    }
    let r = mean_recall(&reopened, &source, &queries, 10, &options);
    assert!(r >= 0.97, "recall@10 after deletes and reopen {r}");
}

#[test]
fn deleting_every_id_then_inserting_again_works() {
    let data = random_data(51, 200, 4);
    let source = FlatVectors::new(&data, 4);
    let index = build(&data[..100 * 4], 4, Metric::L2, HnswParams::default());
    for id in 0..100 {
        index.delete(&source, id).unwrap();
    }
    assert!(index.is_empty());
    assert!(index.search(&source, &data[..4], 5).unwrap().is_empty());
    let ids: Vec<u64> = (100..200).collect();
    index.insert_batch(&source, &ids).unwrap();
    let hits = index.search(&source, &data[150 * 4..151 * 4], 1).unwrap();
    assert_eq!(hits[0].id, 150);
    // A deleted id can come back.
    index.insert(&source, 3).unwrap();
    assert_eq!(
        index.search(&source, &data[3 * 4..4 * 4], 1).unwrap()[0].id,
        3
    );
}

#[test]
fn save_then_open_gives_the_same_results_without_copying() {
    let dim = 16;
    let data = random_data(61, 2000, dim);
    let queries = random_data(62, 30, dim);
    let source = FlatVectors::new(&data, dim);
    for metric in METRICS {
        let index = build(
            &data,
            dim,
            metric,
            HnswParams {
                m: 8,
                ..HnswParams::default()
            },
        );
        let bytes = index.to_bytes().unwrap();
        let reopened = Hnsw::from_bytes(bytes.clone()).unwrap();
        assert!(reopened.is_zero_copy());
        assert_eq!(
            (reopened.dim(), reopened.metric(), reopened.params()),
            (dim, metric, index.params())
        );
        for query in queries.chunks_exact(dim) {
            for ef in [10, 64] {
                let options = SearchOptions {
                    ef: Some(ef),
                    filter: None,
                };
                assert_eq!(
                    index.search_with(&source, query, 10, &options).unwrap(),
                    reopened.search_with(&source, query, 10, &options).unwrap()
                );
            }
        }
        assert_eq!(
            reopened.to_bytes().unwrap(),
            bytes,
            "re-encoding an opened file is stable"
        );
    }
}

#[test]
fn opening_unaligned_bytes_copies_them_and_still_works() {
    let data = random_data(71, 300, 6);
    let source = FlatVectors::new(&data, 6);
    let index = build(&data, 6, Metric::L2, HnswParams::default());
    let bytes = index.to_bytes().unwrap();
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    struct Offset(Vec<u8>);
    impl AsRef<[u8]> for Offset {
        fn as_ref(&self) -> &[u8] {
            &self.0[1..]
        }
    }
    let reopened = Hnsw::open(std::sync::Arc::new(Offset(shifted))).unwrap();
    let query = &data[..6];
    assert_eq!(
        reopened.search(&source, query, 5).unwrap(),
        index.search(&source, query, 5).unwrap()
    );
}

#[test]
fn inserts_and_deletes_apply_on_top_of_an_opened_graph() {
    let dim = 8;
    let data = random_data(81, 1600, dim);
    let queries = random_data(82, 30, dim);
    let source = FlatVectors::new(&data, dim);
    let base = build(&data[..1000 * dim], dim, Metric::L2, HnswParams::default());
    let index = Hnsw::from_bytes(base.to_bytes().unwrap()).unwrap();
    index
        .insert_batch(&source, &(1000..1600).collect::<Vec<u64>>())
        .unwrap();
    assert!(!index.is_zero_copy());
    for id in (0..1600).step_by(4) {
        index.delete(&source, id).unwrap();
    }
    assert!(matches!(
        index.insert(&source, 1),
        Err(vellum_index::Error::DuplicateId { id: 1 })
    ));
    assert!(matches!(
        index.delete(&source, 4),
        Err(vellum_index::Error::UnknownId { id: 4 })
    ));
    let saved = Hnsw::from_bytes(index.to_bytes().unwrap()).unwrap();
    let want: Vec<u64> = (0..1600).filter(|id| id % 4 != 0).collect();
    assert_eq!(saved.ids().unwrap(), want);
    let options = SearchOptions {
        ef: Some(200),
        filter: None,
    };
    let r = mean_recall(&saved, &source, &queries, 10, &options);
    assert!(r >= 0.98, "recall@10 {r}");
}

#[test]
fn filtered_search_keeps_recall_for_selective_and_broad_filters() {
    let dim = 8;
    let rows = 20_000;
    let data = random_data(91, rows, dim);
    let queries = random_data(92, 20, dim);
    let source = FlatVectors::new(&data, dim);
    let index = build(
        &data,
        dim,
        Metric::L2,
        HnswParams {
            ef_construction: 64,
            ..HnswParams::default()
        },
    );
    // 1%: below the exact threshold. 30% and a 95% deny-list: widened graph walk.
    let one_percent = |id: u64| id % 100 == 7;
    let thirty_percent = |id: u64| id % 10 < 3;
    let deny_five_percent = |id: u64| id.is_multiple_of(20);
    let cases: [(&str, Filter<'_>); 3] = [
        ("allow 1%", Filter::Allow(&one_percent)),
        ("allow 30%", Filter::Allow(&thirty_percent)),
        ("deny 5%", Filter::Deny(&deny_five_percent)),
    ];
    for (name, filter) in cases {
        let options = SearchOptions {
            ef: Some(64),
            filter: Some(filter),
        };
        for query in queries.chunks_exact(dim) {
            for hit in index.search_with(&source, query, 10, &options).unwrap() {
                assert!(
                    Resolved::accepts(&filter, hit.id),
                    "{name}: {} should be filtered",
                    hit.id
                );
            }
        }
        let r = mean_recall(&index, &source, &queries, 10, &options);
        assert!(r >= 0.95, "{name}: recall@10 {r}");
    }
    let allow: Vec<u64> = (0..rows as u64).step_by(3).collect();
    let options = SearchOptions {
        ef: Some(64),
        filter: Some(Filter::AllowIds(&allow)),
    };
    let r = mean_recall(&index, &source, &queries, 10, &options);
    assert!(r >= 0.95, "allow-list of a third: recall@10 {r}");
}

/// Test-side evaluation of a filter (the crate's own is private).
struct Resolved;
impl Resolved {
    fn accepts(filter: &Filter<'_>, id: u64) -> bool {
        match filter {
            Filter::Allow(p) => p(id),
            Filter::Deny(p) => !p(id),
            Filter::AllowIds(ids) => ids.contains(&id),
            _ => unreachable!("no other filter kinds are used here"),
        }
    }
}

#[test]
fn dimension_mismatch_and_bad_parameters_are_refused() {
    let data = random_data(1, 10, 4);
    let source = FlatVectors::new(&data, 4);
    let index = Hnsw::new(3, Metric::L2, HnswParams::default()).unwrap();
    assert!(matches!(
        index.insert(&source, 0),
        Err(vellum_index::Error::DimensionMismatch { .. })
    ));
    let index4 = build(&data, 4, Metric::L2, HnswParams::default());
    assert!(index4.search(&source, &[0.0; 3], 1).is_err());
    assert!(Hnsw::new(0, Metric::L2, HnswParams::default()).is_err());
    assert!(
        Hnsw::new(
            4,
            Metric::L2,
            HnswParams {
                m: 1,
                ..HnswParams::default()
            }
        )
        .is_err()
    );
    assert!(
        Hnsw::new(
            4,
            Metric::L2,
            HnswParams {
                ef_search: 0,
                ..HnswParams::default()
            }
        )
        .is_err()
    );
}

/// A source that holds only live vectors, like the facade's store: asking for an id that was
/// deleted (or never inserted) panics, which is how this test catches a broken contract.
struct LiveOnly {
    dim: usize,
    live: std::sync::RwLock<std::collections::HashMap<u64, Box<[f32]>>>,
}

impl vellum_index::VectorSource for LiveOnly {
    fn dim(&self) -> usize {
        self.dim
    }

    fn vector(&self, id: u64) -> &[f32] {
        let live = self.live.read().unwrap();
        let v = live
            .get(&id)
            .unwrap_or_else(|| panic!("the index asked for id {id}, which is not live"));
        // Leak a copy so the borrow outlives the lock guard (a few KiB in this test).
        Box::leak(v.clone())
    }
}

#[test]
fn the_index_never_reads_a_deleted_or_replaced_vector() {
    let dim = 6;
    let src = LiveOnly {
        dim,
        live: Default::default(),
    };
    let params = vellum_index::HnswParams {
        m: 6,
        ef_construction: 24,
        ef_search: 32,
        seed: 9,
    };
    let index = vellum_index::Hnsw::new(dim, vellum_index::Metric::L2, params).unwrap();
    let mut seed = 1u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for round in 0..600u32 {
        let id = u64::from(next() % 80);
        let op = next() % 3;
        let present = src.live.read().unwrap().contains_key(&id);
        if op == 0 && present {
            index.delete(&src, id).unwrap();
            src.live.write().unwrap().remove(&id);
        } else {
            if present {
                // Replace: the old node goes first, while its vector is still live.
                index.delete(&src, id).unwrap();
            }
            let v: Box<[f32]> = (0..dim)
                .map(|d| ((round as usize * 7 + d) % 13) as f32)
                .collect();
            src.live.write().unwrap().insert(id, v);
            index.insert(&src, id).unwrap();
        }
        if round % 50 == 0 {
            let q: Vec<f32> = (0..dim).map(|d| d as f32).collect();
            let hits = index.search(&src, &q, 5).unwrap();
            assert!(
                hits.iter()
                    .all(|h| src.live.read().unwrap().contains_key(&h.id))
            );
        }
    }
    assert_eq!(index.len(), src.live.read().unwrap().len());
}

/// Points on a line: the link heuristic keeps about one neighbour on each side, so a run of
/// deleted points cuts the line unless searches walk through the tombstones.
#[test]
fn points_behind_a_run_of_unrepaired_deletes_are_still_found() {
    let dim = 4;
    let n = 1000u64;
    let src = LiveOnly {
        dim,
        live: Default::default(),
    };
    for id in 0..n {
        let v: Box<[f32]> = [id as f32, 0.0, 0.0, 0.0].into();
        src.live.write().unwrap().insert(id, v);
    }
    let params = vellum_index::HnswParams {
        m: 4,
        ef_construction: 16,
        ef_search: 8,
        seed: 3,
    };
    let index = vellum_index::Hnsw::new(dim, vellum_index::Metric::L2, params).unwrap();
    index
        .insert_batch(&src, &(0..n).collect::<Vec<_>>())
        .unwrap();
    // Delete the middle 80% without repairing; the source forgets the vectors at once, so
    // a search that reads a tombstone panics.
    for id in 100..900 {
        index.delete_deferred(id).unwrap();
        src.live.write().unwrap().remove(&id);
    }
    assert_eq!(index.deferred_repairs(), 800);
    let mut missed = Vec::new();
    for id in (0..100).chain(900..n) {
        let q = [id as f32, 0.0, 0.0, 0.0];
        let hits = index.search(&src, &q, 1).unwrap();
        if hits.first().map(|h| h.id) != Some(id) {
            missed.push(id);
        }
    }
    assert!(
        missed.is_empty(),
        "{} live points not found: {missed:?}",
        missed.len()
    );
}

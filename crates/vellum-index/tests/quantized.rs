//! Search on quantized codes with rescoring: recall against exact f32 search, exact
//! distances after rescoring, filters and deletes, and refusals.

mod common;

use common::random_data;
use vellum_index::{
    CodeSource, Error, Filter, FlatCodes, FlatVectors, Hnsw, HnswParams, Metric, QuantKind,
    QuantizedSearch, Quantizer, SearchOptions,
};

const K: usize = 10;

/// Rows around a few centres (uniform noise alone has no neighbours worth finding).
fn clustered(seed: u64, rows: usize, dim: usize) -> Vec<f32> {
    let centres = random_data(seed, 16, dim);
    let noise = random_data(seed + 1, rows, dim);
    (0..rows * dim)
        .map(|i| centres[(i / dim % 16) * dim + i % dim] * 3.0 + noise[i] * 0.5)
        .collect()
}

fn built(data: &[f32], dim: usize, metric: Metric) -> Hnsw {
    let index = Hnsw::new(dim, metric, HnswParams::default()).unwrap();
    let ids: Vec<u64> = (0..(data.len() / dim) as u64).collect();
    index
        .insert_batch(&FlatVectors::new(data, dim), &ids)
        .unwrap();
    index
}

fn codes(kind: QuantKind, metric: Metric, data: &[f32], dim: usize) -> FlatCodes {
    let quantizer = Quantizer::train(kind, metric, dim, data.chunks(dim)).unwrap();
    FlatCodes::encode_rows(quantizer, data).unwrap()
}

/// Mean recall@K of `search` against exact f32 search over `queries`.
fn recall(
    index: &Hnsw,
    source: &FlatVectors<'_>,
    queries: &[f32],
    dim: usize,
    search: impl Fn(&[f32]) -> Vec<u64>,
) -> f64 {
    let mut found = 0;
    let mut total = 0;
    for q in queries.chunks(dim) {
        let truth: Vec<u64> = index
            .exact_search(source, q, K, None)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        let got = search(q);
        found += got.iter().filter(|id| truth.contains(id)).count();
        total += truth.len();
    }
    found as f64 / total as f64
}

#[test]
fn int8_and_f16_with_rescoring_find_what_f32_finds_under_every_metric() {
    let dim = 48;
    let data = clustered(1, 3000, dim);
    let queries = clustered(99, 50, dim);
    let source = FlatVectors::new(&data, dim);
    for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
        let index = built(&data, dim, metric);
        let options = SearchOptions {
            ef: Some(64),
            filter: None,
        };
        let f32_recall = recall(&index, &source, &queries, dim, |q| {
            let hits = index.search_with(&source, q, K, &options).unwrap();
            hits.iter().map(|n| n.id).collect()
        });
        for kind in [QuantKind::Int8, QuantKind::F16] {
            let codes = codes(kind, metric, &data, dim);
            let quantized = recall(&index, &source, &queries, dim, |q| {
                let hits = index
                    .search_quantized(&source, &codes, q, K, &options, &QuantizedSearch::default())
                    .unwrap();
                hits.iter().map(|n| n.id).collect()
            });
            eprintln!("{metric:?} {kind:?}: recall {quantized:.3} (f32 {f32_recall:.3})");
            assert!(
                quantized >= f32_recall - 0.02,
                "{metric:?} {kind:?}: recall {quantized} against f32's {f32_recall}"
            );
        }
    }
}

#[test]
fn binary_codes_walk_about_as_well_as_a_scan_of_the_codes_and_rescoring_lifts_recall() {
    let dim = 256;
    let noisy = |seed: u64, rows: usize| -> Vec<f32> {
        let centres = random_data(seed, 16, dim);
        let noise = random_data(seed + 1, rows, dim);
        (0..rows * dim)
            .map(|i| centres[(i / dim % 16) * dim + i % dim] + noise[i])
            .collect()
    };
    let data = noisy(5, 2000);
    let queries = noisy(55, 30);
    let source = FlatVectors::new(&data, dim);
    let index = built(&data, dim, Metric::Cosine);
    let codes = codes(QuantKind::Binary, Metric::Cosine, &data, dim);
    assert_eq!(codes.bytes(), 2000 * 32, "one bit a dimension");
    let all: Vec<u64> = (0..2000).collect();
    let run = |oversampling: f32, filter: Option<Filter<'_>>| {
        let settings = QuantizedSearch {
            rescore: true,
            oversampling,
        };
        let options = SearchOptions { ef: None, filter };
        recall(&index, &source, &queries, dim, |q| {
            let hits = index
                .search_quantized(&source, &codes, q, K, &options, &settings)
                .unwrap();
            hits.iter().map(|n| n.id).collect()
        })
    };
    let walk_wide = run(10.0, None);
    // Every id allowed, and fewer than FILTER_EXACT_MAX: the codes are scanned exactly.
    let scan_wide = run(10.0, Some(Filter::AllowIds(&all)));
    let walk_narrow = run(1.0, None);
    eprintln!("binary: walk x10 {walk_wide:.3}, scan x10 {scan_wide:.3}, walk x1 {walk_narrow:.3}");
    assert!(
        walk_wide >= scan_wide - 0.05,
        "{walk_wide} vs the scan's {scan_wide}"
    );
    assert!(
        walk_wide >= walk_narrow + 0.1,
        "{walk_wide} vs {walk_narrow} without oversampling"
    );
    assert!(walk_wide >= 0.5, "binary recall {walk_wide}");
}

#[test]
fn rescored_hits_carry_exact_distances_in_order_and_unrescored_ones_approximate_distances() {
    let dim = 24;
    let data = clustered(3, 1500, dim);
    let source = FlatVectors::new(&data, dim);
    let index = built(&data, dim, Metric::L2);
    let codes = codes(QuantKind::Int8, Metric::L2, &data, dim);
    let query = &clustered(77, 1, dim)[..];
    let options = SearchOptions::default();
    let rescored = index
        .search_quantized(
            &source,
            &codes,
            query,
            K,
            &options,
            &QuantizedSearch::default(),
        )
        .unwrap();
    assert_eq!(rescored.len(), K);
    for pair in rescored.windows(2) {
        assert!(pair[0].distance <= pair[1].distance, "{rescored:?}");
    }
    for hit in &rescored {
        let exact = Metric::L2.distance(query, source.vector_row(hit.id));
        assert_eq!(hit.distance, exact, "id {}", hit.id);
    }
    let approximate = index
        .search_quantized(
            &source,
            &codes,
            query,
            K,
            &options,
            &QuantizedSearch {
                rescore: false,
                oversampling: 1.0,
            },
        )
        .unwrap();
    assert_eq!(approximate.len(), K);
    let quantizer = codes.quantizer();
    let mut differs = 0;
    for hit in &approximate {
        let want = quantizer
            .approximate_distance(query, codes.code(hit.id))
            .unwrap();
        assert_eq!(hit.distance, want, "id {}", hit.id);
        let exact = Metric::L2.distance(query, source.vector_row(hit.id));
        differs += usize::from(hit.distance != exact);
    }
    assert!(differs > 0, "int8 distances are approximate");
}

#[test]
fn quantized_search_honours_filters_and_deletes() {
    let dim = 16;
    let data = clustered(4, 2000, dim);
    let source = FlatVectors::new(&data, dim);
    let index = built(&data, dim, Metric::L2);
    let codes = codes(QuantKind::Int8, Metric::L2, &data, dim);
    for id in (0..2000).step_by(3) {
        index.delete(&source, id).unwrap();
    }
    let even = |id: u64| id.is_multiple_of(2);
    let short: Vec<u64> = (0..2000).filter(|id| id % 7 == 0).collect();
    let settings = QuantizedSearch::default();
    for q in clustered(8, 20, dim).chunks(dim) {
        let hits = index
            .search_quantized(&source, &codes, q, K, &SearchOptions::default(), &settings)
            .unwrap();
        assert_eq!(hits.len(), K);
        assert!(hits.iter().all(|h| h.id % 3 != 0), "a deleted id: {hits:?}");
        let filtered = index
            .search_quantized(
                &source,
                &codes,
                q,
                K,
                &SearchOptions {
                    ef: None,
                    filter: Some(Filter::Allow(&even)),
                },
                &settings,
            )
            .unwrap();
        assert_eq!(filtered.len(), K);
        assert!(filtered.iter().all(|h| h.id % 2 == 0 && h.id % 3 != 0));
        let listed = index
            .search_quantized(
                &source,
                &codes,
                q,
                K,
                &SearchOptions {
                    ef: None,
                    filter: Some(Filter::AllowIds(&short)),
                },
                &settings,
            )
            .unwrap();
        assert!(listed.iter().all(|h| h.id % 7 == 0 && h.id % 3 != 0));
        let exact = index
            .exact_search(&source, q, K, Some(&Filter::AllowIds(&short)))
            .unwrap();
        assert_eq!(
            listed[0].id, exact[0].id,
            "a short list is scanned, then rescored"
        );
    }
}

#[test]
fn codes_of_another_metric_or_dimension_and_a_bad_oversampling_are_refused() {
    let dim = 8;
    let data = clustered(6, 100, dim);
    let source = FlatVectors::new(&data, dim);
    let index = built(&data, dim, Metric::L2);
    let query = &data[..dim];
    let options = SearchOptions::default();
    let cosine = codes(QuantKind::Int8, Metric::Cosine, &data, dim);
    let err = index
        .search_quantized(
            &source,
            &cosine,
            query,
            K,
            &options,
            &QuantizedSearch::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "codes", .. }),
        "{err}"
    );
    let narrow_data: Vec<f32> = data.chunks(dim).flat_map(|r| r[..4].to_vec()).collect();
    let narrow = codes(QuantKind::Int8, Metric::L2, &narrow_data, 4);
    let err = index
        .search_quantized(
            &source,
            &narrow,
            query,
            K,
            &options,
            &QuantizedSearch::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "codes", .. }),
        "{err}"
    );
    let good = codes(QuantKind::Int8, Metric::L2, &data, dim);
    for oversampling in [0.5, f32::NAN, f32::INFINITY] {
        let err = index
            .search_quantized(
                &source,
                &good,
                query,
                K,
                &options,
                &QuantizedSearch {
                    rescore: true,
                    oversampling,
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParameter {
                    name: "oversampling",
                    ..
                }
            ),
            "{oversampling}: {err}"
        );
    }
    let err = index
        .search_quantized(
            &source,
            &good,
            &query[..3],
            K,
            &options,
            &QuantizedSearch::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::DimensionMismatch { .. }), "{err}");
}

trait Row {
    fn vector_row(&self, id: u64) -> &[f32];
}

impl Row for FlatVectors<'_> {
    fn vector_row(&self, id: u64) -> &[f32] {
        use vellum_index::VectorSource;
        self.vector(id)
    }
}

//! Distance kernels: pulp's runtime-dispatched SIMD against the scalar fallback, at the
//! dimensions of the benchmark data sets (GloVe 50, fashion-mnist 784).
//!
//! `cargo bench -p vellum-benches --bench index_kernels`

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use vellum_index::Metric;

fn vector(seed: u32, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32)
        .collect()
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("distance");
    for dim in [50usize, 128, 784] {
        let (a, b) = (vector(1, dim), vector(2, dim));
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            group.bench_with_input(
                BenchmarkId::new(format!("{metric:?}/simd"), dim),
                &dim,
                |bench, _| bench.iter(|| metric.distance(black_box(&a), black_box(&b))),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{metric:?}/scalar"), dim),
                &dim,
                |bench, _| bench.iter(|| metric.distance_scalar(black_box(&a), black_box(&b))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);

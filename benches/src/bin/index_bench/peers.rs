//! The Rust peers: usearch and hnsw_rs, with the same data, parameters and threads.

use std::path::Path;
use std::time::{Duration, Instant};

use hnsw_rs::prelude::{AnnT, DistCosine, DistL2, Hnsw as HnswRs, HnswIo};
use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
use vellum_index::Metric;

use crate::{
    BUILD_THREADS, CurvePoint, Dataset, EF_CONSTRUCTION, K, M, Report, process_cpu, sweep_point,
};

pub fn usearch(
    data: &Dataset,
    efs: &[usize],
    work_dir: &Path,
    pool: &rayon::ThreadPool,
) -> Vec<Report> {
    let options = IndexOptions {
        dimensions: data.dim,
        metric: if data.metric == Metric::Cosine {
            MetricKind::Cos
        } else {
            MetricKind::L2sq
        },
        quantization: ScalarKind::F32,
        connectivity: M,
        expansion_add: EF_CONSTRUCTION,
        expansion_search: 64,
        multi: false,
    };
    let index = Index::new(&options).expect("usearch index");
    index
        .reserve_capacity_and_threads(data.rows(), BUILD_THREADS)
        .expect("reserve");
    let (start, cpu_start) = (Instant::now(), process_cpu());
    pool.install(|| {
        (0..data.rows()).into_par_iter().for_each(|i| {
            index
                .add(i as u64, &data.train[i * data.dim..(i + 1) * data.dim])
                .expect("usearch add");
        })
    });
    let (build, build_cpu) = (start.elapsed(), process_cpu() - cpu_start);
    eprintln!(
        "usearch: built in {:.1} s ({})",
        build.as_secs_f64(),
        index.hardware_acceleration()
    );
    let curve = |index: &Index| -> Vec<CurvePoint> {
        efs.iter()
            .map(|&ef| {
                index.change_expansion_search(ef);
                let p = sweep_point(data, ef, |q| {
                    index.search(q, K).expect("usearch search").keys
                });
                eprintln!(
                    "usearch ef {ef}: recall {:.4} qps {:.0} cpu-qps {:.0}",
                    p.recall, p.qps, p.cpu_qps
                );
                p
            })
            .collect()
    };
    let curve_built = curve(&index);
    std::fs::create_dir_all(work_dir).expect("work dir");
    let path = work_dir.join(format!("{}.usearch", data.name));
    let path_str = path.to_str().expect("utf-8 path");
    let start = Instant::now();
    index.save(path_str).expect("usearch save");
    let save = start.elapsed();
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).ok();
    drop(index);
    let start = Instant::now();
    let viewed = Index::new(&options).expect("usearch index");
    viewed.view(path_str).expect("usearch view");
    let open = start.elapsed();
    viewed.change_expansion_search(64);
    let start = Instant::now();
    let first = viewed.search(data.query(0), K).expect("first search");
    let first_query = start.elapsed();
    assert!(!first.keys.is_empty());
    eprintln!(
        "usearch: save {:.3} s, view {:.2} ms",
        save.as_secs_f64(),
        open.as_secs_f64() * 1e3
    );
    let curve_viewed = curve(&viewed);
    let built = Report {
        system: "usearch 2.26.6 (built, in memory)".into(),
        build,
        build_cpu,
        curve: curve_built,
        save: Some(save),
        open: None,
        first_query: None,
        file_bytes,
        note: String::new(),
    };
    let viewed = Report {
        system: "usearch 2.26.6 (view = mmap)".into(),
        build,
        build_cpu,
        curve: curve_viewed,
        save: Some(save),
        open: Some(open),
        first_query: Some(first_query),
        file_bytes,
        note: format!("kernels: {}", viewed.hardware_acceleration()),
    };
    vec![built, viewed]
}

pub fn hnsw_rs(data: &Dataset, efs: &[usize], work_dir: &Path, pool: &rayon::ThreadPool) -> Report {
    if data.metric == Metric::Cosine {
        run_hnsw_rs(data, efs, work_dir, pool, DistCosine {})
    } else {
        run_hnsw_rs(data, efs, work_dir, pool, DistL2 {})
    }
}

fn run_hnsw_rs<D>(
    data: &Dataset,
    efs: &[usize],
    work_dir: &Path,
    pool: &rayon::ThreadPool,
    dist: D,
) -> Report
where
    D: hnsw_rs::prelude::Distance<f32> + Default + Send + Sync,
{
    let rows = data.rows();
    let mut index: HnswRs<'_, f32, D> = HnswRs::new(M, rows, 16, EF_CONSTRUCTION, dist);
    let items: Vec<(&[f32], usize)> = (0..rows)
        .map(|i| (&data.train[i * data.dim..(i + 1) * data.dim], i))
        .collect();
    let (start, cpu_start) = (Instant::now(), process_cpu());
    pool.install(|| index.parallel_insert_slice(&items));
    let (build, build_cpu) = (start.elapsed(), process_cpu() - cpu_start);
    index.set_searching_mode(true);
    eprintln!("hnsw_rs: built in {:.1} s", build.as_secs_f64());
    let search = |index: &HnswRs<'_, f32, D>, ef: usize| -> CurvePoint {
        let p = sweep_point(data, ef, |q| {
            index
                .search(q, K, ef)
                .into_iter()
                .map(|n| n.d_id as u64)
                .collect()
        });
        eprintln!(
            "hnsw_rs ef {ef}: recall {:.4} qps {:.0} cpu-qps {:.0}",
            p.recall, p.qps, p.cpu_qps
        );
        p
    };
    let curve: Vec<CurvePoint> = efs.iter().map(|&ef| search(&index, ef)).collect();
    let dir = work_dir.join(format!("{}-hnsw_rs", data.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    let start = Instant::now();
    let basename = index.file_dump(&dir, "graph").expect("hnsw_rs dump");
    let save = start.elapsed();
    let file_bytes = std::fs::read_dir(&dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .ok();
    drop(index);
    let start = Instant::now();
    let mut io = HnswIo::new(&dir, &basename);
    let reloaded: HnswRs<'_, f32, D> = io.load_hnsw().expect("hnsw_rs reload");
    let open = start.elapsed();
    let start = Instant::now();
    let first = reloaded.search(data.query(0), K, 64);
    let first_query: Duration = start.elapsed();
    assert!(!first.is_empty());
    eprintln!(
        "hnsw_rs: save {:.3} s, reload {:.2} ms",
        save.as_secs_f64(),
        open.as_secs_f64() * 1e3
    );
    Report {
        system: "hnsw_rs 0.3.5".into(),
        build,
        build_cpu,
        curve,
        save: Some(save),
        open: Some(open),
        first_query: Some(first_query),
        file_bytes,
        note: "reload reads the whole graph and data files".into(),
    }
}

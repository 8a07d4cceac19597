"""hnswlib and faiss-cpu on the same files, parameters and threads as index_bench.

Run through index_peers.sh (it installs the wheels into a scratch directory). Reads
benches/data/<set>/{train,test}.f32 and the ground truth gt-<rows>-<queries>.u32 (written by
whichever of index_bench and this script runs first: Vellum's exact search, or numpy brute
force here), so every system is scored against the same truth.
Build: 2 threads. Queries: 1 thread, all queries in one call (no per-call overhead).
"""
import argparse
import os
import tempfile
import time

import numpy as np

K = 10
M = 16
EF_CONSTRUCTION = 200


def read_matrix(path):
    header = np.fromfile(path, dtype="<u4", count=2)
    return np.fromfile(path, dtype="<f4", offset=8).reshape(int(header[0]), int(header[1]))


def recall(found, truth):
    hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth))
    return hits / (len(truth) * K)


def row(system, build, build_cpu, save, open_, first, size):
    ms = lambda s: "—" if s is None else f"{s * 1e3:.2f} ms"
    mb = "—" if size is None else f"{size / 1e6:.1f} MB"
    return f"| {system} | {build:.1f} s | {build_cpu:.1f} s | {ms(save)} | {ms(open_)} | {ms(first)} | {mb} |"


def sweep(name, efs, set_ef, search_all, queries, truth, curve):
    for ef in efs:
        set_ef(ef)
        search_all(queries[:20])  # warm-up
        t, c = time.perf_counter(), time.thread_time()
        labels = search_all(queries)
        elapsed, cpu = time.perf_counter() - t, time.thread_time() - c
        r, qps = recall(labels, truth), len(queries) / elapsed
        cpu_qps = len(queries) / cpu if cpu > 0 else 0.0
        print(f"{name} ef {ef}: recall {r:.4f} qps {qps:.0f} cpu-qps {cpu_qps:.0f}", flush=True)
        curve.append(f"| {name} | {ef} | {r:.4f} | {qps:.0f} | {cpu_qps:.0f} |")


def run_hnswlib(train, queries, truth, space, efs, work, summary, curve):
    import hnswlib

    name = f"hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else '0.8.0'}"
    index = hnswlib.Index(space=space, dim=train.shape[1])
    index.init_index(max_elements=len(train), ef_construction=EF_CONSTRUCTION, M=M, random_seed=100)
    index.set_num_threads(2)
    t, c = time.perf_counter(), time.process_time()
    index.add_items(train, np.arange(len(train)))
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{name}: built in {build:.1f} s", flush=True)
    index.set_num_threads(1)
    sweep(name, efs, index.set_ef, lambda q: index.knn_query(q, k=K, num_threads=1)[0], queries, truth, curve)
    path = os.path.join(work, "hnswlib.bin")
    t = time.perf_counter()
    index.save_index(path)
    save = time.perf_counter() - t
    del index
    t = time.perf_counter()
    loaded = hnswlib.Index(space=space, dim=train.shape[1])
    loaded.load_index(path)
    open_ = time.perf_counter() - t
    loaded.set_num_threads(1)
    loaded.set_ef(64)
    t = time.perf_counter()
    loaded.knn_query(queries[:1], k=K)
    first = time.perf_counter() - t
    summary.append(row(name + " (load reads the whole file)", build, build_cpu, save, open_, first, os.path.getsize(path)))


def run_faiss(train, queries, truth, cosine, efs, work, summary, curve):
    import faiss

    name = f"faiss-cpu {faiss.__version__}"
    if cosine:
        train = train / np.linalg.norm(train, axis=1, keepdims=True).clip(1e-30)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-30)
        metric = faiss.METRIC_INNER_PRODUCT
    else:
        metric = faiss.METRIC_L2
    train = np.ascontiguousarray(train, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = faiss.IndexHNSWFlat(train.shape[1], M, metric)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    faiss.omp_set_num_threads(2)
    t, c = time.perf_counter(), time.process_time()
    index.add(train)
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{name}: built in {build:.1f} s", flush=True)
    faiss.omp_set_num_threads(1)

    def set_ef(ef):
        index.hnsw.efSearch = ef

    sweep(name, efs, set_ef, lambda q: index.search(q, K)[1], queries, truth, curve)
    path = os.path.join(work, "faiss.index")
    t = time.perf_counter()
    faiss.write_index(index, path)
    save = time.perf_counter() - t
    del index
    t = time.perf_counter()
    try:
        loaded = faiss.read_index(path, faiss.IO_FLAG_MMAP)
        how = "read_index with IO_FLAG_MMAP"
    except Exception:  # noqa: BLE001 - fall back to a full read
        loaded = faiss.read_index(path)
        how = "read_index"
    open_ = time.perf_counter() - t
    loaded.hnsw.efSearch = 64
    t = time.perf_counter()
    loaded.search(queries[:1], K)
    first = time.perf_counter() - t
    summary.append(row(f"{name} ({how})", build, build_cpu, save, open_, first, os.path.getsize(path)))


def run_faiss_sq8(train, queries, truth, cosine, efs, work, summary, curve):
    """faiss HNSW over 8-bit scalar-quantized vectors (IndexHNSWSQ, QT_8bit: per-dimension
    ranges trained on the data); the graph walk scores codes, no rescoring."""
    import faiss

    name = f"faiss-cpu {faiss.__version__} HNSW-SQ8"
    if cosine:
        train = train / np.linalg.norm(train, axis=1, keepdims=True).clip(1e-30)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-30)
        metric = faiss.METRIC_INNER_PRODUCT
    else:
        metric = faiss.METRIC_L2
    train = np.ascontiguousarray(train, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = faiss.IndexHNSWSQ(train.shape[1], faiss.ScalarQuantizer.QT_8bit, M, metric)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    faiss.omp_set_num_threads(2)
    t, c = time.perf_counter(), time.process_time()
    index.train(train)
    index.add(train)
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{name}: built in {build:.1f} s", flush=True)
    faiss.omp_set_num_threads(1)

    def set_ef(ef):
        index.hnsw.efSearch = ef

    sweep(name, efs, set_ef, lambda q: index.search(q, K)[1], queries, truth, curve)
    code_size = faiss.downcast_index(index.storage).code_size
    summary.append(row(f"{name} (codes {code_size} B a vector)", build, build_cpu, 0.0, 0.0, 0.0, 0))


def run_usearch(train, queries, truth, cosine, efs, work, summary, curve, dtype):
    """usearch with vectors stored as `dtype` (f32, or i8: its int8 quantization)."""
    import usearch
    from usearch.index import Index

    name = f"usearch {usearch.__version__} {dtype}"
    index = Index(
        ndim=train.shape[1],
        metric="cos" if cosine else "l2sq",
        dtype=dtype,
        connectivity=M,
        expansion_add=EF_CONSTRUCTION,
    )
    keys = np.arange(len(train), dtype=np.uint64)
    t, c = time.perf_counter(), time.process_time()
    index.add(keys, train, threads=2)
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{name}: built in {build:.1f} s", flush=True)

    def set_ef(ef):
        index.expansion_search = ef

    def search_all(q):
        return index.search(q, K, threads=1).keys

    sweep(name, efs, set_ef, search_all, queries, truth, curve)
    summary.append(row(f"{name} (memory {index.memory_usage / 1e6:.1f} MB)", build, build_cpu, 0.0, 0.0, 0.0, 0))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=os.path.join(here, "..", "data"))
    p.add_argument("--limit", type=int)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--systems", default="hnswlib,faiss")
    p.add_argument("--efs", default="10,16,24,32,48,64,96,128,192,256")
    a = p.parse_args()
    d = os.path.join(a.data_dir, a.dataset)
    train = read_matrix(os.path.join(d, "train.f32"))
    queries = read_matrix(os.path.join(d, "test.f32"))[: a.queries]
    if a.limit:
        train = train[: a.limit]
    gt = os.path.join(d, f"gt-{len(train)}-{len(queries)}.u32")
    if not os.path.exists(gt):
        write_truth(gt, exact_top_k(train, queries, a.dataset.startswith("glove")))
    truth = read_matrix_u32(gt)
    cosine = a.dataset.startswith("glove")
    efs = [int(e) for e in a.efs.split(",")]
    summary, curve = [], []
    with tempfile.TemporaryDirectory() as work:
        for system in a.systems.split(","):
            if system == "hnswlib":
                run_hnswlib(train, queries, truth, "cosine" if cosine else "l2", efs, work, summary, curve)
            elif system == "faiss":
                run_faiss(train, queries, truth, cosine, efs, work, summary, curve)
            elif system == "faiss-sq8":
                run_faiss_sq8(train, queries, truth, cosine, efs, work, summary, curve)
            elif system in ("usearch", "usearch-i8"):
                dtype = "i8" if system == "usearch-i8" else "f32"
                run_usearch(train, queries, truth, cosine, efs, work, summary, curve, dtype)
    print(f"\n### {a.dataset} ({len(train)} x {train.shape[1]}, {len(queries)} queries) — python peers\n")
    print("| system | build (wall) | build (CPU, all threads) | save | open | first query | file |\n|---|---|---|---|---|---|---|")
    print("\n".join(summary))
    print("\n| system | ef | recall@10 | QPS (wall) | QPS (CPU time) |\n|---|---|---|---|---|")
    print("\n".join(curve))


def exact_top_k(train, queries, cosine):
    """Exact top-K by brute force (used only when the Rust bench has not written the truth)."""
    print("computing exact ground truth with numpy", flush=True)
    if cosine:
        train = train / np.linalg.norm(train, axis=1, keepdims=True).clip(1e-30)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-30)
    out = []
    norms = (train * train).sum(axis=1)
    for start in range(0, len(queries), 100):
        q = queries[start : start + 100]
        d = -(q @ train.T) if cosine else norms[None, :] - 2.0 * (q @ train.T)
        idx = np.argpartition(d, K, axis=1)[:, :K]
        for row, cand in zip(d, idx):
            out.append(cand[np.argsort(row[cand], kind="stable")])
    return np.array(out, dtype="<u4")


def write_truth(path, ids):
    with open(path, "wb") as f:
        np.array(ids.shape, dtype="<u4").tofile(f)
        ids.astype("<u4").tofile(f)


def read_matrix_u32(path):
    header = np.fromfile(path, dtype="<u4", count=2)
    return np.fromfile(path, dtype="<u4", offset=8).reshape(int(header[0]), int(header[1]))


if __name__ == "__main__":
    main()

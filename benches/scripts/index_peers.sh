#!/usr/bin/env bash
# Installs hnswlib, faiss-cpu and usearch into a scratch directory (pip --target) and runs
# index_peers.py with the same data, truth and parameters as the Rust index bench.
#   benches/scripts/index_peers.sh --dataset fashion-mnist
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scratch="${VELLUM_BENCH_PY:-$here/../data/.scratch/py}"
if ! PYTHONPATH="$scratch" python3 -c 'import numpy, hnswlib, faiss, usearch' 2>/dev/null; then
    python3 -m pip install -q --target "$scratch" numpy hnswlib==0.8.0 faiss-cpu==1.15.1 usearch==2.21.0
fi
PYTHONPATH="$scratch" OMP_WAIT_POLICY=PASSIVE python3 "$here/index_peers.py" "$@"

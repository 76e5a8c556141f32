#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what bench/gpu_check.sh needs on a bare GPU machine that can reach
# no network: the pure-Python wheels its image lacks, full MNIST (gzipped), and the reference DM
# code for the side-by-side timing. Run here, then on the GPU machine with .gpu carried along.
# Usage: bench/gpu_prepare.sh [MNIST_ROOT (default ../shared/data)] [DatasetCondensation checkout or git dir]
set -euo pipefail
cd "$(dirname "$0")/.."
mnist="${1:-../shared/data}"
ref="${2:-../.mirror/VICO-UoE+DatasetCondensation/repo}"
rm -rf .gpu && mkdir -p .gpu/whl .gpu/data/MNIST/raw .gpu/ref
# pinned as in requirements.txt; the GPU image has Python 3.12 and the rest (torch, numba, scipy, ...)
pins=$(grep -E '^(umap-learn|pynndescent|mlxtend)==' requirements.txt)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .gpu/whl $pins
for f in "$mnist"/MNIST/raw/*-ubyte; do gzip -c "$f" > ".gpu/data/MNIST/raw/$(basename "$f").gz"; done
if [ -f "$ref/utils.py" ]; then
  cp "$ref/utils.py" "$ref/networks.py" .gpu/ref/
else  # a bare git directory, as the search tool's fetch leaves it
  git --git-dir="$ref" archive HEAD utils.py networks.py | tar -x -C .gpu/ref
fi
du -sh .gpu

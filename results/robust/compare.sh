#!/bin/bash
# Issue 16 item 3 (c): every method against the count level on paper-12L (30 test structures, no rod-scale error).
#   bash results/robust/compare.sh results/training/paper12L-robust/model
set -euo pipefail
MODEL=${1:-results/training/paper12L-robust/model}
if ! command -v mamba-ctr > /dev/null; then
    mamba-ctr() { PYTHONPATH=${PYTHONPATH:-python} python -c "import sys; from mamba_ctr.cli import main; sys.exit(main())" "$@"; }
fi
mamba-ctr compare --presets paper-12L --n 30 --methods mamba,mamba+refine,cobra,lsq --models "paper-12L=$MODEL" \
    --counts 100,1000,10000,100000,1000000 --rod-scale 0 --quiet --out results/robust/compare
mamba-ctr compare --presets paper-12L --n 30 --methods mamba --models paper-12L=paper-12L \
    --counts 100,1000,10000,100000,1000000 --rod-scale 0 --quiet --out results/robust/compare-shipped

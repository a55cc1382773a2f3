#!/bin/bash
# Issue 16 item 3 measurements on paper-12L. Run from the repository root:
#   bash results/robust/run.sh results/training/paper12L-robust/model [WORK]
# (a dev checkout: `mamba-ctr` is `python -c "from mamba_ctr.cli import main; main()"` with PYTHONPATH=python)
set -euo pipefail
MODEL=${1:-results/training/paper12L-robust/model}
WORK=${2:-/tmp/mamba-robust}
OUT=results/robust
mkdir -p "$WORK" "$OUT/eval"
if ! command -v mamba-ctr > /dev/null; then
    mamba-ctr() { PYTHONPATH=${PYTHONPATH:-python} python -c "import sys; from mamba_ctr.cli import main; sys.exit(main())" "$@"; }
fi
# 500 test structures, the seed of every test set (never used in training)
[ -f "$WORK/test12L.h5" ] || mamba-ctr generate --preset paper-12L --n 500 --seed 20261125 --quiet --out "$WORK/test12L.h5"
# (a) scale: U for I × 10^k, k = -8..8, against U for I (200 structures)
PYTHONPATH=python python "$OUT/invariance.py" "$MODEL" "$WORK/test12L.h5" 200 "$OUT/invariance.json"
# (b, c) R² per atom type against the count level (Poisson counts at each rod's median point), both models
for counts in 0 100 1000 10000 100000 1000000; do
    for pair in "robust:$MODEL" "shipped:paper-12L"; do
        mamba-ctr evaluate --model "${pair#*:}" --data "$WORK/test12L.h5" --n 500 --no-figures --overwrite \
            --counts $counts --out "$OUT/eval/${pair%%:*}-counts$counts" | tail -n 4
    done
done
# per-rod scale errors (20 %, lognormal) at 10^3 counts, and a global scale of 10^-6
for pair in "robust:$MODEL" "shipped:paper-12L"; do
    mamba-ctr evaluate --model "${pair#*:}" --data "$WORK/test12L.h5" --n 500 --no-figures --overwrite \
        --counts 1000 --rod-scale 0.2 --out "$OUT/eval/${pair%%:*}-counts1000-rodscale0.2" | tail -n 4
    mamba-ctr evaluate --model "${pair#*:}" --data "$WORK/test12L.h5" --n 500 --no-figures --overwrite \
        --scale 1e-6 --out "$OUT/eval/${pair%%:*}-scale1e-6" | tail -n 4
done
python "$OUT/table.py" "$OUT/eval"

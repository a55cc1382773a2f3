#!/bin/bash
# Issue 16 item 4 for the shipped paper-12L model (scale-free-global input, complete rods). From the repository root:
#   bash results/uncertainty/run-shipped.sh [WORK]
# The same calibration (600) and test (500) structures as run.sh; --mask-fraction 0: the model never saw masked
# points, so the draws re-count and shift L but mask nothing.
set -euo pipefail
WORK=${1:-/tmp/mamba-uncertainty}
OUT=results/uncertainty/shipped
mkdir -p "$WORK" "$OUT"
if ! command -v mamba-ctr > /dev/null; then
    mamba-ctr() { PYTHONPATH=${PYTHONPATH:-python} python -c "import sys; from mamba_ctr.cli import main; sys.exit(main())" "$@"; }
fi
[ -f "$WORK/cal12L.h5" ] || mamba-ctr generate --preset paper-12L --n 600 --seed 20261202 --quiet --out "$WORK/cal12L.h5"
[ -f "$WORK/test12L.h5" ] || mamba-ctr generate --preset paper-12L --n 500 --seed 20261203 --quiet --out "$WORK/test12L.h5"
for counts in 1000 0; do
    name=$([ "$counts" = 0 ] && echo noise-free || echo "counts$counts")
    mamba-ctr calibrate paper-12L --data "$WORK/cal12L.h5" --n 600 --test "$WORK/test12L.h5" --n-test 500 \
        --counts $counts --draws 16 --mask-fraction 0 --threads 2 --overwrite --out "$OUT/$name" | tail -n 3
done
python results/uncertainty/table.py "$OUT"

#!/bin/bash
# Issue 16 item 4: calibrated uncertainty of the robust paper-12L model. Run from the repository root:
#   bash results/uncertainty/run.sh [MODEL] [WORK]
# (a dev checkout: `mamba-ctr` is `python -c "from mamba_ctr.cli import main; main()"` with PYTHONPATH=python)
set -euo pipefail
MODEL=${1:-results/training/paper12L-robust/model}
WORK=${2:-/tmp/mamba-uncertainty}
OUT=results/uncertainty
mkdir -p "$WORK" "$OUT"
if ! command -v mamba-ctr > /dev/null; then
    mamba-ctr() { PYTHONPATH=${PYTHONPATH:-python} python -c "import sys; from mamba_ctr.cli import main; sys.exit(main())" "$@"; }
fi
# calibration and test sets: two seeds used neither in training (stream seed 0) nor by the other test sets (20261125)
[ -f "$WORK/cal12L.h5" ] || mamba-ctr generate --preset paper-12L --n 600 --seed 20261202 --quiet --out "$WORK/cal12L.h5"
[ -f "$WORK/test12L.h5" ] || mamba-ctr generate --preset paper-12L --n 500 --seed 20261203 --quiet --out "$WORK/test12L.h5"
# calibrate on 600 structures, measure the coverage on the 500 disjoint ones, at each count level (0: noise-free)
for counts in 1000 0 100; do
    name=$([ "$counts" = 0 ] && echo noise-free || echo "counts$counts")
    mamba-ctr calibrate "$MODEL" --data "$WORK/cal12L.h5" --n 600 --test "$WORK/test12L.h5" --n-test 500 \
        --counts $counts --draws 16 --threads 1 --overwrite --out "$OUT/$name" | tail -n 3
done
# the same at 10^3 counts with one calibration group per atom type instead of one per label (for comparison)
mamba-ctr calibrate "$MODEL" --data "$WORK/cal12L.h5" --n 600 --test "$WORK/test12L.h5" --n-test 500 \
    --counts 1000 --draws 16 --no-per-label --threads 1 --overwrite --out "$OUT/counts1000-atom-groups" | tail -n 3
python "$OUT/table.py" "$OUT"
# coverage per label and by spread tercile, the raw ±std intervals, mean of draws vs plain prediction (10^3 counts)
for name in counts1000 counts1000-atom-groups; do
    PYTHONPATH=${PYTHONPATH:-python} python "$OUT/analysis.py" "$MODEL" "$WORK/test12L.h5" "$OUT/$name" 500 \
        > "$OUT/$name/analysis.md"
done

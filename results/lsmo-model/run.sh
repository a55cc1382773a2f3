#!/bin/bash
# results/lsmo-model: the LSMO family model (issue 16 item 5) on simulated test sets and on the measured film.
# From the repository root, with ../shared/data/lsmo beside it:
#     bash results/lsmo-model/run.sh [MODEL] [N]     # MODEL: checkpoint or shipped name (default lsmo), N: test size
set -e
M=${1:-lsmo}
N=${2:-200}
R=results/lsmo-model
D=../shared/data/lsmo/all_2xrods_LSMO9_hklcorr_Disa.txt
T=${TMPDIR:-/tmp}/lsmo-test-20261202-$N.h5
T3=${TMPDIR:-/tmp}/lsmo-test-20261202-300.h5   # the same seed: its first N structures are those of $T
C=${TMPDIR:-/tmp}/lsmo-cal-20261204-300.h5
[ -f "$T" ] || mamba-ctr generate --preset $R/family.toml --n "$N" --seed 20261202 --join copy --out "$T" --quiet
[ -f "$T3" ] || mamba-ctr generate --preset $R/family.toml --n 300 --seed 20261202 --join copy --out "$T3" --quiet
[ -f "$C" ] || mamba-ctr generate --preset $R/family.toml --n 300 --seed 20261204 --join copy --out "$C" --quiet
# simulated test structures: noise-free, and as measured (10^3 counts, 20 % rod scales, the LSMO file's coverage)
mamba-ctr evaluate --model "$M" --data "$T" --n "$N" --out $R/eval-clean --overwrite --quiet
mamba-ctr evaluate --model "$M" --data "$T" --n "$N" --counts 1000 --rod-scale 0.2 --mask-from $D \
    --out $R/eval-measured-like --overwrite --quiet
# calibrated intervals (8 test-time draws, 300 calibration structures with the measured file's coverage,
# coverage on 300 test structures) and the model's consistency threshold
mamba-ctr calibrate "$M" --data "$C" --n 300 --test "$T3" --n-test 300 --counts 1000 --draws 8 --threads 1 \
    --mask-from $D --out $R/uncertainty --overwrite --quiet
# the measured film: the network alone, then refined from its prediction, and least squares from a nominal film
mamba-ctr predict $D --model "$M" --calibration $R/uncertainty/calibration.json --counts 1000 --out $R/predict \
    --overwrite
COMMON=(--family $R/predict/family/family.toml --error-model relative:0.1 --drop-rods --overwrite --quiet)
mamba-ctr fit $D "${COMMON[@]}" --start $R/predict/labels.json --out $R/refine
mamba-ctr fit $D "${COMMON[@]}" --start $R/nominal.json --out $R/lsq-nominal
rm -f $R/*/lock
python $R/table.py

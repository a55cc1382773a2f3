#!/bin/bash
# The three LSMO fits of results/lsmo-fit, from the repository root, with ../shared/data/lsmo beside it.
# (Run on 2026-12-01 on the 2-core development VM, shared with other jobs, compiled backend.)
set -e
D=../shared/data/lsmo
COMMON=("$D/all_2xrods_LSMO9_hklcorr_Disa.txt" --columns h,k,l,I,skip --basis 1/2,0,0,1/2
        --structure "$D/LSMO_newdat2.XYZ" --cell 7.81,3.905 --substrate results/lsmo-fit/SrTiO3.bul
        --ions Sr=Sr2+,La=La3+,Ti=Ti4+,Mn=Mn3+,O=O --error-model relative:0.1 --drop-rods --backend compiled
        --overwrite --quiet)
# the main fit: the top four layers, points within ΔL = 0.05 of a Bragg peak left out
mamba-ctr fit "${COMMON[@]}" --params results/lsmo-fit/params.toml --exclude-bragg 0.05 --n-starts 4 \
    --out results/lsmo-fit
# the same parameters on every point
mamba-ctr fit "${COMMON[@]}" --params results/lsmo-fit/params.toml --n-starts 4 --out results/lsmo-fit/all-points
# exploratory: every layer free (68 parameters)
mamba-ctr fit "${COMMON[@]}" --params results/lsmo-fit/params-all-layers.toml --exclude-bragg 0.05 --n-starts 3 \
    --out results/lsmo-fit/all-layers
rm -f results/lsmo-fit/lock results/lsmo-fit/*/lock

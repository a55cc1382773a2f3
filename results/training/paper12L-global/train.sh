#!/bin/bash
# From the shipped paper-12L model (python warm_start.py /work/runs/global/light DATA: its weights with the mask
# channels added), fine-tuned with the scale-free-global input. Half of the draws are clean; the other half get
# Poisson counts (median point 1e2..1e6), a flat background and an L offset. No per-rod scale errors and no
# coverage masks: the global input keeps the ratios between rods, and the clean accuracy is the target.
source /work/venv/bin/activate
export NUMBA_CACHE_DIR=/work/.numba_cache PYTHONPATH=/work/main/python PYTHONFAULTHANDLER=1
cd /work/runs/global
exec python -c "import sys; from mamba_ctr.cli import main; sys.exit(main(sys.argv[1:]))" \
  train --stream paper-12L --arch rods --dilations 1,2,4,8 --input scale-free-global --augment \
    --augmentation rod_scale=0,full_coverage=1,clean_fraction=0.5 --target both \
    --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0.01 --lr 3e-4 --schedule onecycle \
    --schedule-minutes 90 --pilot-samples 20000 --val-samples 2000 --max-minutes 90 --val-every 1000 --bf16 \
    --threads 2 --out light --resume

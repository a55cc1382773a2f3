#!/bin/bash
# Stage 2 (55 min): from stage 1's best (72 min, val MAE 0.120 with nuisances, clean field MAE 0.188), with the
# augmentation's clean draws now truly clean (no background, L offset or counts; clean_fraction 0.25).
source /work/venv/bin/activate
export NUMBA_CACHE_DIR=/work/.numba_cache PYTHONPATH=/work/main/python PYTHONFAULTHANDLER=1
cd /work/runs/robust2h
exec python -c "import sys; from mamba_ctr.cli import main; sys.exit(main(sys.argv[1:]))" \
  train --stream paper-12L --arch rods --dilations 1,2,4,8 --input scale-free --augment --target both \
    --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0.01 --lr 5e-4 --schedule onecycle \
    --schedule-minutes 55 --pilot-samples 20000 --val-samples 2000 --max-minutes 55 --val-every 1000 --bf16 \
    --threads 2 --out stage2 --resume

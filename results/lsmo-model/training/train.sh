#!/bin/bash
# LSMO family model (issue 16 item 5): rods U-Net, scale-free input, measurement nuisances, 100 min on 2 CPU cores
source /work/venv/bin/activate; export NUMBA_CACHE_DIR=/work/.numba_cache

mamba-ctr train \
  --stream results/lsmo-model/family.toml --arch rods --dilations 1,2,4,8 --input scale-free --augment \
  --target both --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0.01 --lr 1e-3 --schedule onecycle \
  --schedule-minutes 100 --pilot-samples 20000 --val-samples 2000 --max-minutes 100 --val-every 200 --bf16 \
  --threads 2 --out run

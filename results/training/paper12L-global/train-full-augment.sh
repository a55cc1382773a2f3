#!/bin/bash
# From the shipped paper-12L model (warm_start.py: its weights with the mask channels added), fine-tuned with the
# scale-free-global input and every measurement nuisance of data.augment (a quarter of the draws clean).
source /work/venv/bin/activate
export NUMBA_CACHE_DIR=/work/.numba_cache PYTHONPATH=/work/main/python PYTHONFAULTHANDLER=1
cd /work/runs/global  # stopped after 25 minutes (README)
exec python -c "import sys; from mamba_ctr.cli import main; sys.exit(main(sys.argv[1:]))" \
  train --stream paper-12L --arch rods --dilations 1,2,4,8 --input scale-free-global --augment --target both \
    --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0.01 --lr 5e-4 --schedule onecycle \
    --schedule-minutes 105 --pilot-samples 20000 --val-samples 2000 --max-minutes 105 --val-every 1000 --bf16 \
    --threads 2 --out stage1 --resume

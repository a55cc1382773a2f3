#!/bin/bash
# 125 minutes more of the robust paper-12L model (issue 16 item 6), from the 22-minute robust model.
source /work/venv/bin/activate
export NUMBA_CACHE_DIR=/work/.numba_cache PYTHONPATH=/work/main/python PYTHONFAULTHANDLER=1
cd /work/runs/robust2h
exec nice -n 15 python -c "import sys; from mamba_ctr.cli import main; sys.exit(main(sys.argv[1:]))" \
  train --stream paper-12L --arch rods --dilations 1,2,4,8 --input scale-free --augment --target both \
    --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0.01 --lr 1e-3 --schedule onecycle \
    --schedule-minutes 125 --pilot-samples 20000 --val-samples 2000 --max-minutes 125 --val-every 1000 --bf16 \
    --threads 2 --out robust --resume

#!/usr/bin/env bash
# The GPU check (issue 17, item 5): at most 8 minutes in all, JSON into benchmarks/results/gpu_check.json.
#
#   benchmarks/gpu_check.sh              # on a machine with CUDA (sections it cannot run say why in the JSON)
#   benchmarks/gpu_check.sh --dry-run    # every step on the CPU at tiny sizes, in seconds (tests/test_gpu_check.py)
#
# Extra arguments go to benchmarks/gpu_check.py (--out PATH, --budget-s S). The Python side stops itself at
# --budget-s (default 450 s) and writes the JSON after every section; `timeout` is the hard guard behind it.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import mamba_ctr" 2>/dev/null; then  # not installed: use the source tree
    export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
fi
timeout -k 10 480 "$PY" benchmarks/gpu_check.py "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "gpu_check.sh: stopped by the 8-minute guard; the JSON holds the sections finished before" >&2
fi
exit "$rc"

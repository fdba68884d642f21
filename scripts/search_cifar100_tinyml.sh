#!/usr/bin/env bash
# CIFAR-100, top-1 vs tiny_ml (CNAS): networks under 2 M parameters, 5 M activations and 100 M MACs.
# tiny_ml = wp*(P + pen*max(0,P-pmax)) + wm*(M + pen*max(0,M-mmax)) + wa*(A + pen*max(0,A-amax))
# Runs as is on a machine that can download CIFAR-100 (or with DATA pointing at its files).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar100}
OUT=${OUT:-results/cifar100-tinyml}
RES=${RES:-32}
EPOCHS=${EPOCHS:-30}
ITERATIONS=${ITERATIONS:-30}
SEED=${SEED:-0}

$PY train.py supernet --dataset cifar100 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# constraints (millions) and weights; --penalty makes violations dominate the objective
$PY msunas.py --dataset cifar100 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --sec_obj tiny_ml --pmax 2 --mmax 100 --amax 5 --wp 1 --wm 0.025 --wa 1 --penalty 1e10 \
    --iterations "$ITERATIONS" --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

$PY post_search.py --expr "$OUT/search" -n 3 --prefer trade-off --save_stats_csv

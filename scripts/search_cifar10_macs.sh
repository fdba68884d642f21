#!/usr/bin/env bash
# CIFAR-10, top-1 vs MACs: train a supernet, search it, choose 3 networks, fine-tune them.
# Runs as is on a machine that can download CIFAR-10 (or with DATA pointing at its files).
# Every step resumes where it stopped when re-run. Override any variable from the environment:
#   EPOCHS=5 ITERATIONS=3 bash scripts/search_cifar10_macs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar10}       # torchvision's cifar-10-batches-py/ or an ImageFolder
OUT=${OUT:-results/cifar10-macs}
RES=${RES:-32}                         # input resolution (CIFAR size; raise LR/UR for more accuracy)
EPOCHS=${EPOCHS:-30}                   # supernet epochs
ITERATIONS=${ITERATIONS:-30}           # search iterations of N_ITER evaluations each
N_ITER=${N_ITER:-8}
FT_EPOCHS=${FT_EPOCHS:-50}             # fine-tuning epochs per chosen network
SEED=${SEED:-0}

# 1. supernet (sandwich rule); 5,000 training images held out to score candidates
$PY train.py supernet --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# 2. search: top-1 on the held-out images vs MACs (same --vld_size and --seed as training)
$PY msunas.py --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --sec_obj macs --n_doe 100 --n_iter "$N_ITER" --iterations "$ITERATIONS" \
    --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

# 3. three trade-off networks with inherited weights
$PY post_search.py --expr "$OUT/search" -n 3 --prefer trade-off --save_stats_csv

# 4. fine-tune each (its folder becomes the run directory: ckpt.pth is replaced by the fine-tuned
#    weights, test top-1 goes into its net.stats under "trained")
for net in "$OUT"/search/final/net-trade-off_*; do
    $PY train.py subnet --subnet "$net/net.subnet" --init "$net/ckpt.pth" --dataset cifar10 --data "$DATA" \
        --vld_size 5000 --seed "$SEED" --epochs "$FT_EPOCHS" --resume
done

#!/usr/bin/env bash
# NACHOS: early-exit networks (cbnmobilenetv3: one exit bit per stage boundary, thresholds tuned after
# training) on CIFAR-10 at 32 px under an average-MACs budget MMAX: top-1 vs NACHOS's penalised
# avg_macs (phi * c + (1 - phi) * max(0, c - mmax) * penalty, phi the population's share within MMAX);
# then 3 trade-off networks with N_EXITS early exits, trained and measured on the test split.
# Runs as is on a machine that can download CIFAR-10 (or with DATA pointing at its files).
# Every step resumes where it stopped when re-run. Override any variable from the environment:
#   MMAX=3 ITERATIONS=3 bash scripts/search_nachos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar10}
OUT=${OUT:-results/nachos-cifar10}
RES=${RES:-32}
EPOCHS=${EPOCHS:-30}                   # supernet epochs
EE_EPOCHS=${EE_EPOCHS:-5}              # NACHOS training of every candidate's heads (frozen backbone)
MMAX=${MMAX:-2.7}                      # avg_macs budget, millions (the reference's 32 px scripts: 2.7)
TOP1MIN=${TOP1MIN:-65}                 # threshold repair keeps top-1 (%) at or above this
ITERATIONS=${ITERATIONS:-10}
N_ITER=${N_ITER:-8}
N_EXITS=${N_EXITS:-2}
FT_EPOCHS=${FT_EPOCHS:-10}
SEED=${SEED:-0}

# 1. supernet (sandwich rule); 5,000 training images held out to score candidates
$PY train.py supernet --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# 2. search: heads and confidence units trained the NACHOS way (differentiable MAC term against
#    MMAX after --ee_warmup epochs, support set), thresholds tuned on the held-out images
$PY msunas.py --search_space cbnmobilenetv3 --exit_head nachos --dataset cifar10 --data "$DATA" \
    --vld_size 5000 --seed "$SEED" --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --trainer nachos --n_epochs "$EE_EPOCHS" --mmax "$MMAX" --top1min "$TOP1MIN" \
    --measures accuracy exits --sec_obj nachos \
    --n_doe 100 --n_iter "$N_ITER" --iterations "$ITERATIONS" --hv_patience 10 \
    --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

# 3. three trade-off networks with N_EXITS early exits
$PY post_search.py --expr "$OUT/search" -n 3 --n_exits "$N_EXITS" --save_stats_csv

# 4. train each further, tune its thresholds on the validation split, measure on the test split
for net in "$OUT"/search/final/net-trade-off_*; do
    $PY train.py ee --subnet "$net/net.subnet" --search_space cbnmobilenetv3 --exit_head nachos \
        --init "$net/ckpt.pth" --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
        --epochs "$FT_EPOCHS" --mmax "$MMAX" --top1min "$TOP1MIN" --resume
done

#!/usr/bin/env bash
# EDANAS: early-exit networks (eemobilenetv3: one threshold gene per stage boundary, 1 = no exit)
# on CIFAR-10 at 32 px, top-1 vs avg_macs; then 3 trade-off networks with 4 early exits, trained and
# measured (exit ratios, avg_macs, batch-1 latency against the backbone) on the test split.
# Runs as is on a machine that can download CIFAR-10 (or with DATA pointing at its files).
# Every step resumes where it stopped when re-run. Override any variable from the environment:
#   EPOCHS=5 ITERATIONS=3 bash scripts/search_edanas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar10}       # torchvision's cifar-10-batches-py/ or an ImageFolder
OUT=${OUT:-results/edanas-cifar10}
RES=${RES:-32}
EPOCHS=${EPOCHS:-30}                   # supernet epochs
EE_EPOCHS=${EE_EPOCHS:-5}              # joint training of every candidate's exits (EDANAS: 5)
ITERATIONS=${ITERATIONS:-30}
N_ITER=${N_ITER:-8}
N_EXITS=${N_EXITS:-4}                  # post-search keeps networks with this many early exits
FT_EPOCHS=${FT_EPOCHS:-20}
SEED=${SEED:-0}

# 1. supernet (sandwich rule); 5,000 training images held out to score candidates
$PY train.py supernet --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# 2. search: every candidate's exits trained jointly with its backbone (ee_joint), thresholds from
#    its genes, scored by the exits measure on the held-out images; second objective avg_macs
$PY msunas.py --search_space eemobilenetv3 --exit_head edanas --dataset cifar10 --data "$DATA" \
    --vld_size 5000 --seed "$SEED" --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --trainer ee_joint --n_epochs "$EE_EPOCHS" --measures accuracy exits --sec_obj avg_macs \
    --n_doe 100 --n_iter "$N_ITER" --iterations "$ITERATIONS" \
    --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

# 3. three trade-off networks with N_EXITS early exits, with the weights the search trained
$PY post_search.py --expr "$OUT/search" -n 3 --n_exits "$N_EXITS" --save_stats_csv

# 4. train each further and measure it on the test split (net.stats: "trained" and "early_exit")
for net in "$OUT"/search/final/net-trade-off_*; do
    $PY train.py ee --subnet "$net/net.subnet" --search_space eemobilenetv3 --exit_head edanas \
        --init "$net/ckpt.pth" --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
        --epochs "$FT_EPOCHS" --resume
done

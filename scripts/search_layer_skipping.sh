#!/usr/bin/env bash
# Input-dependent layer skipping (skippingmobilenetv3: a gate hidden size and a target sparsity per
# block, 0 = no gate) on CIFAR-10 at 32 px, top-1 vs avg_macs; then 3 trade-off networks trained
# further and measured on the test split (avg_macs, gate open rates, batch-1 latency with real
# skipping against the ungated twin), and the gate analysis of each.
# Runs as is on a machine that can download CIFAR-10 (or with DATA pointing at its files).
# Every step resumes where it stopped when re-run. Override any variable from the environment:
#   GATE=conv GATE_EPOCHS=5 bash scripts/search_layer_skipping.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar10}       # torchvision's cifar-10-batches-py/ or an ImageFolder
OUT=${OUT:-results/skipping-cifar10}
RES=${RES:-32}
EPOCHS=${EPOCHS:-30}                   # supernet epochs
GATE=${GATE:-stable}                   # gate network: stable, conv or attention
GATE_EPOCHS=${GATE_EPOCHS:-5}          # every candidate's gate training (the thesis: 5 on CIFAR-10)
ITERATIONS=${ITERATIONS:-30}
N_ITER=${N_ITER:-8}
FT_EPOCHS=${FT_EPOCHS:-20}
SEED=${SEED:-0}

# 1. supernet (sandwich rule); 5,000 training images held out to score candidates
$PY train.py supernet --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# 2. search: every candidate's gates trained with its backbone (soft and hard epochs alternating,
#    the sparsity terms ramped in, gates at 10x the backbone's learning rate), scored by the gates
#    measure on the held-out images; second objective avg_macs (predicted by the surrogate for the
#    candidates NSGA-II proposes)
$PY msunas.py --search_space skippingmobilenetv3 --gate_type "$GATE" --dataset cifar10 --data "$DATA" \
    --vld_size 5000 --seed "$SEED" --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --trainer layer_skipping --n_epochs "$GATE_EPOCHS" --measures accuracy gates --sec_obj avg_macs \
    --n_doe 100 --n_iter "$N_ITER" --iterations "$ITERATIONS" \
    --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

# 3. three trade-off networks, with the weights the search trained
$PY post_search.py --expr "$OUT/search" -n 3 --save_stats_csv

# 4. train each further (the gate type is read from its net.stats), measure it on the test split
#    (net.stats: "trained" and "layer_skipping"), then analyse its gates
for net in "$OUT"/search/final/net-trade-off_*; do
    $PY train.py layer_skipping --subnet "$net/net.subnet" --init "$net/ckpt.pth" --dataset cifar10 \
        --data "$DATA" --vld_size 5000 --seed "$SEED" --epochs "$FT_EPOCHS" --resume
    $PY tools/analyze_gates.py --model_path "$net/ckpt.pth" --subnet "$net/net.subnet" --dataset cifar10 \
        --data "$DATA" --n_classes 10 --output_dir "$net/gates"
done

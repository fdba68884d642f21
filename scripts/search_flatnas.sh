#!/usr/bin/env bash
# FlatNAS on CIFAR-10 at 32 px: top1_robust (top-1 error and flatness together) vs tiny_ml, every
# candidate fine-tuned with SAM; then 3 trade-off networks fine-tuned further with SAM and measured
# on the test split.
#   flatness = robustness: mean |top-1 change| over N_DRAWS draws of multiplicative weight noise
#              theta <- theta + sigma * theta * eps, eps ~ N(0, 1), on the held-out images
#   top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * robustness, alpha_norm =
#              mean(top1_err) / mean(robustness) over the archive before each iteration (1 at first)
# Settings of CNAS's FlatNAS script: sigma 0.05, 20 draws, alpha 0.5, tiny_ml with pmax 5 M params,
# 1 SAM epoch per candidate, 30 iterations (it searched 128-224 px on an ImageNet supernet; here a
# CIFAR-10 supernet at 32 px). CNAS's SAM was the adaptive one with rho 2.0; this script uses plain
# SAM at rho 0.05 (SAM's CIFAR setting).
# Runs as is on a machine that can download CIFAR-10 (or with DATA pointing at its files). Every
# step resumes where it stopped when re-run. Override any variable from the environment:
#   SEC_OBJ=macs SIGMAS="0.05 0.1" ALPHA=0.9 bash scripts/search_flatnas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar10}       # torchvision's cifar-10-batches-py/ or an ImageFolder
OUT=${OUT:-results/flatnas-cifar10}
RES=${RES:-32}
EPOCHS=${EPOCHS:-30}                   # supernet epochs
CAND_EPOCHS=${CAND_EPOCHS:-1}          # SAM epochs per candidate before it is scored
SAM_RHO=${SAM_RHO:-0.05}               # SAM's ascent radius
SIGMAS=${SIGMAS:-0.05}                 # noise sigma(s): the first is robustness, the others its curve
N_DRAWS=${N_DRAWS:-20}                 # noise draws per sigma
ALPHA=${ALPHA:-0.5}                    # weight of the top-1 error in top1_robust
SEC_OBJ=${SEC_OBJ:-tiny_ml}            # tiny_ml (CNAS's FlatNAS) or macs, params, ...
PMAX=${PMAX:-5}                        # tiny_ml's parameter budget, millions
ITERATIONS=${ITERATIONS:-30}
N_ITER=${N_ITER:-8}
FT_EPOCHS=${FT_EPOCHS:-50}             # SAM fine-tuning epochs per chosen network
SEED=${SEED:-0}

# tiny_ml's options are flags of that objective only (another second objective refuses them)
SEC_FLAGS=()
if [ "$SEC_OBJ" = tiny_ml ]; then
    SEC_FLAGS=(--pmax "$PMAX")
fi

# 1. supernet (sandwich rule); 5,000 training images held out to score candidates
$PY train.py supernet --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# 2. search: each candidate inherits the supernet's weights, is fine-tuned with SAM, then scored on
#    the held-out images: top-1 (accuracy measure) and robustness (the same images, 1 + N_DRAWS
#    passes per sigma). The surrogates predict top-1 and robustness; top1_robust combines them
#    with the alpha_norm of each iteration (the whole archive re-scored every iteration).
$PY msunas.py --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --n_epochs "$CAND_EPOCHS" --optimizer sam --sam_rho "$SAM_RHO" \
    --measures accuracy robustness --sigma $SIGMAS --n_draws "$N_DRAWS" \
    --first_obj top1_robust --alpha "$ALPHA" --sec_obj "$SEC_OBJ" ${SEC_FLAGS[@]+"${SEC_FLAGS[@]}"} \
    --n_doe 100 --n_iter "$N_ITER" --iterations "$ITERATIONS" \
    --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

# 3. three trade-off networks of the (top1_robust, SEC_OBJ) front, with the weights the search
#    fine-tuned (their net.stats carry top1, robustness and the curve robustness@<sigma>)
$PY post_search.py --expr "$OUT/search" -n 3 --prefer trade-off --save_stats_csv

# 4. fine-tune each further with SAM (its folder becomes the run directory: ckpt.pth is replaced by
#    the fine-tuned weights, test top-1 goes into its net.stats under "trained")
for net in "$OUT"/search/final/net-trade-off_*; do
    $PY train.py subnet --subnet "$net/net.subnet" --init "$net/ckpt.pth" --dataset cifar10 --data "$DATA" \
        --vld_size 5000 --seed "$SEED" --epochs "$FT_EPOCHS" --optimizer sam --sam_rho "$SAM_RHO" --resume
done

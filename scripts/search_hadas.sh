#!/usr/bin/env bash
# HADAS bi-level search on CIFAR-10 at 32 px for a Jetson AGX Xavier-like device profile (modelled:
# HADAS's 29 CPU x 14 GPU x 9 memory frequency levels, assumed power parameters; see
# hardware/profiles/jetson-agx-xavier.yaml):
#   outer: NSGA-II with surrogates over OFA MobileNetV3 backbones (hadasmobilenetv3: a head after each
#          of stages 1-4, all trained with the backbone for EE_EPOCHS epochs per candidate);
#   inner: per backbone, NSGA-II over exit placement + thresholds + DVFS levels (INNER_EVALS
#          evaluations), objectives error, expected latency, expected energy weighted by the measured
#          exit ratios on the held-out images. Each backbone reports the inner point with the least
#          energy within MAX_DROP top-1 points of its final classifier; its inner front is kept.
# Then 3 trade-off networks with their inner fronts (net.stats: hadas_choice, hadas_front).
# Runs as is on a machine that can download CIFAR-10 (or with DATA pointing at its files). Every
# step resumes where it stopped when re-run. Override any variable from the environment:
#   PROFILE=local-vm INNER_EVALS=500 bash scripts/search_hadas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/cache/cifar10}       # torchvision's cifar-10-batches-py/ or an ImageFolder
OUT=${OUT:-results/hadas-cifar10}
RES=${RES:-32}
EPOCHS=${EPOCHS:-30}                   # supernet epochs
EE_EPOCHS=${EE_EPOCHS:-5}              # joint training of each backbone's four heads
PROFILE=${PROFILE:-jetson-agx-xavier}  # device profile (local-vm: no DVFS, energy collinear with latency)
INNER_EVALS=${INNER_EVALS:-50}         # inner-search evaluations per backbone (HADAS: about 50)
INNER_MODE=${INNER_MODE:-joint}        # joint (exits + DVFS), exits or dvfs
MAX_DROP=${MAX_DROP:-1.0}              # reported inner point: least energy within this top-1 drop
ITERATIONS=${ITERATIONS:-20}
N_ITER=${N_ITER:-8}
SEED=${SEED:-0}

# 1. supernet (sandwich rule); 5,000 training images held out to score candidates
$PY train.py supernet --dataset cifar10 --data "$DATA" --vld_size 5000 --seed "$SEED" \
    --lr "$RES" --ur "$RES" --epochs "$EPOCHS" --save "$OUT/supernet" --resume

# 2. bi-level search: objectives top-1 error, energy and latency of each backbone's reported point
$PY msunas.py --search_space hadasmobilenetv3 --dataset cifar10 --data "$DATA" --vld_size 5000 \
    --seed "$SEED" --supernet_path "$OUT/supernet/supernet.pth" --lr "$RES" --ur "$RES" \
    --trainer ee_joint --n_epochs "$EE_EPOCHS" --measures hadas --device_profile "$PROFILE" \
    --inner_evals "$INNER_EVALS" --inner_mode "$INNER_MODE" --max_drop "$MAX_DROP" \
    --objectives top1 energy latency --n_doe 100 --n_iter "$N_ITER" --iterations "$ITERATIONS" \
    --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )

# 3. three trade-off backbones, each with its inner front and reported point in net.stats
$PY post_search.py --expr "$OUT/search" -n 3 --save_stats_csv

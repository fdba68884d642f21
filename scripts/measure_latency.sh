#!/usr/bin/env bash
# Hardware in the loop on this machine: measure an OFA-format latency table and a dataset of timed
# whole networks, train a latency predictor on them, then search top-1 vs latency with it.
#   1. every layer of the OFA MobileNetV3 w1.0 space at RESOLUTIONS, timed (warm-up + repeats);
#   2. N_NETS random subnets timed whole (median of repeats, reference networks re-timed for drift);
#   3. a latency predictor (KIND: additive, gbdt, mlp) trained on the dataset, 15% held out and scored;
#   4. msunas.py with --latency_model predictor:MODEL (or LATENCY_MODEL=lut:$OUT/lut: the table sum,
#      or measured: every candidate timed inside its evaluation).
# Keep the machine idle while steps 1-2 run and pin them to one core (CORE); every step resumes
# where it stopped when re-run. Override any variable from the environment:
#   N_NETS=500 KIND=gbdt bash scripts/measure_latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/latency-$(hostname)}
RESOLUTIONS=${RESOLUTIONS:-"160 176 192 208 224"}
THREADS=${THREADS:-1}                  # torch threads while timing (fixed for the whole measurement)
CORE=${CORE:-0}                        # the core the timing runs on (taskset)
N_NETS=${N_NETS:-2000}                 # whole networks to time (about 1 s each on a laptop core)
KIND=${KIND:-additive}                 # predictor kind
LATENCY_MODEL=${LATENCY_MODEL:-predictor:$OUT/predictor.pt}
DATA=${DATA:-data/cache/cifar10}       # for the search: torchvision's cifar-10-batches-py/ or an ImageFolder
SUPERNET=${SUPERNET:-}                 # a supernet checkpoint for the search (train.py supernet); empty: skip step 4
TIME=(taskset -c "$CORE" env OMP_NUM_THREADS="$THREADS")

# 1. layer table (450 layers at the five default resolutions; a few minutes)
"${TIME[@]}" $PY tools/build_latency_lut.py --space mobilenetv3 --width_mult 1.0 --resolutions $RESOLUTIONS \
    --threads "$THREADS" --warmup 10 --repeats 50 --out "$OUT/lut"

# 2. whole networks (the resolutions of step 1: lr/ur/rstep of the five defaults)
"${TIME[@]}" $PY tools/build_latency_dataset.py --space mobilenetv3 --width_mult 1.0 --lr 160 --ur 224 \
    --rstep 16 --n "$N_NETS" --threads "$THREADS" --warmup 10 --repeats 25 --n_ref 20 --ref_every 300 \
    --out "$OUT/dataset"

# 3. predictor, and how the raw table sum does on the same networks
$PY tools/latency_predictor.py train --csv "$OUT/dataset/latency.csv" --kind "$KIND" --out "$OUT/predictor.pt"
$PY tools/latency_predictor.py train --csv "$OUT/dataset/latency.csv" --kind calibrated_lut \
    --set lut_dir="$OUT/lut" table_width=1.0 --out "$OUT/calibrated_table.pt"

# 4. search on CIFAR-10 at 160-224 px: top-1 vs latency on this machine
if [ -n "$SUPERNET" ]; then
    $PY msunas.py --dataset cifar10 --data "$DATA" --vld_size 5000 --supernet_path "$SUPERNET" \
        --lr 160 --ur 224 --rstep 16 --sec_obj latency --latency_model "$LATENCY_MODEL" \
        --save "$OUT/search" $( [ -d "$OUT/search" ] && echo --resume "$OUT/search" )
fi

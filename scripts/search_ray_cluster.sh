#!/usr/bin/env bash
# A search whose evaluations run on a Ray cluster, one actor per job with GPUS_PER_JOB GPUs.
# Start the cluster first: `ray start --head` on this (head) node, `ray start --address HEAD:6379`
# on the others; every node needs this checkout, the data and the supernet at the same paths.
# RAY_ADDRESS=local runs the same thing on a Ray started for this machine only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RAY_ADDRESS=${RAY_ADDRESS:-auto}
N_JOBS=${N_JOBS:-8}
N_GPUS=${N_GPUS:-0}                        # total GPUs to use; 0 = CPU actors
GPUS_PER_JOB=${GPUS_PER_JOB:-1}
DATA=${DATA:-data/cache/cifar10}
SUPERNET=${SUPERNET:-results/cifar10-macs/supernet/supernet.pth}
OUT=${OUT:-results/cifar10-macs-ray}

$PY msunas.py --dataset cifar10 --data "$DATA" --vld_size 5000 --supernet_path "$SUPERNET" \
    --lr 32 --ur 32 --sec_obj macs --n_iter "$N_JOBS" \
    --ray_address "$RAY_ADDRESS" --n_jobs "$N_JOBS" --n_gpus "$N_GPUS" --gpu "$GPUS_PER_JOB" \
    --save "$OUT" $( [ -d "$OUT" ] && echo --resume "$OUT" )

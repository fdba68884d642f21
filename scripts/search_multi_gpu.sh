#!/usr/bin/env bash
# A search on one machine with several GPUs: each evaluation job gets GPUS_PER_JOB GPUs of its own
# (CUDA_VISIBLE_DEVICES per worker process), N_GPUS / GPUS_PER_JOB jobs run at once. Candidates
# are fine-tuned for N_EPOCHS before scoring. Needs a trained supernet (see search_cifar10_macs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# GPUs that `nvidia-smi -L` lists ("GPU 0: ..."); no nvidia-smi or no driver: 0. The "|| true"s keep
# set -e -o pipefail from ending the script silently here (status 127) on a machine without GPUs.
N_GPUS=${N_GPUS:-$( { nvidia-smi -L 2>/dev/null || true; } | grep -c '^GPU ' || true)}
GPUS_PER_JOB=${GPUS_PER_JOB:-1}
DATA=${DATA:-data/cache/cifar10}
SUPERNET=${SUPERNET:-results/cifar10-macs/supernet/supernet.pth}
OUT=${OUT:-results/cifar10-macs-multigpu}
N_EPOCHS=${N_EPOCHS:-5}

if [ "$N_GPUS" -lt 1 ]; then echo "no GPU found: set N_GPUS or use search_cifar10_macs.sh" >&2; exit 2; fi
$PY msunas.py --dataset cifar10 --data "$DATA" --vld_size 5000 --supernet_path "$SUPERNET" \
    --lr 32 --ur 32 --sec_obj macs --n_epochs "$N_EPOCHS" --n_iter "$N_GPUS" \
    --n_gpus "$N_GPUS" --gpu "$GPUS_PER_JOB" --save "$OUT" $( [ -d "$OUT" ] && echo --resume "$OUT" )

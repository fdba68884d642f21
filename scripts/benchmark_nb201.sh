#!/usr/bin/env bash
# Benchmark B2: NAS-Bench-201 cells against the 12-epoch table (data/nasbench201/), validation
# error vs FLOPs, 150 evaluations per seed; prints the HV ratio against the true front.
#   DATASET=cifar100 SEEDS="0 1 2" bash scripts/benchmark_nb201.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-cifar10}                # cifar10, cifar100 or imagenet16
SEEDS=${SEEDS:-0}
OUT=${OUT:-results/nb201-$DATASET}
EXTRA=${EXTRA:-}                           # more msunas.py flags, e.g. "--predictor carts"

for seed in $SEEDS; do
    run="$OUT/seed$seed"
    # shellcheck disable=SC2086
    $PY msunas.py --benchmark nb201 --dataset "$DATASET" --sec_obj flops --seed "$seed" --save "$run" \
        $( [ -d "$run" ] && echo --resume "$run" ) $EXTRA
    $PY -c "import sys; from nas.plugins import load_plugins; load_plugins(); from nas.post_search import load_run; from benchmarks.nb201 import hv_ratio
r = load_run(sys.argv[1]); pts = [[100 - x.metrics['top1'], x.metrics['flops']] for x in r.results]
print(f'{sys.argv[1]}: {len(pts)} evaluations, HV ratio {hv_ratio(pts, sys.argv[2]):.4f}')" "$run" "$DATASET"
done

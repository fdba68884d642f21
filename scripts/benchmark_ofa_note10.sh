#!/usr/bin/env bash
# Benchmark B1: the OFA w1.2 space with OFA's ImageNet accuracy predictor as the oracle and the
# Samsung Note10 latency tables (data/ofa/), 300 evaluations; no dataset and no GPU needed.
# Then the comparison with OFA's own EvolutionFinder (benchmarks/README.md, B1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEED=${SEED:-0}
OUT=${OUT:-results/ofa-note10-seed$SEED}

$PY msunas.py --benchmark ofa_note10 --sec_obj latency --seed "$SEED" --save "$OUT" \
    $( [ -d "$OUT" ] && echo --resume "$OUT" )
$PY post_search.py --expr "$OUT" -n 5 --prefer trade-off --no-weights
if [ "${PEER:-0}" = 1 ]; then                # PEER=1: also run OFA's EvolutionFinder (minutes)
    $PY benchmarks/b1_ofa_note10.py --seeds 1
fi

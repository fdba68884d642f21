"""Benchmark oracles: evaluators that answer from published models and tables in microseconds.

Importing this package registers them in :data:`nas.evaluator.EVALUATORS`:

- ``ofa_note10``: OFA's ImageNet accuracy predictor and Samsung Note10 latency look-up tables
  over the OFA MobileNetV3 w1.2 space (:mod:`benchmarks.ofa_note10`);
- ``nb201``: NAS-Bench-201's 12-epoch accuracies of all 15,625 cells on CIFAR-10, CIFAR-100 and
  ImageNet16-120, with analytic FLOPs, the true Pareto front and HV ratios
  (:mod:`benchmarks.nb201`).
"""

from benchmarks import nb201, ofa_note10  # noqa: F401

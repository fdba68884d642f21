"""Surrogate-assisted NSGA-II search: ``python msunas.py --help`` lists every option.

python msunas.py --benchmark nb201 --dataset cifar10 --sec_obj flops --seed 0 --save results/nb201
python msunas.py --benchmark ofa_note10 --sec_obj latency --seed 0 --save results/ofa
python msunas.py --resume results/nb201          # continue from its latest iter_k.stats
"""

import sys

from nas.cli import run_cli
from nas.search.cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main, plugins_flag=True))

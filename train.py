"""Train or evaluate networks: ``python train.py MODE --help`` lists the options of a mode.

python train.py supernet --dataset cifar10_embedded --lr 32 --ur 32 --epochs 3 --save results/sn
python train.py eval --subnet net.subnet --supernet_path results/sn/supernet.pth
python train.py subnet --subnet net.subnet --supernet_path results/sn/supernet.pth --epochs 50
"""

import sys

from nas.cli import run_cli
from nas.train_cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main))

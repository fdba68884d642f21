"""Datasets and batch loaders.

>>> from nas.data import load_dataset, make_loader
>>> data = load_dataset("cifar10_embedded", vld_size=1000, seed=0)
>>> loader = make_loader(data.train, batch_size=128, resolution=32, train=True, device=torch.device("cpu"))
>>> for epoch in range(3):
...     loader.set_epoch(epoch)
...     for x, y in loader: ...

Small-image datasets live in memory as uint8 tensors and are augmented batch-wise on the compute
device (see :mod:`nas.data.loaders`); ImageNet streams from its files. Where files are looked
for is described in :mod:`nas.data.datasets`.
"""

from nas.data.datasets import DATASETS, DatasetSpec, list_datasets, load_dataset
from nas.data.loaders import BatchLoader, StreamLoader, TensorLoader, make_loader
from nas.data.splits import DataSplits, FileSplit, Split, TensorSplit, carve_valid

__all__ = [
    "DATASETS",
    "BatchLoader",
    "DataSplits",
    "DatasetSpec",
    "FileSplit",
    "Split",
    "StreamLoader",
    "TensorLoader",
    "TensorSplit",
    "carve_valid",
    "list_datasets",
    "load_dataset",
    "make_loader",
]

"""``mlp``: a multi-layer perceptron with two hidden layers of 300 units (torch, CPU)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from acc_predictor.common import Standardizer, TargetScaler, seed_from
from nas.surrogate import SURROGATES, Surrogate


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread meanwhile (restored after): on a busy 2-core machine the
    OpenMP threads of these small matrix products stalled a 0.3 s fit to 4-10 s now and then."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@SURROGATES.register("mlp")
class MLP(Surrogate):
    """``d -> 300 -> 300 -> 1`` with ReLU, trained with AdamW on the mean squared error.

    Features are z-scored per column, targets to zero mean and unit variance. The weights start
    from PyTorch's default uniform(+-1/sqrt(fan_in)) scheme drawn from a ``torch.Generator``
    seeded from the given NumPy generator, which also orders the mini-batches, so the same seed
    gives the same network (global torch random state is neither used nor changed).

    A fixed budget of ``n_steps`` steps on mini-batches of ``batch_size`` rows (the whole set when
    smaller) with a cosine-decayed learning rate, whatever n is: a fit costs the same at 100 and at
    5,000 samples (about 0.25 s on one core), and the short schedule is what keeps a small training
    set from being memorised (no validation split is carved out of the few samples there are).
    """

    name = "mlp"
    hidden = (300, 300)
    n_steps = 150
    batch_size = 128
    lr = 5e-3
    weight_decay = 1e-4

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        with one_torch_thread():
            self._train(X, y)

    def _train(self, X: np.ndarray, y: np.ndarray) -> None:
        self.scaler_ = Standardizer(X)
        self.target_ = TargetScaler(y)
        Z = torch.as_tensor(self.scaler_(X), dtype=torch.float32)
        t = torch.as_tensor(self.target_.forward(y), dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed_from(self.rng))
        self.net_ = self._build(Z.shape[1], gen)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.n_steps)
        n = len(t)
        bs = min(self.batch_size, n)
        order = torch.randperm(n, generator=gen)
        pos = 0
        self.net_.train()
        for _ in range(self.n_steps):
            if pos + bs > n:  # a new epoch: reshuffle
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + bs]
            pos += bs
            loss = torch.mean((self.net_(Z[idx]).squeeze(1) - t[idx]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        self.net_.eval()

    def _build(self, d: int, gen: torch.Generator) -> nn.Sequential:
        sizes = (d, *self.hidden, 1)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            lin = torch.nn.utils.skip_init(nn.Linear, a, b)  # nn.Linear(a, b) would draw from global RNG
            bound = 1.0 / math.sqrt(a)
            with torch.no_grad():
                lin.weight.copy_(torch.rand(b, a, generator=gen) * 2 * bound - bound)
                lin.bias.copy_(torch.rand(b, generator=gen) * 2 * bound - bound)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        Z = torch.as_tensor(self.scaler_(X), dtype=torch.float32)
        with one_torch_thread(), torch.no_grad():
            out = self.net_(Z).squeeze(1).numpy().astype(float)
        return self.target_.inverse(out)

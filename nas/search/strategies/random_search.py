"""``random``: random search, the baseline every strategy must beat.

Every iteration draws ``n_iter`` new architectures uniformly per gene (the initial archive is the
loop's usual one: the smallest, the largest and random ones). Nothing is learnt, so its state is
empty and a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import numpy as np

from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform random architectures, distinct and new to the archive."""

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        return fill_random(self.ctx, [], rng)

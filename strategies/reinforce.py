"""``rl``: REINFORCE over a per-gene categorical policy (or an LSTM controller).

The ENAS / NASNet controller reduced to what a black-box search needs (Williams 1992; Zoph & Le
2017; the NAS-Bench-201 paper's REINFORCE baseline). ``--controller factorised`` (default): one
independent categorical distribution per gene (a logit per value), uniform at the start.
``--controller lstm``: an LSTM that emits the genes in order, each conditioned on those before it
(input: the previous gene's value embedded; hidden ``--rl_hidden``; one linear head per gene).

Each iteration samples ``n_iter`` new architectures from the policy (an architecture already
evaluated is drawn again; a policy that keeps drawing known ones is topped up with random
architectures, which the update then ignores as off-policy). After their evaluation, the reward
of each is minus its objective value standardised by the archive's spread (several objectives:
minus its non-dominated rank in the archive); the advantage is the reward minus an
exponential-moving-average baseline (``--rl_baseline``), and Adam (``--rl_lr``) ascends
``mean(advantage x log p(arch)) + --rl_entropy x entropy``. The initial archive is sampled
uniformly, which is the starting policy, so it updates the policy too.

State (``iter_k.stats``): the controller's parameters, Adam's moments and the baseline, so a
resumed search samples exactly what the uninterrupted one sampled.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nas.config import option
from nas.errors import UserError
from nas.result import Result
from nas.search.selection import ranks
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch

CONTROLLERS = ("factorised", "lstm")


class FactorisedPolicy(nn.Module):
    """One categorical distribution per gene; logits of values beyond a gene's range are masked."""

    def __init__(self, sizes: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mask", _mask(sizes))
        self.logits = nn.Parameter(torch.zeros(len(sizes), int(sizes.max()), dtype=torch.float64))

    def log_probs(self, genes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row of ``genes`` [n, d] (offsets from ``xl``): log p and the entropy of each gene."""
        logp = torch.log_softmax(self.logits + self.mask, dim=1)  # [d, v]
        chosen = logp.gather(1, genes.T).T  # [n, d]
        entropy = -(logp.exp() * logp.masked_fill(self.mask < 0, 0.0)).sum(1)
        return chosen.sum(1), entropy.sum().expand(len(genes))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        with torch.no_grad():
            probs = torch.softmax(self.logits + self.mask, dim=1).numpy()
        u = rng.random((n, len(probs)))
        return np.stack([_inverse_cdf(probs[j], u[:, j]) for j in range(len(probs))], axis=1)


class LSTMPolicy(nn.Module):
    """An LSTM emitting the genes in order (ENAS's controller for a fixed-length space)."""

    def __init__(self, sizes: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mask", _mask(sizes))
        v = int(sizes.max())
        self.embed = nn.Embedding(v + 1, hidden, dtype=torch.float64)  # index v: the start token
        self.cell = nn.LSTMCell(hidden, hidden, dtype=torch.float64)
        self.heads = nn.Linear(hidden, len(sizes) * v, dtype=torch.float64)
        self.v = v

    def _step_logits(self, tokens: torch.Tensor, state, j: int):
        h, c = self.cell(self.embed(tokens), state)
        logits = self.heads(h).view(len(tokens), -1, self.v)[:, j] + self.mask[j]
        return torch.log_softmax(logits, dim=1), (h, c)

    def log_probs(self, genes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = genes.shape
        tokens, state = torch.full((n,), self.v, dtype=torch.long), None
        total, entropy = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        for j in range(d):
            logp, state = self._step_logits(tokens, state, j)
            total = total + logp.gather(1, genes[:, j : j + 1])[:, 0]
            entropy = entropy - (logp.exp() * logp.masked_fill(self.mask[j] < 0, 0.0)).sum(1)
            tokens = genes[:, j]
        return total, entropy

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        d = len(self.mask)
        u = rng.random((n, d))
        out = np.zeros((n, d), dtype=int)
        tokens, state = torch.full((n,), self.v, dtype=torch.long), None
        with torch.no_grad():
            for j in range(d):
                logp, state = self._step_logits(tokens, state, j)
                probs = logp.exp().numpy()
                out[:, j] = [_inverse_cdf(p, ui)[0] for p, ui in zip(probs, u[:, j : j + 1], strict=True)]
                tokens = torch.as_tensor(out[:, j])
        return out


def _mask(sizes: np.ndarray) -> torch.Tensor:
    """[d, max size]: 0 for a gene's values, -inf beyond them."""
    m = torch.zeros(len(sizes), int(sizes.max()), dtype=torch.float64)
    for j, s in enumerate(sizes):
        m[j, int(s) :] = -np.inf
    return m


def _inverse_cdf(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Categorical draws of probabilities ``p`` from uniforms ``u`` (NumPy-seeded, exact)."""
    return np.minimum(np.searchsorted(np.cumsum(p), u * p.sum(), side="right"), len(p) - 1)


@STRATEGIES.register("rl")
class Reinforce(Strategy):
    @dataclass
    class Options:
        controller: str = option(
            "factorised",
            "rl: factorised (a categorical per gene) or lstm (ENAS's controller)",
            choices=list(CONTROLLERS),
        )
        rl_lr: float = option(0.05, "rl: Adam learning rate of the controller")
        rl_baseline: float = option(0.9, "rl: decay of the moving-average reward baseline")
        rl_entropy: float = option(0.0, "rl: weight of the entropy bonus")
        rl_hidden: int = option(32, "rl: LSTM controller's hidden size")

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        space, o = self.ctx.space, self.options
        self.sizes = (space.xu - space.xl + 1).astype(int)
        torch.manual_seed(self.ctx.seed)
        self.policy = (
            FactorisedPolicy(self.sizes)
            if o.controller == "factorised"
            else LSTMPolicy(self.sizes, o.rl_hidden)
        )
        self.optimiser = torch.optim.Adam(self.policy.parameters(), lr=o.rl_lr)
        self.baseline: float | None = None
        self.sampled: set[str] = set()  # ids drawn from the policy (on-policy: updated on)

    def check(self) -> None:
        o = self.options
        if o.controller not in CONTROLLERS:
            raise UserError(f"unknown --controller {o.controller!r}; choose one of: {', '.join(CONTROLLERS)}")
        if o.rl_lr <= 0 or not 0 <= o.rl_baseline < 1 or o.rl_entropy < 0 or o.rl_hidden < 1:
            raise UserError(
                "--rl_lr must be > 0, --rl_baseline in [0, 1), --rl_entropy >= 0, --rl_hidden >= 1"
            )

    def min_archive(self) -> int:
        return 1

    def initial(self, rng: np.random.Generator) -> list[Arch]:
        archs = super().initial(rng)
        self.sampled = {self.ctx.space.arch_id(a) for a in archs}  # uniform draws: the initial policy
        return archs

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        ctx = self.ctx
        space = ctx.space
        chosen, taken = [], set()
        for _ in range(50):
            if len(chosen) == ctx.n_iter:
                break
            for g in self.policy.sample(ctx.n_iter, rng):
                arch = space.decode(space.repair(space.xl + g))
                if ctx.is_new(arch, taken) and len(chosen) < ctx.n_iter:
                    taken.add(space.arch_id(arch))
                    chosen.append(arch)
        self.sampled = set(taken)
        return fill_random(ctx, chosen, rng)

    def tell(self, results: list[Result]) -> None:
        ctx = self.ctx
        ok, _, F = ctx.archive_scores()
        row = {r.arch_id: i for i, r in enumerate(ok)}
        mine = [r for r in results if r.ok and r.arch_id in self.sampled and r.arch_id in row]
        if not mine:
            return
        if F.shape[1] == 1:
            reward = -(F[:, 0] - F[:, 0].mean()) / (F[:, 0].std() + 1e-12)
        else:
            reward = -ranks(F).astype(float)
        R = np.array([reward[row[r.arch_id]] for r in mine])
        if self.baseline is None:
            self.baseline = float(R.mean())
        advantage = torch.as_tensor(R - self.baseline)
        genes = torch.as_tensor(np.stack([ctx.space.encode(r.arch) - ctx.space.xl for r in mine]))
        logp, entropy = self.policy.log_probs(genes)
        loss = -(advantage * logp).mean() - self.options.rl_entropy * entropy.mean()
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        b = self.options.rl_baseline
        self.baseline = b * self.baseline + (1 - b) * float(R.mean())

    def state_dict(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        torch.save({"policy": self.policy.state_dict(), "optimiser": self.optimiser.state_dict()}, buffer)
        return {"baseline": self.baseline, "torch": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "torch" not in state:
            return
        blob = torch.load(io.BytesIO(base64.b64decode(state["torch"])), weights_only=True)
        self.policy.load_state_dict(blob["policy"])
        self.optimiser.load_state_dict(blob["optimiser"])
        self.baseline = state.get("baseline")

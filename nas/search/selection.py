"""Subset selection: pick ``k`` candidates whose second-objective values spread evenly.

The candidates are first narrowed to the best non-dominated ranks of their predicted objectives
(:func:`best_ranks`), so that the spread never buys a predicted-dominated architecture while a
predicted-optimal one is left out (on NAS-Bench-201 with `as`: median HV ratio of seeds 0-4
0.957 -> 0.971, of seeds 0-9 0.966 -> 0.965, i.e. within seed noise).

Given the values already on the archive's front and those of the candidates, choose ``k``
candidates so that, merged with the front and sorted, the gaps between neighbours are as even
as possible (minimum standard deviation of the gaps). A small genetic algorithm over subsets
does it (as in NSGANetV2); it is seeded from the caller's generator.
"""

from __future__ import annotations

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def ranks(F: np.ndarray) -> np.ndarray:
    """Non-dominated rank of every row of ``F`` (minimised objectives; 0 = the front)."""
    out = np.empty(len(F), dtype=int)
    for r, front in enumerate(NonDominatedSorting().do(np.asarray(F, dtype=float))):
        out[front] = r
    return out


def best_ranks(F: np.ndarray, k: int) -> np.ndarray:
    """Indices of the rows in the lowest non-dominated ranks, whole ranks, at least ``k`` rows."""
    rk = ranks(F)
    cut = np.sort(rk)[min(k, len(rk)) - 1]
    return np.flatnonzero(rk <= cut)


def gap_spread(front: np.ndarray, chosen: np.ndarray) -> float:
    v = np.sort(np.concatenate([front, chosen]))
    return float(np.std(np.diff(v))) if len(v) > 2 else 0.0


def select_spread(
    front: np.ndarray,
    candidates: np.ndarray,
    k: int,
    rng: np.random.Generator,
    pop_size: int = 100,
    n_gen: int = 60,
) -> np.ndarray:
    """Indices of ``k`` of ``candidates`` (1-d values) spreading the front evenly."""
    n = len(candidates)
    if k >= n:
        return np.arange(n)
    front = np.asarray(front, dtype=float)
    candidates = np.asarray(candidates, dtype=float)
    pop = np.stack([rng.choice(n, k, replace=False) for _ in range(pop_size)])
    fit = np.array([gap_spread(front, candidates[s]) for s in pop])
    for _ in range(n_gen):
        # tournament of two, then: union of two parents -> k of them, plus a one-element swap
        a, b = rng.integers(pop_size, size=(2, pop_size))
        pa = np.where(fit[a] <= fit[b], a, b)
        a, b = rng.integers(pop_size, size=(2, pop_size))
        pb = np.where(fit[a] <= fit[b], a, b)
        children = np.empty_like(pop)
        for i in range(pop_size):
            pool = np.union1d(pop[pa[i]], pop[pb[i]])
            child = rng.choice(pool, k, replace=False)
            if rng.random() < 0.5:
                outside = np.setdiff1d(np.arange(n), child)
                child[rng.integers(k)] = rng.choice(outside)
            children[i] = child
        child_fit = np.array([gap_spread(front, candidates[s]) for s in children])
        # elitist survival over parents + children, duplicates of a subset count once
        allp, allf = np.concatenate([pop, children]), np.concatenate([fit, child_fit])
        keys = [tuple(sorted(s)) for s in allp]
        order = np.argsort(allf, kind="stable")
        seen, keep = set(), []
        for i in order:
            if keys[i] not in seen:
                seen.add(keys[i])
                keep.append(i)
            if len(keep) == pop_size:
                break
        while len(keep) < pop_size:  # tiny candidate sets: repeat the best
            keep.append(order[0])
        pop, fit = allp[keep], allf[keep]
    return np.sort(pop[int(np.argmin(fit))])

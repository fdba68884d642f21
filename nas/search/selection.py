"""Subset selection: which ``k`` of NSGA-II's candidates the search evaluates next.

Two rules (``msunas.py --selection``):

- ``spread`` (default; NSGANetV2's rule): even gaps of the second objective along the front,
  among the best predicted ranks (:func:`select_spread`).
- ``hvi``: greedy predicted hypervolume improvement. Each pick is the candidate whose predicted
  objectives add the most hypervolume to the archive's front plus the candidates picked before it
  (:func:`select_hvi`); a candidate next to one already picked adds little, so the picks spread
  along the front where the gains are. Candidates predicted to add nothing are taken last, by
  :func:`select_spread`.

Measured (``benchmarks/README.md``). B1 (OFA Note10, 300 evaluations, 3 seeds, mean top-1 gap to
OFA's EvolutionFinder): with NSGA-II 40 x 20, spread -0.67 and hvi -0.55; with 100 x 60, spread
-0.38 and hvi -0.24, the best, which the ``ofa_note10`` preset uses. B2 (NAS-Bench-201, 40 x 20,
median HV ratio of 10 seeds): spread 0.968 / 0.954 / 0.961 on CIFAR-10 / CIFAR-100 /
ImageNet16-120, hvi 0.964 / 0.932 / 0.950, so spread stays the default.

``spread`` first narrows the candidates to their best predicted non-dominated ranks
(:func:`best_ranks`), so that it never buys a predicted-dominated architecture while a
predicted-optimal one is left out; then a small genetic algorithm over subsets (as in
NSGANetV2, seeded from the caller's generator) chooses ``k`` of them so that, merged with the
archive's front and sorted, the gaps between neighbouring second-objective values are as even
as possible (minimum standard deviation of the gaps).
"""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

SELECTIONS = ("hvi", "spread")


def reference_point(F: np.ndarray, iterations: np.ndarray) -> np.ndarray:
    """The hypervolume reference point: 1.01 x the nadir of the initial archive's objective values
    (rows of iteration 0; of every row when there are none), minimised objectives."""
    F, its = np.asarray(F, dtype=float), np.asarray(iterations)
    nadir = F[its == 0].max(axis=0) if np.any(its == 0) else F.max(axis=0)
    return nadir + 0.01 * np.abs(nadir) + 1e-12


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


def select_hvi(
    archive_F: np.ndarray,
    cand_F: np.ndarray,
    k: int,
    ref: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices of ``k`` candidates chosen by greedy predicted hypervolume improvement.

    ``archive_F`` [n, m] (m >= 2) are the archive's objective values, ``cand_F`` [c, m] the
    candidates' predicted (or exactly computed) ones, all minimised; ``ref`` [m] is the
    hypervolume reference point. Pick by pick, the candidate that adds the most hypervolume to the
    archive and the picks so far is taken (ties: the lower index). When no candidate adds anything,
    the rest are chosen by :func:`select_spread` among the best predicted ranks of those left.
    """
    cand_F = np.asarray(cand_F, dtype=float)
    n = len(cand_F)
    if k >= n:
        return np.arange(n)
    indicator = HV(ref_point=np.asarray(ref, dtype=float))
    current = np.asarray(archive_F, dtype=float)
    base = float(indicator(current)) if len(current) else 0.0
    picked: list[int] = []
    left = np.ones(n, dtype=bool)
    while len(picked) < k:
        gains = np.full(n, -np.inf)
        for i in np.flatnonzero(left):
            gains[i] = float(indicator(np.vstack([current, cand_F[i : i + 1]]))) - base
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        picked.append(best)
        left[best] = False
        current = np.vstack([current, cand_F[best : best + 1]])
        base += gains[best]
    if len(picked) < k:
        rest = np.flatnonzero(left)
        picked.extend(int(i) for i in rest[select_ranked_spread(current, cand_F[rest], k - len(picked), rng)])
    return np.sort(np.array(picked, dtype=int))


def select_ranked_spread(
    archive_F: np.ndarray, cand_F: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """``spread``: the candidates of the best predicted ranks (at least ``k``), of which
    :func:`select_spread` takes ``k`` that spread the archive's front evenly (second objective)."""
    archive_F = np.asarray(archive_F, dtype=float)
    front = archive_F[NonDominatedSorting().do(archive_F, only_non_dominated_front=True), 1]
    pool = best_ranks(cand_F, k)
    return pool[select_spread(front, cand_F[pool, 1], k, rng)]


def select(
    rule: str, archive_F: np.ndarray, cand_F: np.ndarray, k: int, ref: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of ``k`` candidates (``cand_F`` [c, m], m >= 2) by ``rule`` (one of ``SELECTIONS``)."""
    if rule == "hvi":
        return select_hvi(archive_F, cand_F, k, ref, rng)
    return select_ranked_spread(archive_F, cand_F, k, rng)

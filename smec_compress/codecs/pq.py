"""Product quantisation, with or without OPQ's learned rotation: ``m`` bytes a vector."""

from __future__ import annotations

import faiss

from ..errors import SmecError
from .base import FaissCodec

KSUB = 256  # centroids per sub-quantiser (8 bits): k-means needs at least this many training rows


class PQ(FaissCodec):
    """Product quantisation: ``m`` sub-vectors, each replaced by one of 256 centroids (1 byte)."""

    name = "pq"

    def __init__(self, m: int, *, seed: int = 0) -> None:
        self.m = m
        self.seed = seed

    def _check(self, dim: int) -> None:
        if not 1 <= self.m <= dim or dim % self.m:
            raise SmecError(f"{self.name}: m={self.m} must divide the vector dim {dim}")

    def fit(self, X) -> "PQ":
        if len(X) < KSUB:
            raise SmecError(f"{self.name} trains {KSUB} centroids per sub-quantiser and needs at least {KSUB} rows; got {len(X)}")
        return super().fit(X)

    def _pq(self, dim: int) -> faiss.IndexPQ:
        index = faiss.IndexPQ(dim, self.m, KSUB.bit_length() - 1, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = self.seed
        index.pq.cp.min_points_per_centroid = 1  # small corpora: train on all of it, without a warning per sub-space
        return index

    def _make_index(self, dim: int) -> faiss.Index:
        return self._pq(dim)


class OPQ(PQ):
    """PQ after a learned orthogonal rotation that balances variance across sub-vectors.

    ``niter`` alternations of rotation and PQ fit: 20 instead of FAISS's 50, because on two CPU
    cores OPQ at 48 bytes takes minutes at 50 and nDCG@10 on SciFact moves by < 0.01.
    """

    name = "opq"

    def __init__(self, m: int, *, seed: int = 0, niter: int = 20) -> None:
        super().__init__(m, seed=seed)
        self.niter = niter

    def _make_index(self, dim: int) -> faiss.Index:
        opq = faiss.OPQMatrix(dim, self.m)
        opq.niter = self.niter
        self._train_pq = faiss.ProductQuantizer(dim, self.m, 8)  # kept: FAISS does not own it
        self._train_pq.cp.min_points_per_centroid = 1
        opq.pq = self._train_pq
        return faiss.IndexPreTransform(opq, self._pq(dim))



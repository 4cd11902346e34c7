"""Product quantisation, with or without OPQ's learned rotation: ``m`` bytes a vector."""

from __future__ import annotations

import faiss
import numpy as np

from ..errors import SmecError
from .base import FaissCodec, f32

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
        self._check_rows(len(X))
        return super().fit(X)

    def _check_rows(self, n: int) -> None:
        if n < KSUB:
            raise SmecError(f"{self.name} trains {KSUB} centroids per sub-quantiser and needs at least {KSUB} rows; got {n}")

    def _pq(self, dim: int) -> faiss.IndexPQ:
        index = faiss.IndexPQ(dim, self.m, KSUB.bit_length() - 1, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = self.seed
        index.pq.cp.min_points_per_centroid = 1  # small corpora: train on all of it, without a warning per sub-space
        return index

    def _make_index(self, dim: int) -> faiss.Index:
        return self._pq(dim)


TRAINERS = ("faiss", "torch")  # OPQ's: FAISS' OPQMatrix, or the same algorithm on torch kernels (opq_fit.py)


class OPQ(PQ):
    """PQ after a learned orthogonal rotation that balances variance across sub-vectors.

    ``niter`` alternations of rotation and PQ fit: 20 instead of FAISS's 50, because on two CPU
    cores OPQ at 48 bytes takes minutes at 50 and nDCG@10 on SciFact moves by < 0.01.
    ``trainer="faiss"`` fits with FAISS' ``OPQMatrix`` (the yardstick users know);
    ``"torch"`` runs the same algorithm on torch kernels (``opq_fit``: 1.5-3x faster, neighbour
    recall within -0.012..+0.016 of FAISS' on the shared sets, bench/opq_trainers.py), which the
    byte-budget choice uses. Both serve the same kind of FAISS index: a rotation in front of an
    ``IndexPQ``.
    """

    name = "opq"

    def __init__(self, m: int, *, seed: int = 0, niter: int = 20, trainer: str = "faiss") -> None:
        super().__init__(m, seed=seed)
        if trainer not in TRAINERS:
            raise SmecError(f"OPQ trainer {trainer!r}: choose {' or '.join(TRAINERS)}")
        self.niter = niter
        self.trainer = trainer

    def fit(self, X) -> "OPQ":
        if self.trainer == "faiss":
            return super().fit(X)
        from .opq_fit import train_opq

        X = f32(X)
        self._check(X.shape[1])
        self._check_rows(len(X))
        self.index_ = self._trained_index(*train_opq(X, self.m, niter=self.niter, seed=self.seed))
        self.input_dim_, self.code_size_ = X.shape[1], int(self.index_.sa_code_size())
        return self

    def _make_index(self, dim: int) -> faiss.Index:
        opq = faiss.OPQMatrix(dim, self.m)
        opq.niter = self.niter
        self._train_pq = faiss.ProductQuantizer(dim, self.m, 8)  # kept: FAISS does not own it
        self._train_pq.cp.min_points_per_centroid = 1
        opq.pq = self._train_pq
        return faiss.IndexPreTransform(opq, self._pq(dim))

    def _trained_index(self, rotation: np.ndarray, codebooks: np.ndarray) -> faiss.Index:
        """A plain FAISS index holding ``rotation (D_out, D)`` and ``codebooks (m, 256, dsub)``:
        what ``index`` would save and a server load."""
        d_out, d_in = rotation.shape
        self._transform = faiss.LinearTransform(d_in, d_out, False)  # kept: the pre-transform does not own it
        faiss.copy_array_to_vector(f32(rotation).ravel(), self._transform.A)
        self._transform.is_trained = True
        self._transform.set_is_orthonormal()  # checked: an orthogonal rotation can decode (sa_decode), as OPQMatrix's
        self._pq_index = self._pq(d_out)
        faiss.copy_array_to_vector(f32(codebooks).ravel(), self._pq_index.pq.centroids)
        self._pq_index.is_trained = True
        return faiss.IndexPreTransform(self._transform, self._pq_index)

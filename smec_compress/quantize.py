"""Quantisers: store each vector in a few bytes instead of ``4 * dim``.

Every codec has the same small API: ``fit(X)`` learns its tables from the corpus, ``encode(X)``
returns the stored codes (``(N, code_size_)`` uint8, so the byte count in the tables is the byte
count on disk), and ``search(codes, queries, k)`` ranks the codes for float queries with the index
FAISS would serve them from:

- ``Int8``: per-dimension min/max scalar quantisation (``IndexScalarQuantizer``, QT_8bit), inner
  product of the float query with the decoded vector: ``dim`` bytes.
- ``Binary``: one sign bit per dimension, Hamming distance between the query's and the document's
  bits (``IndexBinaryFlat``): ``dim / 8`` bytes. Threshold 0, not the corpus mean: on SciFact with
  all-MiniLM-L6-v2 raw signs keep 0.586 nDCG@10, mean-thresholded 0.568, centred PCA signs 0.497.
- ``PQ``: product quantisation with ``m`` sub-quantisers of 256 centroids (``IndexPQ``), asymmetric
  inner product: ``m`` bytes.
- ``OPQ``: PQ after a learned rotation (``OPQMatrix`` + ``IndexPQ``): ``m`` bytes; the rotation is
  a float matrix stored once per index, not per vector.
"""

from __future__ import annotations

from typing import Protocol

import faiss
import numpy as np

from .errors import SmecError


class Codec(Protocol):
    name: str
    code_size_: int

    def fit(self, X: np.ndarray) -> "Codec": ...

    def encode(self, X: np.ndarray) -> np.ndarray: ...

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class _FaissCodec:
    """A codec backed by a trainable FAISS index whose ``sa_encode`` codes we keep.

    Searching clones the trained (empty) index and loads the codes into it, so what is scored is
    exactly what is stored.
    """

    name = "faiss"

    def _make_index(self, dim: int) -> faiss.Index:
        raise NotImplementedError

    def _check(self, dim: int) -> None:
        """Refuse parameters the index cannot take, naming them (subclasses override)."""

    def fit(self, X: np.ndarray) -> "_FaissCodec":
        X = _f32(X)
        self._check(X.shape[1])
        self.index_ = self._make_index(X.shape[1])
        self.index_.train(X)
        self.input_dim_ = X.shape[1]
        self.code_size_ = int(self.index_.sa_code_size())
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "index_"):
            raise SmecError(f"{self.name} codec is not fitted; call fit(X) first")
        return self.index_.sa_encode(_f32(X))

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = faiss.clone_index(self.index_)
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
        inner.add_sa_codes(np.ascontiguousarray(codes, dtype=np.uint8))
        index.ntotal = inner.ntotal
        return index.search(_f32(queries), min(k, len(codes)))


class Int8(_FaissCodec):
    """8-bit scalar quantisation with a per-dimension range learned on the corpus."""

    name = "int8"

    def _make_index(self, dim: int) -> faiss.Index:
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)


class PQ(_FaissCodec):
    """Product quantisation: ``m`` sub-vectors, each replaced by one of 256 centroids (1 byte)."""

    name = "pq"

    def __init__(self, m: int, *, seed: int = 0) -> None:
        self.m = m
        self.seed = seed

    def _check(self, dim: int) -> None:
        if not 1 <= self.m <= dim or dim % self.m:
            raise SmecError(f"{self.name}: m={self.m} must divide the vector dim {dim}")

    def _pq(self, dim: int) -> faiss.IndexPQ:
        index = faiss.IndexPQ(dim, self.m, 8, faiss.METRIC_INNER_PRODUCT)
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


class Binary:
    """Sign bits (threshold 0) packed 8 per byte, searched by Hamming distance.

    Scores are negated distances, so higher is better as for the other codecs; many documents tie
    at the same distance, and ties are ordered by the evaluator, not by us.
    """

    name = "binary"

    def fit(self, X: np.ndarray) -> "Binary":
        self.input_dim_ = int(np.asarray(X).shape[1])
        self.code_size_ = -(-self.input_dim_ // 8)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "input_dim_"):
            raise SmecError("binary codec is not fitted; call fit(X) first")
        return np.packbits(np.asarray(X) > 0, axis=1)

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = faiss.IndexBinaryFlat(8 * codes.shape[1])
        index.add(np.ascontiguousarray(codes))
        distances, indices = index.search(self.encode(queries), min(k, len(codes)))
        return -distances.astype(np.float32), indices


def make_codec(name: str, *, m: int | None = None, seed: int = 0) -> Codec:
    """A codec by name ("int8", "binary", "pq", "opq"); PQ and OPQ need ``m`` (bytes per vector)."""
    if name == "int8":
        return Int8()
    if name == "binary":
        return Binary()
    if name in ("pq", "opq"):
        if m is None:
            raise SmecError(f"{name} needs m, the number of sub-quantisers (= bytes per vector)")
        return (PQ if name == "pq" else OPQ)(m, seed=seed)
    raise SmecError(f"unknown codec {name!r}; choose int8, binary, pq or opq")

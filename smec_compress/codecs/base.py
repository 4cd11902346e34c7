"""What every codec is: ``fit`` its tables on the corpus, ``encode`` rows to uint8 codes, ``search``
the codes for float queries with the index FAISS would serve them from."""

from __future__ import annotations

from typing import Protocol

import faiss
import numpy as np

from ..validation import check_fitted


class Codec(Protocol):
    name: str
    code_size_: int

    def fit(self, X: np.ndarray) -> "Codec": ...

    def encode(self, X: np.ndarray) -> np.ndarray: ...

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def state(self) -> bytes: ...

    def restore(self, state: bytes, input_dim: int) -> "Codec": ...


def f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def exact_search(docs: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product (``IndexFlatIP``): ``(scores, indices)``, each ``(n_queries, k)``.
    The one flat search: float rows in ``eval``, the truth of the codec choice, the benches."""
    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(f32(docs))
    return index.search(f32(queries), min(k, len(docs)))


def affine_transforms(w: np.ndarray, b: np.ndarray) -> list[faiss.VectorTransform]:
    """``x @ w + b`` (``w`` is ``(D, d)``), then L2 normalisation, as FAISS transforms: how a head's
    map at one dim runs inside a FAISS index."""
    linear = faiss.LinearTransform(w.shape[0], w.shape[1], True)
    faiss.copy_array_to_vector(f32(w.T).ravel(), linear.A)
    faiss.copy_array_to_vector(f32(b).ravel(), linear.b)
    linear.is_trained = True
    return [linear, faiss.NormalizationTransform(w.shape[1], 2.0)]


def copy_index(index: faiss.Index) -> faiss.Index:
    """A deep copy through FAISS' own serialisation (``clone_index`` refuses some transforms,
    ``NormalizationTransform`` among them); the copy owns everything in it."""
    return faiss.deserialize_index(faiss.serialize_index(index))


def with_transforms(index: faiss.Index, transforms: list[faiss.VectorTransform]) -> faiss.IndexPreTransform:
    """A copy of ``index`` with ``transforms`` in front, in order, as one flat ``IndexPreTransform``
    that owns (and frees) everything in it, so no Python reference must outlive it."""
    index = copy_index(index)
    if not isinstance(index, faiss.IndexPreTransform):
        inner, index = index, faiss.IndexPreTransform(index)
        inner.thisown, index.own_fields = False, True  # the C++ index frees it, not Python
    for transform in reversed(transforms):
        transform.thisown = False  # owned (and freed) by the index's chain from here on
        index.prepend_transform(transform)
    return index


class FaissCodec:
    """A codec backed by a trainable FAISS index whose ``sa_encode`` codes we keep.

    Searching clones the trained (empty) index and loads the codes into it, so what is scored is
    exactly what is stored.
    """

    name = "faiss"

    def _make_index(self, dim: int) -> faiss.Index:
        raise NotImplementedError

    def _check(self, dim: int) -> None:
        """Refuse parameters the index cannot take, naming them (subclasses override)."""

    def fit(self, X: np.ndarray) -> "FaissCodec":
        X = f32(X)
        self._check(X.shape[1])
        self.index_ = self._make_index(X.shape[1])
        self.index_.train(X)
        self.input_dim_ = X.shape[1]
        self.code_size_ = int(self.index_.sa_code_size())
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "index_")
        return self.index_.sa_encode(f32(X))

    def state(self) -> bytes:
        """The trained (empty) FAISS index, serialised: what ``restore`` and ``faiss.read_index`` read."""
        check_fitted(self, "index_")
        return faiss.serialize_index(self.index_).tobytes()

    def restore(self, state: bytes, input_dim: int) -> "FaissCodec":
        """This codec as ``state`` (from ``state()``) left it."""
        self.index_ = faiss.deserialize_index(np.frombuffer(state, dtype=np.uint8))
        self.input_dim_ = int(input_dim)
        self.code_size_ = int(self.index_.sa_code_size())
        return self

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = copy_index(self.index_)
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
        inner.add_sa_codes(np.ascontiguousarray(codes, dtype=np.uint8))
        index.ntotal = inner.ntotal
        return index.search(f32(queries), min(k, len(codes)))



"""Sign bits searched by Hamming distance, optionally re-ranked against the float query:
``dim / 8`` bytes a vector either way."""

from __future__ import annotations

import faiss
import numpy as np

from ..validation import check_fitted


class Binary:
    """Sign bits (threshold 0) packed 8 per byte, searched by Hamming distance.

    Scores are negated distances, so higher is better as for the other codecs; many documents tie
    at the same distance, and ties are ordered by the evaluator, not by us.
    """

    name = "binary"

    def fit(self, X: np.ndarray) -> "Binary":
        self.input_dim_ = self.dim_ = int(np.asarray(X).shape[1])  # dim_: the bits coded
        self.code_size_ = -(-self.dim_ // 8)
        return self

    def state(self) -> bytes:
        """Nothing: sign bits need no tables."""
        check_fitted(self, "input_dim_")
        return b""

    def restore(self, state: bytes, input_dim: int) -> "Binary":
        return self.fit(np.zeros((1, input_dim), dtype=np.float32))

    def _bits(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "code_size_")
        return np.packbits(np.asarray(X) > 0, axis=1)

    def encode(self, X: np.ndarray) -> np.ndarray:
        return self._bits(X)

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._hamming(codes, queries, k)

    def _hamming(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by Hamming distance to the bits of ``queries`` (vectors in the coded space)."""
        index = faiss.IndexBinaryFlat(8 * codes.shape[1])
        index.add(np.ascontiguousarray(codes))
        distances, indices = index.search(self._bits(queries), min(k, len(codes)))
        return -distances.astype(np.float32), indices


class BinaryRerank(Binary):
    """Sign bits, Hamming top-``candidates``, re-ranked by the float query's inner product with
    each candidate's +-1 code: the sentence-transformers / vector-database recipe for binary
    embeddings. It needs no bytes beyond the code (re-ranking with the full vectors kept on disk
    is rescoring, counted separately), and breaks most of Hamming's ties.
    """

    name = "binary-rerank"

    def __init__(self, *, candidates: int = 100) -> None:
        self.candidates = candidates

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._rerank(codes, queries, k)

    def _rerank(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Hamming top-``candidates`` re-ranked by ``queries`` (float, in the coded space)."""
        _, top = self._hamming(codes, queries, max(k, self.candidates))
        signs = np.unpackbits(codes[top], axis=-1, count=self.dim_).astype(np.float32) * 2 - 1
        scores = np.einsum("qcd,qd->qc", signs, np.asarray(queries, dtype=np.float32))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(top, order, 1)

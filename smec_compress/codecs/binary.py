"""Sign bits searched by Hamming distance: ``dim / 8`` bytes a vector."""

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
        self.input_dim_ = int(np.asarray(X).shape[1])
        self.code_size_ = -(-self.input_dim_ // 8)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "input_dim_")
        return np.packbits(np.asarray(X) > 0, axis=1)

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = faiss.IndexBinaryFlat(8 * codes.shape[1])
        index.add(np.ascontiguousarray(codes))
        distances, indices = index.search(self.encode(queries), min(k, len(codes)))
        return -distances.astype(np.float32), indices



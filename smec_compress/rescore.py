"""Two-stage search: candidates from a compressed index, re-ranked with the full vectors.

Vector databases (Qdrant, Weaviate, Vespa, Elasticsearch) search the compressed index for more
candidates than asked (oversampling) and rescore them by exact inner product with the original
vectors, kept on disk: RAM holds only the compressed index, and a few hundred full vectors per
query are read back. ``eval --rescore R`` and the service's ``/search?rescore=R`` both use this
one function, so the table and the server agree on what rescoring means.
"""

from __future__ import annotations

import numpy as np

from .codecs.base import f32

CHUNK_BYTES = 256 << 20  # gathered candidate vectors per block of queries


def rescore(candidates: np.ndarray, queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of each query's ``candidates`` (rows of ``vectors``; -1 marks none) by exact
    inner product of ``queries`` with ``vectors[row]``: ``(scores, rows)``, each ``(Q, k)``,
    best first, padded with -inf / -1 where a query had fewer candidates. ``vectors`` may be a
    memory-mapped array: only the candidates' rows are read."""
    candidates = np.asarray(candidates, dtype=np.int64)
    queries = f32(queries)
    n_q, n_c = candidates.shape
    k = min(k, n_c)
    scores = np.empty((n_q, n_c), np.float32)
    step = max(1, CHUNK_BYTES // max(1, 4 * n_c * queries.shape[1]))
    for start in range(0, n_q, step):
        block = candidates[start : start + step]
        picked = np.asarray(vectors[np.maximum(block, 0).ravel()], dtype=np.float32).reshape(*block.shape, -1)
        scores[start : start + step] = np.einsum("qcd,qd->qc", picked, queries[start : start + step])
    scores[candidates < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(candidates, order, 1)

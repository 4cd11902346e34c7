"""Training subsets of datasets larger than memory: a uniform sample in one streaming pass.

``fit`` trains on at most ``sample_rows`` vectors (default 1M, ~1.5 GB at 384 d); a corpus of
10M-1B rows is read batch by batch and never held whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import SmecError
from .files import count_rows, read_meta
from .io import DEFAULT_BATCH_ROWS, Columns, Embeddings, iter_batches, read_embeddings


def sample_embeddings(
    path,
    n: int,
    *,
    seed: int = 0,
    columns: Columns = Columns(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep_ids: set[str] = frozenset(),
    progress: Callable[[int], None] | None = None,
) -> tuple[Embeddings, int]:
    """``(sample, total_rows)``: a uniform random sample of ``n`` rows (all rows if fewer), plus
    every row whose id is in ``keep_ids`` (e.g. documents that supervised pairs need).

    Reservoir sampling (Algorithm R), vectorised per batch: row ``t`` (0-based, t >= n) draws
    ``j`` uniform in ``[0, t]`` and replaces slot ``j`` when ``j < n``. Within a batch a later row
    overwrites an earlier one on the same slot, exactly as the sequential algorithm would.
    Memory: the reservoir plus one batch.
    """
    if n < 1:
        raise SmecError(f"sample size n={n} must be at least 1")
    total = count_rows(path)
    if total <= n:
        emb = read_embeddings(path, columns=columns, batch_rows=batch_rows)
        if progress:
            progress(total)
        return emb, total
    rng = np.random.default_rng(seed)
    ids = np.empty(n, dtype=object)
    vectors: np.ndarray | None = None
    kept_ids: list[str] = []
    kept_vectors: list[np.ndarray] = []
    seen = 0
    for batch in iter_batches(path, columns=columns, batch_rows=batch_rows):
        if keep_ids:
            wanted = np.flatnonzero([i in keep_ids for i in batch.ids])
            kept_ids += [batch.ids[i] for i in wanted]
            kept_vectors.append(batch.vectors[wanted])
        if vectors is None:
            vectors = np.empty((n, batch.vectors.shape[1]), dtype=np.float32)
        rows = np.arange(seen, seen + len(batch.ids))
        fill = rows < n  # the first n rows fill the reservoir in order
        vectors[rows[fill]] = batch.vectors[fill]
        ids[rows[fill]] = np.asarray(batch.ids, dtype=object)[fill]
        rest = np.flatnonzero(~fill)
        if len(rest):
            slots = rng.integers(0, rows[rest] + 1)
            hit = slots < n
            vectors[slots[hit]] = batch.vectors[rest[hit]]
            ids[slots[hit]] = np.asarray(batch.ids, dtype=object)[rest[hit]]
        seen += len(batch.ids)
        if progress:
            progress(len(batch.ids))
    sample = Embeddings(ids.tolist(), vectors, read_meta(path))
    if kept_ids:
        extra = np.flatnonzero(~np.isin(np.asarray(kept_ids, dtype=object), ids))
        sample.ids += [kept_ids[i] for i in extra]
        sample.vectors = np.concatenate([vectors, np.concatenate(kept_vectors)[extra]])
    return sample, total


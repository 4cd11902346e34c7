"""A head's codec for a byte budget as one plain FAISS index that takes raw full-dim vectors.

``fit --budgets`` stores each budget's codec as a trained FAISS index over what the codec sees:
the full vectors, or the head's output at some dim. For the latter this puts the head in front as
FAISS transforms (``LinearTransform`` with the collapsed map and bias, then
``NormalizationTransform``; a codec on the full vectors gets the normalisation alone), so ``faiss.read_index`` in any process, fed raw embedder vectors and
raw queries, searches exactly what ``SMEC.search(..., budget=)`` does. Sign-bit codecs have no
such form (FAISS' binary indexes take binary queries), and are refused with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from ..codecs.base import affine_transforms, with_transforms
from ..codecs.budget import sees_full_vectors
from ..data.files import count_rows, read_meta
from ..data.io import DEFAULT_BATCH_ROWS, Columns, iter_batches
from ..errors import SmecError
from .index import IndexStats, _save


def budget_index(head, budget: int) -> faiss.Index:
    """The trained, empty index of ``head``'s codec for ``budget``, taking full-dim vectors."""
    bc = head._codec(budget)
    if not hasattr(bc.codec, "index_"):
        raise SmecError(f"the {budget}-byte codec ({bc.candidate.key}) is sign bits: FAISS' binary indexes take "
                        "binary queries, so it has no float-query FAISS index; use SMEC.search")
    if sees_full_vectors(bc.candidate):  # the codec sees unit rows (codecs.budget.view)
        transforms = [faiss.NormalizationTransform(head.input_dim_, 2.0)]
    else:
        transforms = affine_transforms(*head.weights_[bc.candidate.dim])
    return with_transforms(bc.codec.index_, transforms)


def build_budget_index(
    head,
    path,
    out_dir,
    *,
    budget: int,
    columns: Columns = Columns(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> IndexStats:
    """Encode every full-dim vector of ``path`` with the budget's codec into one FAISS index,
    saved atomically in ``out_dir`` as ``build_index`` saves one (``index.faiss``, ``ids.parquet``,
    ``index.json``)."""
    meta = read_meta(path)
    head.check_input(meta.dim or head.input_dim_, meta.fingerprint)
    if count_rows(path) == 0:
        raise SmecError(f"{path}: no rows to index")
    index = budget_index(head, budget)
    ids: list[str] = []
    for batch in iter_batches(path, columns=columns, batch_rows=batch_rows):
        index.add(np.ascontiguousarray(batch.vectors, dtype=np.float32))
        ids.extend(batch.ids)
        if progress:
            progress(len(batch.ids))
    size = int(index.sa_code_size())
    stats = IndexStats(head.input_dim_, index.ntotal, size, f"budget {budget} B: {head._codec(budget).candidate.key}", 1,
                       index.ntotal * size)
    _save(index, ids, stats, meta, Path(out_dir))
    return stats

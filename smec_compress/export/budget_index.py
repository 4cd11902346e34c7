"""A head's codec for a byte budget as one plain FAISS index that takes raw full-dim vectors.

``fit --budgets`` stores each budget's codec as a trained FAISS index over what the codec sees:
the full vectors, or the head's output at some dim. For the latter this puts the head in front as
FAISS transforms (``LinearTransform`` with the collapsed map and bias, then
``NormalizationTransform``; a codec on the full vectors gets the normalisation alone), so ``faiss.read_index`` in any process, fed raw embedder vectors and
raw queries, searches exactly what ``SMEC.search(..., budget=)`` does. Sign-bit codecs have no
such form (FAISS' binary indexes take binary queries), and are refused with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from ..codecs.base import affine_transforms, f32, with_transforms
from ..codecs.budget import sees_full_vectors
from ..data.files import count_rows, read_meta
from ..data.io import DEFAULT_BATCH_ROWS, Columns, iter_batches
from ..data.sampling import sample_embeddings
from ..errors import SmecError
from .index import EXACT_MAX_ROWS, IndexStats, _save

NPROBE = 32  # inverted lists a search visits by default (set faiss.ParameterSpace "nprobe=..." to trade)
IVF_TRAIN_ROWS = 262_144  # rows the coarse quantizer's k-means sees


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


def with_inverted_lists(index: faiss.IndexPreTransform, sample: np.ndarray, *, rows: int, nprobe: int = NPROBE,
                        seed: int = 0) -> faiss.IndexPreTransform | None:
    """The same transforms and the same codes, kept in inverted lists: an ``IndexIVFScalarQuantizer``
    / ``IndexIVFPQ`` with the flat codec's own tables and ``by_residual`` off (so every vector's
    code is byte for byte the flat one's), and a coarse quantizer of about ``4 sqrt(rows)``
    spherical k-means centroids over the ``sample`` (raw rows) through the transforms. None for
    codecs with no such index (RaBitQ's inverted lists code residuals): they stay an exact scan."""
    inner = faiss.downcast_index(index.index)
    nlist = 2 ** max(4, round(math.log2(4 * math.sqrt(rows))))
    quantizer = faiss.IndexFlatIP(inner.d)
    if isinstance(inner, faiss.IndexScalarQuantizer):
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, inner.d, nlist, inner.sq.qtype, faiss.METRIC_INNER_PRODUCT, False)
        ivf.sq = inner.sq
    elif isinstance(inner, faiss.IndexPQ):
        ivf = faiss.IndexIVFPQ(quantizer, inner.d, nlist, inner.pq.M, inner.pq.nbits, faiss.METRIC_INNER_PRODUCT)
        ivf.by_residual = False
        ivf.pq = inner.pq
    else:
        return None
    chain = [faiss.downcast_VectorTransform(index.chain.at(i)) for i in range(index.chain.size())]
    z = f32(sample)
    for transform in chain:
        z = transform.apply(z)
    kmeans = faiss.Kmeans(inner.d, min(nlist, len(z)), niter=10, spherical=True, seed=seed)
    kmeans.train(z)
    quantizer.add(kmeans.centroids)
    ivf.nlist = quantizer.ntotal
    ivf.is_trained, ivf.nprobe = True, min(nprobe, ivf.nlist)
    return with_transforms(ivf, [fresh_copy(t) for t in chain])


def fresh_copy(transform: faiss.VectorTransform) -> faiss.VectorTransform:
    """A new transform equal to ``transform`` (linear maps, OPQ rotations and normalisation: what
    budget indexes chain), owned by Python until an index takes it."""
    if isinstance(transform, faiss.NormalizationTransform):
        return faiss.NormalizationTransform(transform.d_in, transform.norm)
    if not isinstance(transform, faiss.LinearTransform):
        raise SmecError(f"cannot copy a {type(transform).__name__} into an inverted-list index")
    linear = faiss.LinearTransform(transform.d_in, transform.d_out, transform.have_bias)
    faiss.copy_array_to_vector(faiss.vector_to_array(transform.A), linear.A)
    if transform.have_bias:
        faiss.copy_array_to_vector(faiss.vector_to_array(transform.b), linear.b)
    linear.is_trained = True
    return linear


def build_budget_index(
    head,
    path,
    out_dir,
    *,
    budget: int,
    columns: Columns = Columns(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
    ivf_rows: int = EXACT_MAX_ROWS,
    nprobe: int = NPROBE,
) -> IndexStats:
    """Encode every full-dim vector of ``path`` with the budget's codec into one FAISS index,
    saved atomically in ``out_dir`` as ``build_index`` saves one (``index.faiss``, ``ids.parquet``,
    ``index.json``). Above ``ivf_rows`` rows the same codes go into inverted lists
    (``with_inverted_lists``, searched with ``nprobe`` lists), as ``index``'s own cascade leaves
    exact search above a million rows."""
    meta = read_meta(path)
    head.check_input(meta.dim or head.input_dim_, meta.fingerprint)
    rows = count_rows(path)
    if rows == 0:
        raise SmecError(f"{path}: no rows to index")
    index = budget_index(head, budget)
    if rows > ivf_rows:
        sample, _ = sample_embeddings(path, min(rows, IVF_TRAIN_ROWS), columns=columns)
        index = with_inverted_lists(index, sample.vectors, rows=rows, nprobe=nprobe) or index
    ids: list[str] = []
    for batch in iter_batches(path, columns=columns, batch_rows=batch_rows):
        index.add(np.ascontiguousarray(batch.vectors, dtype=np.float32))
        ids.extend(batch.ids)
        if progress:
            progress(len(batch.ids))
    size = int(head._codec(budget).codec.code_size_)
    ivf = faiss.downcast_index(index.index)
    kind = f"IVF{ivf.nlist} (nprobe {ivf.nprobe}) of " if isinstance(ivf, faiss.IndexIVF) else ""
    stats = IndexStats(head.input_dim_, index.ntotal, size, f"{kind}budget {budget} B: {head._codec(budget).candidate.key}", 1,
                       index.ntotal * size)
    _save(index, ids, stats, meta, Path(out_dir))
    return stats

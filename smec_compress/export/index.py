"""FAISS indexes over compressed Parquet vectors, chosen to fit a memory budget.

The choice is a short cascade in the spirit of autofaiss: exact ``Flat`` while the corpus is
small and fits, ``HNSW32`` while the raw vectors plus graph links fit, else ``IVF{nlist},PQ{m}``
whose codes take ``m`` bytes a vector (``np``: no polysemous training). Vectors are added in streamed batches; FAISS labels are
row positions and the string ids go beside the index in ``ids.parquet``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.atomic import atomic_dir
from ..data.files import count_rows, read_meta
from ..data.io import DEFAULT_BATCH_ROWS, Columns, iter_batches
from ..data.sampling import sample_embeddings
from ..data.schema import EmbeddingMeta
from ..errors import SmecError
from ..resources import parse_bytes

EXACT_MAX_ROWS = 1_000_000
HNSW_MAX_ROWS = 10_000_000
HNSW_LINK_BYTES = 32 * 2 * 4  # M=32: about 2M int32 links a vector at level 0


def pq_bytes(dim: int, budget_per_vector: float) -> int:
    """Largest PQ code size m (bytes) that divides ``dim``, fits the budget and is at most dim/2."""
    for m in range(min(dim // 2, 64), 0, -1):
        if dim % m == 0 and m <= budget_per_vector:
            return m
    raise SmecError(f"no PQ code of at most {budget_per_vector:.1f} bytes a vector divides dim {dim}: raise --max-memory")


def choose_factory(n: int, dim: int, max_memory: int) -> str:
    """The index for ``n`` vectors of ``dim`` under ``max_memory`` bytes (exact when possible)."""
    raw = n * dim * 4
    if n <= EXACT_MAX_ROWS and raw <= max_memory:
        return "Flat"
    if n <= HNSW_MAX_ROWS and raw + n * HNSW_LINK_BYTES <= max_memory:
        return "HNSW32,Flat"
    nlist = 2 ** max(4, round(math.log2(4 * math.sqrt(n))))
    m = pq_bytes(dim, (max_memory - nlist * dim * 4) / max(n, 1) - 8)  # 8 bytes/vector of list ids
    return f"IVF{nlist},PQ{m}np"  # np: skip polysemous training, 30x slower and unused by IP search


@dataclass(frozen=True)
class IndexStats:
    """What an index holds and costs: the one description of an index, written by ``index`` to
    ``index.json`` and reported per served dim by the service's ``/indexes`` and metrics.

    ``index_type`` is the FAISS factory string; ``memory_bytes`` an estimate: codes, ids, graph
    links or centroids; ``segments`` how many indexes the service fans a search out to.
    """

    dim: int
    count: int
    bytes_per_vector: int
    index_type: str
    segments: int
    memory_bytes: int


def code_size(index: faiss.Index, dim: int) -> int:
    """Bytes a vector takes in ``index`` (HNSW: in its storage; 4 * dim for float vectors)."""
    if isinstance(index, faiss.IndexHNSW):
        return code_size(faiss.downcast_index(index.storage), dim)
    return int(getattr(index, "code_size", 4 * dim))


def index_memory(index: faiss.Index, dim: int, *, id_bytes: int = 0) -> int:
    """Estimated bytes: codes, ``id_bytes`` a vector of id maps, graph links or centroids."""
    n = index.ntotal
    total = n * (code_size(index, dim) + id_bytes)
    if isinstance(index, faiss.IndexHNSW):
        total += index.hnsw.neighbors.size() * 4
    if isinstance(index, faiss.IndexIVF):
        total += index.nlist * dim * 4 + n * 8
    return int(total)


def stats_of(index: faiss.Index, factory: str) -> IndexStats:
    inner = faiss.downcast_index(index)
    return IndexStats(index.d, index.ntotal, code_size(inner, index.d), factory, 1, index_memory(inner, index.d))


def build_index(
    path,
    out_dir,
    *,
    factory: str | None = None,
    max_memory: int = parse_bytes("4G"),
    columns: Columns = Columns(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    train_rows: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> IndexStats:
    """Build an inner-product index over every vector of ``path``, saved atomically in ``out_dir``
    (``index.faiss``, ``ids.parquet``, and ``index.json``: its stats and the vectors' provenance)."""
    n = count_rows(path)
    if n == 0:
        raise SmecError(f"{path}: no rows to index")
    meta = read_meta(path)
    sample, _ = sample_embeddings(path, train_rows or max(100_000, 64 * 1024), seed=seed, columns=columns)
    dim = sample.dim
    factory = factory or choose_factory(n, dim, max_memory)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise SmecError(f"FAISS factory string {factory!r} is not valid for dim {dim}: {exc}") from None
    if not index.is_trained:
        index.train(sample.vectors)
    del sample
    ids: list[str] = []
    for batch in iter_batches(path, columns=columns, batch_rows=batch_rows):
        index.add(np.ascontiguousarray(batch.vectors))
        ids.extend(batch.ids)
        if progress:
            progress(len(batch.ids))
    stats = stats_of(index, factory)
    _save(index, ids, stats, meta, Path(out_dir))
    return stats


def _save(index, ids: list[str], stats: IndexStats, meta: EmbeddingMeta, out_dir: Path) -> None:
    """Write to a sibling temp dir, then swap it in: readers never see half an index."""
    info = {**asdict(stats), "metric": "inner_product", "head_fingerprint": meta.head_fingerprint,
            "embedder_fingerprint": meta.fingerprint}
    with atomic_dir(out_dir, overwrite=True) as tmp:
        faiss.write_index(index, str(tmp / "index.faiss"))
        pq.write_table(pa.table({"id": pa.array(ids, pa.string())}), tmp / "ids.parquet")
        (tmp / "index.json").write_text(json.dumps(info, indent=2))


def load_index(index_dir) -> tuple[faiss.Index, list[str], IndexStats, EmbeddingMeta]:
    """``(index, ids, stats, provenance)`` of a directory written by ``build_index``."""
    index_dir = Path(index_dir)
    for name in ("index.faiss", "ids.parquet", "index.json"):
        if not (index_dir / name).is_file():
            raise SmecError(f"{index_dir}: missing {name} (not an index built by `smec-compress index`)")
    info = json.loads((index_dir / "index.json").read_text())
    ids = pq.read_table(index_dir / "ids.parquet").column("id").to_pylist()
    index = faiss.read_index(str(index_dir / "index.faiss"))
    if "index_type" not in info:  # written by 0.1.0: factory, dim, count and provenance only
        stats = stats_of(index, info["factory"])
    else:
        stats = IndexStats(**{k: info[k] for k in IndexStats.__dataclass_fields__})
    return index, ids, stats, EmbeddingMeta(head_fingerprint=info.get("head_fingerprint"), fingerprint=info.get("embedder_fingerprint"))

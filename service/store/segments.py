"""Segments: how one is built (a FAISS index per served dim) and when segments are merged.

Each write adds one small segment; segments of similar size are merged (a binary-counter policy,
so each row is rewritten O(log n) times) and a segment whose rows are mostly dead is rewritten.
Segments below ``min_rows`` are exact ``Flat`` indexes; larger ones use the configured FAISS
factory string (IVF/HNSW/PQ need enough rows to train on). Every index is an ``IndexIDMap2`` over
the segment's iids, so one tombstone selector works for every segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import faiss
import numpy as np

from smec_compress.errors import SmecError

from .state import Segment, State, with_selector
from .vectors import WRITE_ROWS, Gathered, write_vectors


@dataclass(frozen=True)
class IndexConfig:
    """How each served dim is indexed.

    ``factories`` maps dim -> FAISS factory string (without an ``IDMap`` prefix; the store adds
    one); ``params`` is a FAISS ParameterSpace string applied to every built index (e.g.
    ``nprobe=16`` or ``efSearch=64``).
    """

    factories: dict[int, str]
    params: str = ""
    min_rows: int = 50_000

    def to_dict(self) -> dict:
        return {"factories": {str(d): f for d, f in sorted(self.factories.items())}, "params": self.params, "min_rows": self.min_rows}


def check_factory(dim: int, factory: str, params: str) -> None:
    """Refuse a factory string (or parameter string) FAISS cannot build for ``dim``, saying why."""
    if factory.replace(" ", "").upper().startswith("IDMAP"):
        raise SmecError(f"index factory {factory!r}: leave out IDMap (the store adds its own id mapping)")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        if params:
            faiss.ParameterSpace().set_index_parameters(index, params)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:200]
        raise SmecError(f"index factory {factory!r} / params {params!r} is not valid for dim {dim}: {first}") from None


def merge_group(state: State) -> list[int] | None:
    """Positions of the segments to rewrite next, or None: the newest two while the older holds
    at most twice the newer's live rows, else the first segment that is more than half dead."""
    segs = state.segments
    live = [s.rows - state.dead.get(s.id, 0) for s in segs]
    if len(segs) >= 2 and live[-2] <= 2 * live[-1]:
        return [len(segs) - 2, len(segs) - 1]
    return next(([j] for j, s in enumerate(segs) if state.dead.get(s.id, 0) * 2 > s.rows), None)


class SegmentBuilder:
    """Builds segments for the served ``dims`` (and byte ``budgets``: ``budget_index(b)`` gives the
    head's trained, empty codec index over raw vectors); numbers them from ``next_id`` (never reused)
    and writes each one's full vectors to ``files.vectors_path(id)`` (``files``: the store's
    ``DataDir``, which also says which merged-away files may go at once)."""

    def __init__(self, dims: tuple[int, ...], config: IndexConfig, compress: Callable[[np.ndarray], dict[int, np.ndarray]],
                 files, budgets: tuple[int, ...] = (), budget_index: Callable[[int], faiss.Index] | None = None) -> None:
        self.dims = dims
        self.config = config
        self.compress = compress  # full vectors -> {dim: the head's vectors}
        self.files = files
        self.budgets = budgets
        self.budget_index = budget_index
        self.next_id = 0

    def build(self, iids: np.ndarray, vectors, compressed: dict[int, np.ndarray] | None = None) -> Segment:
        """A segment of ``iids`` whose full vectors are ``vectors`` (an array, or a
        :class:`Gathered` view of other segments' rows, read in blocks); ``compressed`` (dim ->
        the head's vectors) when the caller has it already."""
        seg_id = self.next_id
        self.next_id += 1
        mapped = write_vectors(self.files.vectors_path(seg_id), vectors, int(vectors.shape[1]))
        if compressed is None:
            compressed = self._compress_blocks(mapped)
        big = len(iids) >= self.config.min_rows
        indexes, inner = {}, {}
        kinds = set()
        for d in self.dims:
            factory = self.config.factories[d] if big else "Flat"
            kinds.add(factory)
            base = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
            if not base.is_trained:
                base.train(compressed[d])
            if self.config.params and big:
                faiss.ParameterSpace().set_index_parameters(base, self.config.params)
            idx = faiss.IndexIDMap2(base)
            idx.add_with_ids(compressed[d], iids)
            indexes[d], inner[d] = idx, faiss.downcast_index(base)
        budgets = {}
        for b in self.budgets:  # the codec's own tables: nothing to train, whatever the segment's size
            budgets[b] = faiss.IndexIDMap2(self.budget_index(b))
            for start in range(0, len(iids), WRITE_ROWS):
                budgets[b].add_with_ids(np.ascontiguousarray(mapped[start : start + WRITE_ROWS], dtype=np.float32),
                                        iids[start : start + WRITE_ROWS])
        return Segment(seg_id, iids, indexes, inner, "Flat" if not big else ",".join(sorted(kinds)), budgets, mapped)

    def _compress_blocks(self, vectors: np.ndarray) -> dict[int, np.ndarray]:
        """The head's vectors of ``vectors`` at every dim, computed a block at a time."""
        parts = [self.compress(np.asarray(vectors[s : s + WRITE_ROWS])) for s in range(0, len(vectors), WRITE_ROWS)]
        return {d: np.concatenate([p[d] for p in parts]) if parts else np.zeros((0, d), np.float32) for d in self.dims}

    def rewrite(self, state: State, group: list[int]) -> State:
        """``state`` with the segments at ``group`` replaced by one segment of their live rows
        (none if all are dead), and their tombstones forgotten: the dead rows' vectors and index
        entries are freed here, not only by a reindex."""
        segs = [state.segments[j] for j in group]
        iids = np.sort(np.concatenate([s.iids for s in segs]))
        dead_mask = np.isin(iids, state.tombstone_iids)
        live = iids[~dead_mask]
        merged = [self.build(live, Gathered(segs, live, state.dim))] if len(live) else []
        remaining = [s for j, s in enumerate(state.segments) if j not in group]
        segments = tuple(remaining[: group[0]]) + tuple(merged) + tuple(remaining[group[0] :])
        gone = {s.id for s in segs}
        dead = {k: v for k, v in state.dead.items() if k not in gone}
        tombstones = state.tombstones - frozenset(iids[dead_mask].tolist())
        self.files.discard([s.id for s in segs])
        return with_selector(replace(state, segments=segments, dead=dead, tombstones=tombstones))

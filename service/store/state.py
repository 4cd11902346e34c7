"""Immutable views of the store: segments, the published state, and the tombstone selector.

A writer builds a new :class:`State` from the current one and publishes it with one reference
assignment; a search reads the state once and works on that snapshot. Nothing here mutates a
published state: ``ext`` is shared between states, but only entries at or beyond a state's
``count`` are ever written, and no reader of that state looks there. A segment's full vectors
are a read-only memory map of its own file (``vectors.py``), written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import faiss
import numpy as np

from .vectors import StateVectors


@dataclass(frozen=True)
class Segment:
    id: int
    iids: np.ndarray  # (rows,) int64, sorted
    indexes: dict[int, faiss.Index]  # dim -> IndexIDMap2 over iids
    inner: dict[int, faiss.Index]  # dim -> the wrapped index (its type picks the search parameters)
    kind: str  # factory string used
    budgets: dict[int, faiss.Index] = field(default_factory=dict)  # bytes -> IndexIDMap2 over the head's codec (raw vectors in)
    vectors: np.ndarray | None = None  # (rows, input_dim) float32, memory-mapped: the full vectors of iids, in order

    @property
    def rows(self) -> int:
        return len(self.iids)


@dataclass(frozen=True)
class State:
    """One published, immutable view: what a search sees."""

    segments: tuple[Segment, ...] = ()
    tombstones: frozenset[int] = frozenset()
    dead: dict[int, int] = field(default_factory=dict)  # segment id -> tombstoned rows in it
    dim: int = 0  # input (full-vector) dimension
    count: int = 0  # next iid
    live: int = 0  # documents
    ext: list = field(default_factory=list)  # iid -> external id (append-only; entries < count valid)
    selector: object = None  # faiss IDSelectorNot over the tombstones (None when there are none)
    tombstone_iids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # the tombstones as an array
    _keep: object = None  # keeps the IDSelectorBatch the selector points to alive

    @property
    def vectors(self) -> StateVectors:
        """The full vectors by iid (read from the segments' memory maps on demand)."""
        return StateVectors(self.segments, self.dim)


def empty_state(input_dim: int) -> State:
    return State(dim=input_dim)


def with_selector(state: State) -> State:
    """``state`` with a selector that excludes its tombstones (None when there are none) and the
    tombstones as one array (what budget searches filter by), both built once per state."""
    if not state.tombstones:
        return replace(state, selector=None, _keep=None, tombstone_iids=np.zeros(0, np.int64))
    iids = np.fromiter(state.tombstones, np.int64, len(state.tombstones))
    batch = faiss.IDSelectorBatch(iids)
    return replace(state, selector=faiss.IDSelectorNot(batch), _keep=batch, tombstone_iids=iids)


def tombstoned(state: State, iids: list[int]) -> State:
    """A new state in which ``iids`` are dead (counted per segment, hidden from searches)."""
    if not iids:
        return state
    dead = dict(state.dead)
    for seg in state.segments:
        pos = np.searchsorted(seg.iids, iids)
        hit = int(sum(1 for p, i in zip(pos.tolist(), iids) if p < seg.rows and seg.iids[p] == i))
        if hit:
            dead[seg.id] = dead.get(seg.id, 0) + hit
    return with_selector(replace(state, dead=dead, tombstones=state.tombstones | frozenset(iids)))


def search_params(inner: faiss.Index, selector) -> faiss.SearchParameters | None:
    """Search parameters of the wrapped index's own type (FAISS insists), carrying the selector."""
    if selector is None:
        return None
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()
        params.efSearch = inner.hnsw.efSearch
    elif isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = inner.nprobe
    else:
        params = faiss.SearchParameters()
    params.sel = selector
    return params


def search_iids(state: State, z: np.ndarray, dim: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(scores, iids)`` per row of ``z`` over every segment of ``state``, best first
    (-1 iids where the store holds fewer)."""
    return _merged([seg.indexes[dim].search(z, min(k, seg.rows), params=search_params(seg.inner[dim], state.selector))
                    for seg in state.segments], len(z), k)


def search_budget(state: State, x: np.ndarray, budget: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """As ``search_iids`` over the ``budget`` codec's indexes, which take raw full-dim ``x``. FAISS'
    PQ search takes no id selector, so each segment returns ``k`` plus its dead rows and the
    tombstoned ones are dropped here."""
    dead = state.tombstone_iids  # built once per published state, not per search
    parts = []
    for seg in state.segments:
        d, i = seg.budgets[budget].search(x, min(k + state.dead.get(seg.id, 0), seg.rows))
        if len(dead):
            gone = np.isin(i, dead)
            d, i = np.where(gone, -np.inf, d).astype(np.float32), np.where(gone, -1, i)
        parts.append((d, i))
    return _merged(parts, len(x), k)


def _merged(parts: list[tuple[np.ndarray, np.ndarray]], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of every segment's ``(scores, iids)``, holes last."""
    scores, iids = [p[0] for p in parts], [p[1] for p in parts]
    if not scores:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    d = np.hstack(scores)
    i = np.hstack(iids)
    if len(scores) > 1 or (i < 0).any():
        order = np.argsort(-d, axis=1, kind="stable")[:, :k]
        d = np.take_along_axis(d, order, axis=1)
        i = np.take_along_axis(i, order, axis=1)
    return d[:, :k], i[:, :k]


def hits(state: State, scores: np.ndarray, iids: np.ndarray) -> list[list[tuple[str, float]]]:
    """``(external id, score)`` per query, dropping the -1 holes."""
    ext = state.ext
    return [[(ext[j], s) for j, s in zip(row_i, row_d) if j >= 0] for row_i, row_d in zip(iids.tolist(), scores.tolist())]

"""``Store``: upsert, delete, get and search documents; one FAISS index per served dim.

Layout (log-structured, like an LSM tree):

* Every document gets an internal id (``iid``) that is never reused. An upsert of an existing
  id tombstones the old iid and appends a new one.
* A **segment** (``segments.py``) is an immutable set of iids with one FAISS index per served
  dim and its full vectors in one memory-mapped file (``vectors.py``: RAM holds the indexes
  only). Each write adds one small segment; similar-sized segments are merged, mostly-dead ones
  rewritten (which frees the dead rows' vectors and index entries).
* A **state** (``state.py``) is an immutable tuple of segments plus the tombstone set. Writers
  build a new state and hand it to ``_publish``, the one place that replaces ``self._state``
  (one reference assignment); a search reads ``self._state`` once and works on that snapshot.
  So a search sees a write either wholly or not at all, in every dim at once (no torn reads),
  and no lock is held while the head's matmul or the FAISS scan runs. Writers are serialised by
  ``_write_lock``, which readers never take; old segments stay alive for as long as a reader
  still holds the state that names them.

Durability (``persistence.py``, ``service.wal``): a write is appended to the write-ahead log and
fsynced before it is applied and acknowledged; snapshots bound the replay at open.

A store built with one head refuses another (or changed index settings) unless opened with
``reindex=True`` (``reindex()`` below, ``smec-compress reindex``), which rebuilds every index from
the stored full vectors and compacts the iids.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from smec_compress.errors import SmecError
from smec_compress.rescore import rescore as rerank
from smec_compress.export.budget_index import budget_index
from smec_compress.export.index import IndexStats, code_size, index_memory
from smec_compress.validation import check_matrix, check_served_dim

from ..wal import DELETE, UPSERT, Record, WriteAheadLog
from .ids import check_ids
from .persistence import DataDir
from .segments import IndexConfig, SegmentBuilder, check_factory, merge_group
from .state import State, empty_state, hits, search_budget, search_iids, tombstoned
from .vectors import Gathered

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger("smec.service")

ID_BYTES = 16  # per vector: IndexIDMap2 keeps each 8-byte id twice (array and reverse map)
REBUILD_ROWS = 262_144


def servable_budgets(head, budgets: tuple[int, ...] | None) -> tuple[int, ...]:
    """The byte budgets to index: ``budgets`` (each one the head has a FAISS-indexable codec for,
    else an error naming those), or all of those when None."""
    indexable = tuple(b for b in head.budgets_ if hasattr(head.codecs_[b].codec, "index_"))
    if budgets is None:
        return indexable
    for b in budgets:
        if b not in indexable:
            raise SmecError(f"budget {b} cannot be served: this head's budgets with a FAISS index are "
                            f"{', '.join(map(str, indexable)) or 'none'} (sign-bit codecs have none)")
    return tuple(sorted(set(budgets)))


class Store:
    """Build with ``Store.open`` (or ``Store.from_settings``); thread-safe: any number of
    concurrent searches and gets, writes serialised among themselves."""

    def __init__(self, data_dir: Path, head, dims: tuple[int, ...], config: IndexConfig, *, snapshot_every: int, fsync: bool,
                 search_threads: int | None = None, budgets: tuple[int, ...] = ()):
        self.data_dir = data_dir
        self.head = head
        self.dims = dims
        self.budgets = budgets
        self.config = config
        self.snapshot_every = snapshot_every
        self.fsync = fsync
        self.search_threads = search_threads
        self.input_dim = int(head.input_dim_)
        self._state = empty_state(self.input_dim)
        self._iid_of: dict[str, int] = {}  # external id -> live iid
        self._write_lock = threading.Lock()
        self._publish_lock = threading.Lock()  # a dict update + one assignment; never held across compute
        self._files = DataDir(data_dir, input_dim=self.input_dim, dims=dims, fsync=fsync, budgets=budgets)
        self._segments = SegmentBuilder(dims, config, self._compress_all, self._files, budgets, lambda b: budget_index(head, b))
        self._wal: WriteAheadLog | None = None

    # ------------------------------------------------------------------------- open / close
    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        head,
        *,
        dims: tuple[int, ...] | None = None,
        factories: dict[int, str] | None = None,
        default_factory: str = "Flat",
        index_params: str = "",
        index_min_rows: int = 50_000,
        snapshot_every: int = 1000,
        fsync: bool = True,
        reindex: bool = False,
        search_threads: int | None = None,
        budgets: tuple[int, ...] | None = None,
    ) -> "Store":
        """Open (or create) the store in ``data_dir`` for ``head``, recovering from its log;
        ``budgets`` (bytes per vector) are indexed with the head's codecs too (default: every
        budget whose codec has a FAISS index; sign bits have none)."""
        served = tuple(sorted(set(dims or head.dims_), reverse=True))
        for d in served:
            head.check_dim(d)
        budgets = servable_budgets(head, budgets)
        factories = {d: (factories or {}).get(d, default_factory) for d in served}
        for d, factory in factories.items():
            check_factory(d, factory, index_params)
        config = IndexConfig(factories, index_params, int(index_min_rows))
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        store = cls(data_dir, head, served, config, snapshot_every=snapshot_every, fsync=fsync, search_threads=search_threads,
                    budgets=budgets)
        store._files.lock.acquire()
        try:
            store._load(reindex)
        except BaseException:
            store._files.lock.release()
            raise
        return store

    @classmethod
    def from_settings(cls, settings: "Settings", head) -> "Store":
        """The store the service ``settings`` describe (data dir, dims, index factories and
        params, Flat threshold, snapshots, fsync, reindex, FAISS threads), for ``head``."""
        s = settings
        return cls.open(
            s.data_dir, head, dims=tuple(s.dims) if s.dims else None, factories=s.index_factories,
            default_factory=s.index_factory, index_params=s.index_params, index_min_rows=s.index_min_rows,
            snapshot_every=s.snapshot_every, fsync=s.fsync, reindex=s.reindex, search_threads=s.faiss_threads,
            budgets=tuple(s.budgets) if s.budgets is not None else None,
        )

    def close(self) -> None:
        """Snapshot what the log holds (so the next start replays nothing) and release the directory."""
        with self._write_lock:
            if self._wal is None:
                return
            if self._wal.records:
                self._snapshot_locked()
            self._wal.close()
            self._wal = None
        self._files.lock.release()

    def _load(self, reindex: bool) -> None:
        files = self._files
        manifest = files.read_manifest()
        rebuild = False
        if manifest is not None:
            rebuild = files.needs_rebuild(manifest, head_fingerprint=self.head.fingerprint, config=self.config, reindex=reindex)
            self._segments.next_id = int(manifest["next_segment"])
            state, iid_of = files.load(manifest, with_indexes=not rebuild)
            self._publish(state, iid_of=iid_of)
        files.remove_orphans(manifest)
        if rebuild:
            self._rebuild_all()
        self._wal = files.recover(self._apply_record)
        replayed = self._wal.records
        if rebuild or replayed >= self.snapshot_every:
            with self._write_lock:
                self._snapshot_locked()
        log.info("store %s: %d documents, %d segments, replayed %d log records", self.data_dir, len(self), len(self._state.segments), replayed)

    def _rebuild_all(self) -> None:
        """Reindex: every live document, in iid order, into fresh segments built with this head
        (a block of rows at a time, read from the old segments' files)."""
        state = self._state
        live = np.array(sorted(self._iid_of.values()), dtype=np.int64)
        ids = [state.ext[i] for i in live.tolist()]
        old = Gathered(state.segments, live, self.input_dim)
        self._publish(empty_state(self.input_dim), iid_of={})  # old segment files stay persisted: the snapshot deletes them
        for start in range(0, len(ids), REBUILD_ROWS):
            part = old[start : start + REBUILD_ROWS]
            self._apply_upsert(ids[start : start + REBUILD_ROWS], part, self._compress_all(part))
        log.info("reindexed %d documents with head %s", len(ids), self.head.fingerprint)

    # --------------------------------------------------------------------------- reads
    def __len__(self) -> int:
        return self._state.live

    def check_dim(self, dim: int) -> None:
        check_served_dim(dim, self.dims, served="served")

    def check_budget(self, budget: int) -> None:
        if budget not in self.budgets:
            served = ", ".join(map(str, self.budgets)) or "none (fit the head with --budgets)"
            raise SmecError(f"budget {budget} is not served; served byte budgets: {served}")

    def check_vectors(self, vectors, what: str = "vectors") -> np.ndarray:
        """(n, input_dim) finite float32 (one vector is a row), or a SmecError saying what is wrong."""
        return check_matrix(what, vectors, input_dim=self.input_dim, allow_row=True)

    def compress(self, vectors, dim: int) -> np.ndarray:
        self.check_dim(dim)
        return self._transform(self.check_vectors(vectors), dim, "vectors")

    def _transform(self, vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
        """The head's output, refusing rows whose huge (finite) inputs overflow to inf/NaN."""
        with np.errstate(over="ignore", invalid="ignore"):
            z = self.head.transform(vectors, dim)
            bad = ~np.isfinite(z).all(axis=1)
        if bad.any():
            raise SmecError(
                f"{what}: {int(bad.sum())} row(s) overflow float32 through the head (first row {int(np.argmax(bad))}); "
                "send embeddings of ordinary magnitude (e.g. L2-normalised)"
            )
        return z

    def search(self, queries, dim: int | None, k: int, *, rescore: int = 0, budget: int | None = None
               ) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(id, inner-product score)`` per query, best first (fewer if fewer documents),
        from the ``dim``-d index, or with ``budget`` from that byte budget's codec index (raw
        queries in: the head's map is inside it). With ``rescore`` R >= k: the top R, rescored by
        exact inner product of the raw queries with the stored full vectors
        (``smec_compress.rescore``), full-dim scores.

        The head's matmul, every FAISS scan and the rescoring run with no lock held, on one
        published state.
        """
        if (dim is None) == (budget is None):
            raise SmecError("search one index: a dim or a byte budget")
        if budget is not None:
            self.check_budget(budget)
        else:
            self.check_dim(dim)
        if k < 1:
            raise SmecError(f"k={k} must be >= 1")
        if rescore and rescore < k:
            raise SmecError(f"rescore={rescore} must be 0 (off) or at least k={k}")
        queries = self.check_vectors(queries, "queries")
        if self.search_threads is not None:  # OpenMP's thread count is per calling thread
            faiss.omp_set_num_threads(self.search_threads)
        state = self._state
        if budget is not None:
            self._check_norms(queries)
            scores, iids = search_budget(state, queries, budget, max(k, rescore))
        else:
            scores, iids = search_iids(state, self._transform(queries, dim, "queries"), dim, max(k, rescore))
        if rescore:
            scores, iids = rerank(iids, queries, state.vectors, k)
        return hits(state, scores, iids)

    def _check_norms(self, queries: np.ndarray) -> None:
        """Refuse queries whose squared norm overflows float32: a budget index normalises them first."""
        with np.errstate(over="ignore", invalid="ignore"):
            bad = ~np.isfinite(np.einsum("ij,ij->i", queries, queries))
        if bad.any():
            raise SmecError(f"queries: {int(bad.sum())} row(s) overflow float32 (first row {int(np.argmax(bad))}); "
                            "send embeddings of ordinary magnitude (e.g. L2-normalised)")

    def get(self, doc_id: str) -> np.ndarray | None:
        """The stored full-dimension vector of a document, or None."""
        with self._publish_lock:
            iid = self._iid_of.get(doc_id)
            state = self._state
        if iid is None:
            return None
        return state.vectors[np.array([iid])][0]

    def stats(self) -> list[IndexStats]:
        """Per served dim: documents, bytes per vector, factory, segments, estimated memory."""
        state = self._state
        big = [s for s in state.segments if s.kind != "Flat"]
        return [
            IndexStats(
                dim=d, count=state.live, bytes_per_vector=code_size(big[0].inner[d], d) if big else 4 * d,
                index_type=self.config.factories[d], segments=len(state.segments),
                memory_bytes=sum(index_memory(seg.inner[d], d, id_bytes=ID_BYTES) for seg in state.segments),
            )
            for d in self.dims
        ]

    def budget_stats(self) -> list[IndexStats]:
        """Per served byte budget: its codec (``index_type``), the dim it codes, bytes per vector
        and memory (codes plus ids)."""
        state = self._state
        return [
            IndexStats(
                dim=self.head.codecs_[b].candidate.dim, count=state.live, bytes_per_vector=b_size,
                index_type=f"budget {b} B: {self.head.codecs_[b].candidate.key}", segments=len(state.segments),
                memory_bytes=state.live * (b_size + ID_BYTES),
            )
            for b in self.budgets for b_size in [int(self.head.codecs_[b].codec.code_size_)]
        ]

    def storage(self) -> dict[str, int]:
        """Where the bytes are: ``ram_bytes`` (every dim's and budget's index, estimated),
        ``full_vectors_disk_bytes`` (the memory-mapped full vectors: page cache, not RAM the
        process holds) and ``disk_bytes`` (the whole data directory)."""
        disk = self._files.disk_bytes()
        ram = sum(s.memory_bytes for s in self.stats()) + sum(s.memory_bytes for s in self.budget_stats())
        return {"ram_bytes": int(ram), "full_vectors_disk_bytes": disk["full_vectors"], "disk_bytes": disk["total"]}

    # --------------------------------------------------------------------------- writes
    def upsert(self, ids: list[str], vectors) -> tuple[int, int]:
        """Insert or replace documents; durable when it returns. Returns (created, updated)."""
        vectors = self.check_vectors(vectors)
        check_ids(ids, len(vectors))
        compressed = {d: self._transform(vectors, d, "vectors") for d in self.dims}  # before taking the writer lock
        with self._write_lock:
            self._writable()
            self._wal.append(UPSERT, ids, vectors)
            updated = self._apply_upsert(ids, vectors, compressed)
            self._maybe_snapshot()
        return len(ids) - updated, updated

    def delete(self, ids: list[str]) -> list[str]:
        """Delete the documents that exist; returns those ids (durable when it returns)."""
        with self._write_lock:
            self._writable()
            found = [e for e in dict.fromkeys(ids) if e in self._iid_of]
            if found:
                self._wal.append(DELETE, found)
                self._apply_delete(found)
                self._maybe_snapshot()
        return found

    def snapshot(self) -> None:
        with self._write_lock:
            self._writable()
            self._snapshot_locked()

    def _writable(self) -> None:
        if self._wal is None:
            raise SmecError("the store is closed")

    def _compress_all(self, vectors: np.ndarray) -> dict[int, np.ndarray]:
        return {d: self.head.transform(vectors, d) for d in self.dims}

    def _apply_record(self, record: Record) -> None:
        if record.op == UPSERT:
            self._apply_upsert(record.ids, record.vectors, self._compress_all(record.vectors))
        else:
            self._apply_delete(record.ids)

    def _apply_upsert(self, ids: list[str], vectors: np.ndarray, compressed: dict[int, np.ndarray]) -> int:
        state = self._state
        n, start = len(ids), state.count
        del state.ext[start:]  # entries left by an apply that failed part way (none normally)
        state.ext.extend(ids)
        iids = np.arange(start, start + n, dtype=np.int64)
        old = [self._iid_of[e] for e in ids if e in self._iid_of]
        segment = self._segments.build(iids, vectors, compressed)
        new = replace(state, segments=state.segments + (segment,), count=start + n, live=state.live + n - len(old))
        self._publish(tombstoned(new, old), set_ids=dict(zip(ids, iids.tolist())))
        self._merge()
        return len(old)

    def _apply_delete(self, ids: list[str]) -> None:
        iids = [self._iid_of[e] for e in ids]
        state = self._state
        self._publish(tombstoned(replace(state, live=state.live - len(iids)), iids), drop_ids=ids)
        self._merge()

    def _merge(self) -> None:
        """Keep O(log n) segments (``segments.merge_group`` says which to rewrite)."""
        while (group := merge_group(self._state)) is not None:
            self._publish(self._segments.rewrite(self._state, group))

    def _publish(self, state: State, *, set_ids: dict[str, int] | None = None, drop_ids: list[str] | None = None,
                 iid_of: dict[str, int] | None = None) -> None:
        """Make ``state`` the one searches see, with the id map changed to match (replaced by
        ``iid_of``, or updated by ``set_ids`` / ``drop_ids``): every state change goes through here."""
        with self._publish_lock:
            self._state = state
            if iid_of is not None:
                self._iid_of = iid_of
            if set_ids:
                self._iid_of.update(set_ids)
            for e in drop_ids or ():
                self._iid_of.pop(e, None)

    # ------------------------------------------------------------------------ snapshots
    def _maybe_snapshot(self) -> None:
        if self._wal.records >= self.snapshot_every or self._wal.bytes >= 1 << 30:
            self._snapshot_locked()

    def _snapshot_locked(self) -> None:
        self._wal = self._files.snapshot(
            self._state, head_fingerprint=self.head.fingerprint, config=self.config, next_segment=self._segments.next_id, wal=self._wal
        )


def reindex(data_dir: str | Path, head, **options) -> Store:
    """Rebuild every index in ``data_dir`` from the stored full vectors with ``head`` (and the
    given index options), snapshot, and return the open store (close it when done)."""
    return Store.open(data_dir, head, reindex=True, **options)

"""Documents and per-dimension FAISS indexes, durable across crashes; knows nothing of HTTP.

Layout (log-structured, like an LSM tree):

* Every document gets an internal id (``iid``, a row of the in-memory full-vector matrix) that
  is never reused. An upsert of an existing id tombstones the old iid and appends a new one.
* A **segment** is an immutable set of iids with one FAISS index per served dim (an
  ``IndexIDMap2`` over the iids, so one tombstone selector works for every segment). Each write
  adds one small segment; segments of similar size are merged (a binary-counter policy, so each
  row is rewritten O(log n) times) and a segment whose rows are mostly dead is rewritten.
  Segments below ``index_min_rows`` are exact ``Flat`` indexes; larger ones use the configured
  FAISS factory string (IVF/HNSW/PQ need enough rows to train on).
* A **state** is an immutable tuple of segments plus the tombstone set. Writers build a new state
  and publish it with one reference assignment; a search reads ``self._state`` once and works on
  that snapshot. So a search sees a write either wholly or not at all, in every dim at once (no
  torn reads), and no lock is held while the head's matmul or the FAISS scan runs. Writers are
  serialised by ``_write_lock``, which readers never take; old segments stay alive for as long as
  a reader still holds the state that names them.

Durability: a write is appended to the write-ahead log (``wal.py``) and fsynced before it is
applied and acknowledged. Snapshots write the segments not yet on disk (full vectors as Parquet
via ``smec_compress.io``, each dim's FAISS index via ``faiss.write_index``; both written to a
temporary name, fsynced, renamed), then a fresh empty log, then an atomically replaced
``manifest.json`` that names them; only then are the old log and unreferenced files deleted. On
open: load the manifest's segments and replay its log. A crash at any point leaves either the old
manifest with its complete log or the new one; orphans are removed on the next open.

A store built with one head refuses another (or changed index settings) unless opened with
``reindex=True`` (``reindex()`` below, ``smec-compress reindex``), which rebuilds every index from
the stored full vectors and compacts the iids.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

from smec_compress.errors import SmecError
from smec_compress.io import EmbeddingMeta, EmbeddingWriter, iter_batches

from .wal import DELETE, UPSERT, WriteAheadLog, fsync_path, replay

log = logging.getLogger("smec.service")

MANIFEST = "manifest.json"
LOCK = "LOCK"
FORMAT = 1
MAX_ID_CHARS = 256


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


@dataclass(frozen=True)
class Segment:
    id: int
    iids: np.ndarray  # (rows,) int64, sorted
    indexes: dict[int, faiss.Index]  # dim -> IndexIDMap2 over iids
    inner: dict[int, faiss.Index]  # dim -> the wrapped index (its type picks the search parameters)
    kind: str  # factory string used

    @property
    def rows(self) -> int:
        return len(self.iids)


@dataclass(frozen=True)
class State:
    """One published, immutable view: what a search sees."""

    segments: tuple[Segment, ...] = ()
    tombstones: frozenset[int] = frozenset()
    dead: dict[int, int] = field(default_factory=dict)  # segment id -> tombstoned rows in it
    full: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # rows < count valid
    count: int = 0  # next iid
    live: int = 0  # documents
    selector: object = None  # faiss IDSelectorNot over the tombstones (None when there are none)
    _keep: object = None  # keeps the IDSelectorBatch the selector points to alive


@dataclass(frozen=True)
class IndexStats:
    dim: int
    count: int
    bytes_per_vector: int
    index_type: str
    segments: int
    memory_bytes: int


class Store:
    """Upsert, delete, get and search documents; one FAISS index per served dim.

    Build with ``Store.open``; thread-safe: any number of concurrent searches and gets, writes
    serialised among themselves.
    """

    def __init__(self, data_dir: Path, head, dims: tuple[int, ...], config: IndexConfig, *, snapshot_every: int, fsync: bool):
        self.data_dir = data_dir
        self.head = head
        self.dims = dims
        self.config = config
        self.snapshot_every = snapshot_every
        self.fsync = fsync
        self.input_dim = int(head.input_dim_)
        self._state = State(full=np.zeros((0, self.input_dim), np.float32))
        self._ext: list[str | None] = []  # iid -> external id
        self._iid_of: dict[str, int] = {}  # external id -> live iid
        self._write_lock = threading.Lock()
        self._publish_lock = threading.Lock()  # a dict update + one assignment; never held across compute
        self._next_segment = 0
        self._persisted: set[int] = set()
        self._generation = 0
        self._wal: WriteAheadLog | None = None
        self._lock_fd = -1
        self.search_threads: int | None = None

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
    ) -> "Store":
        """Open (or create) the store in ``data_dir`` for ``head``, recovering from its log."""
        served = tuple(sorted(set(dims or head.dims_), reverse=True))
        unknown = sorted(set(served) - set(head.dims_))
        if unknown:
            raise SmecError(f"dims {unknown} are not trained dims of the head; trained dims: {list(head.dims_)}")
        factories = {d: (factories or {}).get(d, default_factory) for d in served}
        for d, factory in factories.items():
            _check_factory(d, factory, index_params)
        config = IndexConfig(factories, index_params, int(index_min_rows))
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        store = cls(data_dir, head, served, config, snapshot_every=snapshot_every, fsync=fsync)
        store.search_threads = search_threads
        store._lock_dir()
        try:
            store._load(reindex)
        except BaseException:
            store._unlock_dir()
            raise
        return store

    def close(self) -> None:
        """Snapshot what the log holds (so the next start replays nothing) and release the directory."""
        with self._write_lock:
            if self._wal is None:
                return
            if self._wal.records:
                self._snapshot_locked()
            self._wal.close()
            self._wal = None
        self._unlock_dir()

    def _lock_dir(self) -> None:
        """One process per data dir: two writers appending to one log would corrupt it."""
        fd = os.open(self.data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SmecError(f"{self.data_dir}: data directory is in use by another process (one server per data dir)") from None
        self._lock_fd = fd

    def _unlock_dir(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _load(self, reindex: bool) -> None:
        manifest_path = self.data_dir / MANIFEST
        manifest = None
        if manifest_path.exists():
            try:
                manifest = json.loads(manifest_path.read_text())
            except ValueError as exc:
                raise SmecError(f"{manifest_path}: corrupt manifest ({exc})") from None
        rebuild = False
        if manifest is not None:
            if manifest.get("format") != FORMAT:
                raise SmecError(f"{manifest_path}: unknown store format {manifest.get('format')!r} (expected {FORMAT})")
            if manifest["input_dim"] != self.input_dim:
                raise SmecError(
                    f"{self.data_dir} holds {manifest['input_dim']}-d vectors but the head takes {self.input_dim}-d input; "
                    "use a head fitted on the same embedder, or another --data-dir"
                )
            rebuild = self._differs(manifest)
            if rebuild and not reindex:
                raise SmecError(
                    f"{self.data_dir} was indexed with head {manifest['head_fingerprint']} at dims {manifest['dims']} "
                    f"({manifest['index']['factories']}); this head is {self.head.fingerprint} at dims {list(self.dims)} "
                    f"({self.config.to_dict()['factories']}). Rebuild the indexes with "
                    f"`smec-compress reindex --head HEAD --data-dir {self.data_dir}` (or set SMEC_REINDEX=true)"
                )
            self._generation = int(manifest["generation"])
            self._next_segment = int(manifest["next_segment"])
            self._load_segments(manifest, with_indexes=not rebuild)
        self._remove_orphans(manifest)
        if rebuild:
            self._rebuild_all()
        replayed = 0
        for record in replay(self._wal_path(self._generation)):  # cuts a torn tail off the file
            if record.op == UPSERT:
                self._apply_upsert(record.ids, record.vectors, self._compress_all(record.vectors))
            else:
                self._apply_delete(record.ids)
            replayed += 1
        self._wal = WriteAheadLog(self._wal_path(self._generation), fsync=self.fsync)
        self._wal.records = replayed
        if rebuild or replayed >= self.snapshot_every:
            with self._write_lock:
                self._snapshot_locked()
        log.info("store %s: %d documents, %d segments, replayed %d log records", self.data_dir, len(self), len(self._state.segments), replayed)

    def _differs(self, manifest: dict) -> bool:
        return (
            manifest["head_fingerprint"] != self.head.fingerprint
            or manifest["dims"] != list(self.dims)
            or manifest["index"] != self.config.to_dict()
        )

    def _load_segments(self, manifest: dict, *, with_indexes: bool) -> None:
        count = int(manifest["next_iid"])
        full = np.zeros((count, self.input_dim), np.float32)
        ext: list[str | None] = [None] * count
        segments = []
        for seg_id in manifest["segments"]:
            iids_parts = []
            for batch in iter_batches(self._segment_path(seg_id), check_finite=False):
                iids = batch.rest.column("iid").to_numpy()
                full[iids] = batch.vectors
                for i, e in zip(iids.tolist(), batch.ids):
                    ext[i] = e
                iids_parts.append(iids)
            iids = np.sort(np.concatenate(iids_parts)).astype(np.int64)
            if with_indexes:
                indexes, inner = {}, {}
                for d in self.dims:
                    path = self._index_path(seg_id, d)
                    if not path.exists():
                        raise SmecError(f"{path}: index file named by the manifest is missing; run `smec-compress reindex`")
                    idx = faiss.read_index(str(path))
                    indexes[d] = idx
                    inner[d] = faiss.downcast_index(faiss.downcast_index(idx).index)
                kind = manifest["segment_kinds"][str(seg_id)]
                segments.append(Segment(seg_id, iids, indexes, inner, kind))
            else:
                segments.append(Segment(seg_id, iids, {}, {}, "unbuilt"))
            self._persisted.add(seg_id)
        tombstones = frozenset(int(t) for t in manifest["tombstones"])
        dead = {s.id: int(np.isin(s.iids, list(tombstones)).sum()) for s in segments} if tombstones else {}
        for s in segments:
            for i in s.iids.tolist():
                if i not in tombstones:
                    self._iid_of[ext[i]] = i
        self._ext = ext
        live = len(self._iid_of)
        self._state = _with_selector(State(tuple(segments), tombstones, dead, full, count, live))

    def _rebuild_all(self) -> None:
        """Reindex: every live document, in iid order, into one fresh segment built with this head."""
        state = self._state
        live = np.array(sorted(self._iid_of.values()), dtype=np.int64)
        ids = [self._ext[i] for i in live.tolist()]
        vectors = state.full[live] if len(live) else np.zeros((0, self.input_dim), np.float32)
        self._ext, self._iid_of = [], {}  # old segment files stay in _persisted: the snapshot deletes them
        self._state = State(full=np.zeros((0, self.input_dim), np.float32))
        chunk = 262_144
        for start in range(0, len(ids), chunk):
            part = vectors[start : start + chunk]
            self._apply_upsert(ids[start : start + chunk], part, self._compress_all(part))
        log.info("reindexed %d documents with head %s", len(ids), self.head.fingerprint)

    def _remove_orphans(self, manifest: dict | None) -> None:
        """Files of a snapshot that crashed before its manifest landed, and stray temporaries."""
        keep = {MANIFEST, LOCK}
        if manifest is not None:
            keep.add(self._wal_path(int(manifest["generation"])).name)
            for seg_id in manifest["segments"]:
                keep.add(self._segment_path(seg_id).name)
                keep.update(self._index_path(seg_id, d).name for d in manifest["dims"])
        else:
            keep.add(self._wal_path(0).name)
        for path in self.data_dir.iterdir():
            if path.is_file() and path.name not in keep and (path.name.startswith(("seg-", "wal-", ".")) and path.name != ".gitkeep"):
                path.unlink()

    # --------------------------------------------------------------------------- reads
    def __len__(self) -> int:
        return self._state.live

    def check_dim(self, dim: int) -> None:
        if dim not in self.dims:
            raise SmecError(f"dim={dim} is not served; served dims: {list(self.dims)}")

    def check_vectors(self, vectors, what: str = "vectors") -> np.ndarray:
        """(n, input_dim) finite float32, or a SmecError saying what is wrong and what is expected."""
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                array = np.asarray(vectors, dtype=np.float32)
        except (ValueError, TypeError):
            raise SmecError(f"{what} must be a rectangular array of numbers, each row {self.input_dim} floats (rows differ in length)") from None
        if array.ndim == 1 and array.size == self.input_dim:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.input_dim:
            got = array.shape[1] if array.ndim == 2 else f"shape {array.shape}"
            raise SmecError(f"{what} have {got} dims; this head takes {self.input_dim}-d vectors")
        if len(array) == 0:
            raise SmecError(f"{what} is empty; send at least one vector")
        with np.errstate(over="ignore", invalid="ignore"):
            bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise SmecError(
                f"{what}: {int(bad.sum())} row(s) contain NaN, inf or values beyond float32 range "
                f"(first row {int(np.argmax(bad))}); every value must be a finite float32"
            )
        return np.ascontiguousarray(array)

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

    def search(self, queries, dim: int, k: int) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(id, inner-product score)`` per query, best first (fewer if fewer documents).

        The head's matmul and every FAISS scan run with no lock held, on one published state.
        """
        self.check_dim(dim)
        if k < 1:
            raise SmecError(f"k={k} must be >= 1")
        z = self._transform(self.check_vectors(queries, "queries"), dim, "queries")  # (n, dim)
        if self.search_threads is not None:  # OpenMP's thread count is per calling thread
            faiss.omp_set_num_threads(self.search_threads)
        state = self._state
        scores, iids = [], []
        for seg in state.segments:
            params = _search_params(seg.inner[dim], state.selector)
            d, i = seg.indexes[dim].search(z, min(k, seg.rows), params=params)
            scores.append(d)
            iids.append(i)
        if not scores:
            return [[] for _ in range(len(z))]
        d = np.hstack(scores)
        i = np.hstack(iids)
        if len(scores) > 1:
            order = np.argsort(-d, axis=1, kind="stable")[:, :k]
            d = np.take_along_axis(d, order, axis=1)
            i = np.take_along_axis(i, order, axis=1)
        ext = self._ext
        return [[(ext[j], s) for j, s in zip(row_i, row_d) if j >= 0] for row_i, row_d in zip(i.tolist(), d.tolist())]

    def get(self, doc_id: str) -> np.ndarray | None:
        """The stored full-dimension vector of a document, or None."""
        with self._publish_lock:
            iid = self._iid_of.get(doc_id)
            state = self._state
        if iid is None:
            return None
        return state.full[iid].copy()

    def stats(self) -> list[IndexStats]:
        state = self._state
        out = []
        for d in self.dims:
            memory = sum(_index_memory(seg.inner[d], d) for seg in state.segments)
            big = [s for s in state.segments if s.kind != "Flat"]
            bpv = _code_size(big[0].inner[d], d) if big else 4 * d
            out.append(IndexStats(d, state.live, bpv, self.config.factories[d], len(state.segments), memory))
        return out

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

    def _apply_upsert(self, ids: list[str], vectors: np.ndarray, compressed: dict[int, np.ndarray]) -> int:
        state = self._state
        n, start = len(ids), state.count
        full = state.full
        if start + n > len(full):  # grow by doubling; readers of older states keep the old array
            grown = np.empty((max(start + n, 2 * len(full), 1024), self.input_dim), np.float32)
            grown[:start] = full[:start]
            full = grown
        full[start : start + n] = vectors  # rows no published state can see yet
        iids = np.arange(start, start + n, dtype=np.int64)
        self._ext.extend(ids)
        old = [self._iid_of[e] for e in ids if e in self._iid_of]
        segment = self._build_segment(iids, compressed)
        new = State(state.segments + (segment,), state.tombstones, dict(state.dead), full, start + n, state.live + n - len(old))
        new = self._tombstone(new, old)
        self._publish(new, set_ids=dict(zip(ids, iids.tolist())))
        self._merge()
        return len(old)

    def _apply_delete(self, ids: list[str]) -> None:
        iids = [self._iid_of[e] for e in ids]
        state = self._state
        new = self._tombstone(replace(state, live=state.live - len(iids), dead=dict(state.dead)), iids)
        self._publish(new, drop_ids=ids)
        self._merge()

    def _tombstone(self, state: State, iids: list[int]) -> State:
        if not iids:
            return state
        for seg in state.segments:
            pos = np.searchsorted(seg.iids, iids)
            hit = int(sum(1 for p, i in zip(pos.tolist(), iids) if p < seg.rows and seg.iids[p] == i))
            if hit:
                state.dead[seg.id] = state.dead.get(seg.id, 0) + hit
        return _with_selector(replace(state, tombstones=state.tombstones | frozenset(iids)))

    def _publish(self, state: State, *, set_ids: dict[str, int] | None = None, drop_ids: list[str] | None = None) -> None:
        with self._publish_lock:
            self._state = state
            if set_ids:
                self._iid_of.update(set_ids)
            for e in drop_ids or ():
                self._iid_of.pop(e, None)

    def _merge(self) -> None:
        """Keep O(log n) segments: merge the newest two while the older is at most twice the
        newer's live size; rewrite a segment that is more than half tombstones."""
        while True:
            state = self._state
            segs = state.segments
            live = [s.rows - state.dead.get(s.id, 0) for s in segs]
            if len(segs) >= 2 and live[-2] <= 2 * live[-1]:
                group = [len(segs) - 2, len(segs) - 1]
            else:
                group = next(([j] for j, s in enumerate(segs) if state.dead.get(s.id, 0) * 2 > s.rows), None)
                if group is None:
                    return
            self._rewrite(state, group)

    def _rewrite(self, state: State, group: list[int]) -> None:
        segs = [state.segments[j] for j in group]
        iids = np.sort(np.concatenate([s.iids for s in segs]))
        dead_mask = np.isin(iids, np.fromiter(state.tombstones, np.int64, len(state.tombstones)))
        live = iids[~dead_mask]
        merged = []
        if len(live):
            rows = state.full[live]
            merged = [self._build_segment(live, self._compress_all(rows))]
        remaining = [s for j, s in enumerate(state.segments) if j not in group]
        segments = tuple(remaining[: group[0]]) + tuple(merged) + tuple(remaining[group[0] :])
        dead = {k: v for k, v in state.dead.items() if k not in {s.id for s in segs}}
        tombstones = state.tombstones - frozenset(iids[dead_mask].tolist())
        self._publish(_with_selector(replace(state, segments=segments, dead=dead, tombstones=tombstones)))

    def _build_segment(self, iids: np.ndarray, compressed: dict[int, np.ndarray]) -> Segment:
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
        seg = Segment(self._next_segment, iids, indexes, inner, "Flat" if not big else ",".join(sorted(kinds)))
        self._next_segment += 1
        return seg

    # ------------------------------------------------------------------------ snapshots
    def _maybe_snapshot(self) -> None:
        if self._wal.records >= self.snapshot_every or self._wal.bytes >= 1 << 30:
            self._snapshot_locked()

    def _snapshot_locked(self) -> None:
        state = self._state
        generation = self._generation + 1
        for seg in state.segments:
            if seg.id not in self._persisted:
                self._write_segment(seg, state)
        new_wal = WriteAheadLog(self._wal_path(generation), fsync=self.fsync)
        manifest = {
            "format": FORMAT,
            "generation": generation,
            "head_fingerprint": self.head.fingerprint,
            "input_dim": self.input_dim,
            "dims": list(self.dims),
            "index": self.config.to_dict(),
            "segments": [s.id for s in state.segments],
            "segment_kinds": {str(s.id): s.kind for s in state.segments},
            "tombstones": sorted(state.tombstones),
            "next_iid": state.count,
            "next_segment": self._next_segment,
        }
        tmp = self.data_dir / f".{MANIFEST}.tmp"
        with open(tmp, "w") as fh:
            json.dump(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.data_dir / MANIFEST)
        fsync_path(self.data_dir)
        if self._wal is not None:
            self._wal.close()
        old_generation, self._generation, self._wal = self._generation, generation, new_wal
        self._wal_path(old_generation).unlink(missing_ok=True)
        live_ids = {s.id for s in state.segments}
        for seg_id in sorted(self._persisted - live_ids):
            self._segment_path(seg_id).unlink(missing_ok=True)
            for d in self.dims:
                self._index_path(seg_id, d).unlink(missing_ok=True)
        self._persisted &= live_ids

    def _write_segment(self, seg: Segment, state: State) -> None:
        rows = seg.iids
        path = self._segment_path(seg.id)
        meta = EmbeddingMeta(kind="corpus", head_fingerprint=self.head.fingerprint)
        with EmbeddingWriter(path, self.input_dim, meta, rest_schema=pa.schema([("iid", pa.int64())])) as writer:
            for start in range(0, len(rows), 65_536):
                part = rows[start : start + 65_536]
                writer.write([self._ext[i] for i in part.tolist()], state.full[part], pa.table({"iid": pa.array(part, pa.int64())}))
        fsync_path(path)
        for d in self.dims:
            target = self._index_path(seg.id, d)
            tmp = target.with_name(f".{target.name}.tmp")
            faiss.write_index(seg.indexes[d], str(tmp))
            fsync_path(tmp)
            os.replace(tmp, target)
        fsync_path(self.data_dir)
        self._persisted.add(seg.id)

    def _wal_path(self, generation: int) -> Path:
        return self.data_dir / f"wal-{generation:08d}.log"

    def _segment_path(self, seg_id: int) -> Path:
        return self.data_dir / f"seg-{seg_id:08d}.parquet"

    def _index_path(self, seg_id: int, dim: int) -> Path:
        return self.data_dir / f"seg-{seg_id:08d}.d{dim}.faiss"


def reindex(data_dir: str | Path, head, **options) -> Store:
    """Rebuild every index in ``data_dir`` from the stored full vectors with ``head`` (and the
    given index options), snapshot, and return the open store (close it when done)."""
    return Store.open(data_dir, head, reindex=True, **options)


def check_ids(ids: list[str], rows: int) -> None:
    if len(ids) != rows:
        raise SmecError(f"got {len(ids)} ids for {rows} vectors; send one id per vector")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(e for e in ids if e in seen or seen.add(e))
        raise SmecError(f"duplicate id {dup!r} in one request; each id may appear once per write")
    for e in ids:
        check_id(e)


def check_id(doc_id: str) -> None:
    if not isinstance(doc_id, str) or not 1 <= len(doc_id) <= MAX_ID_CHARS:
        raise SmecError(f"id {doc_id!r:.60} must be a string of 1..{MAX_ID_CHARS} characters")
    if "/" in doc_id or any(ord(c) < 32 or ord(c) == 127 for c in doc_id):
        raise SmecError(f"id {doc_id!r:.60} may not contain '/' or control characters")


def _check_factory(dim: int, factory: str, params: str) -> None:
    if factory.replace(" ", "").upper().startswith("IDMAP"):
        raise SmecError(f"index factory {factory!r}: leave out IDMap (the store adds its own id mapping)")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        if params:
            faiss.ParameterSpace().set_index_parameters(index, params)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:200]
        raise SmecError(f"index factory {factory!r} / params {params!r} is not valid for dim {dim}: {first}") from None


def _with_selector(state: State) -> State:
    if not state.tombstones:
        return replace(state, selector=None, _keep=None)
    batch = faiss.IDSelectorBatch(np.fromiter(state.tombstones, np.int64, len(state.tombstones)))
    return replace(state, selector=faiss.IDSelectorNot(batch), _keep=batch)


def _search_params(inner: faiss.Index, selector) -> faiss.SearchParameters | None:
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


def _code_size(inner: faiss.Index, dim: int) -> int:
    if isinstance(inner, faiss.IndexHNSW):
        return _code_size(faiss.downcast_index(inner.storage), dim)
    return int(getattr(inner, "code_size", 4 * dim))


def _index_memory(inner: faiss.Index, dim: int) -> int:
    """Estimated bytes: codes + 8-byte ids (IDMap2 keeps ids twice) + graph links or centroids."""
    n = inner.ntotal
    total = n * (_code_size(inner, dim) + 16)
    if isinstance(inner, faiss.IndexHNSW):
        total += inner.hnsw.neighbors.size() * 4
    if isinstance(inner, faiss.IndexIVF):
        total += inner.nlist * dim * 4 + n * 8
    return int(total)

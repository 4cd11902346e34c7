"""The data directory: its lock, manifest, snapshots, recovery from the log, and orphan removal.

Files (names and manifest keys are the on-disk format; keep them stable):

* ``LOCK``: ``flock``-ed by the one process that owns the directory.
* ``manifest.json``: format, generation, head fingerprint, input dim, dims, index settings, the
  live segment ids and their kinds, tombstones, next iid and next segment id.
* ``seg-<id>.f32``: a segment's full vectors, raw little-endian float32 in iid order, memory-mapped
  while the store runs (``vectors.py``); ``seg-<id>.parquet``: its external ids and iids (format
  1 kept the vectors here too: such a directory is read, and its ``.f32`` files written, at open);
  ``seg-<id>.d<dim>.faiss``: its index for each served dim, and ``seg-<id>.b<bytes>.faiss``: its
  index for each served byte budget (the head's codec over raw vectors).
* ``wal-<generation>.log``: the write-ahead log since the manifest's snapshot (``service.wal``).

A snapshot writes the segments not yet on disk (each file under a temporary name, fsynced and
renamed into place by ``smec_compress.data.atomic``; the ``.f32`` file, written when the segment
was built, is fsynced), then a fresh empty log, then the manifest
naming them (atomically replaced, fsynced); only then are the old log and unreferenced files
deleted. A crash at any point leaves either the old manifest with its complete log or the new
one; files no manifest names (and our ``.NAME.tmp-PID`` temporaries) are removed on the next open.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from smec_compress.data.atomic import atomic_file, fsync_path, write_text
from smec_compress.data.io import iter_batches
from smec_compress.errors import SmecError

from ..wal import Record, WriteAheadLog, replay
from .segments import IndexConfig
from .state import Segment, State, with_selector
from .vectors import file_bytes, open_vectors, write_vectors

MANIFEST = "manifest.json"
LOCK = "LOCK"
FORMAT = 2
READABLE_FORMATS = (1, 2)  # 1: vectors inside seg-<id>.parquet
ID = "id"  # the external-id column of seg-<id>.parquet


class DirLock:
    """One process per data dir: two writers appending to one log would corrupt it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd = -1

    def acquire(self) -> None:
        fd = os.open(self.data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SmecError(f"{self.data_dir}: data directory is in use by another process (one server per data dir)") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class DataDir:
    """The files of one store; tracks the current generation and which segments are on disk."""

    def __init__(self, path: Path, *, input_dim: int, dims: tuple[int, ...], fsync: bool, budgets: tuple[int, ...] = ()) -> None:
        self.path = path
        self.input_dim = input_dim
        self.dims = dims
        self.budgets = budgets
        self.fsync = fsync
        self.lock = DirLock(path)
        self.generation = 0
        self.persisted: set[int] = set()

    def wal_path(self, generation: int) -> Path:
        return self.path / f"wal-{generation:08d}.log"

    def segment_path(self, seg_id: int) -> Path:
        return self.path / f"seg-{seg_id:08d}.parquet"

    def index_path(self, seg_id: int, dim: int) -> Path:
        return self.path / f"seg-{seg_id:08d}.d{dim}.faiss"

    def budget_path(self, seg_id: int, budget: int) -> Path:
        return self.path / f"seg-{seg_id:08d}.b{budget}.faiss"

    def vectors_path(self, seg_id: int) -> Path:
        return self.path / f"seg-{seg_id:08d}.f32"

    def segment_files(self, seg_id: int, dims, budgets) -> list[Path]:
        """Every file of a segment: ids, full vectors, one index per dim and per byte budget."""
        return ([self.segment_path(seg_id), self.vectors_path(seg_id)] + [self.index_path(seg_id, d) for d in dims]
                + [self.budget_path(seg_id, b) for b in budgets])

    def discard(self, seg_ids) -> None:
        """Unlink the vector files of merged-away segments that no manifest names (a reader still
        holding one keeps its mapping); the snapshot after a merge removes the persisted ones."""
        for seg_id in seg_ids:
            if seg_id not in self.persisted:
                self.vectors_path(seg_id).unlink(missing_ok=True)

    def disk_bytes(self) -> dict[str, int]:
        """Bytes on disk: the full vectors, and everything in the directory."""
        sizes = {}
        for p in self.path.iterdir():
            try:
                sizes[p.name] = p.stat().st_size if p.is_file() else 0
            except FileNotFoundError:  # a merge or snapshot removed it meanwhile
                continue
        return {"full_vectors": sum(v for k, v in sizes.items() if k.endswith(".f32")), "total": sum(sizes.values())}

    # ---------------------------------------------------------------------------- open
    def read_manifest(self) -> dict | None:
        path = self.path / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except ValueError as exc:
            raise SmecError(f"{path}: corrupt manifest ({exc})") from None
        if manifest.get("format") not in READABLE_FORMATS:
            raise SmecError(f"{path}: unknown store format {manifest.get('format')!r} (this version reads "
                            f"{', '.join(map(str, READABLE_FORMATS))})")
        if manifest["input_dim"] != self.input_dim:
            raise SmecError(
                f"{self.path} holds {manifest['input_dim']}-d vectors but the head takes {self.input_dim}-d input; "
                "use a head fitted on the same embedder, or another --data-dir"
            )
        self.generation = int(manifest["generation"])
        return manifest

    def needs_rebuild(self, manifest: dict, *, head_fingerprint: str, config: IndexConfig, reindex: bool) -> bool:
        """Whether the indexes were built with another head or index settings (an error unless ``reindex``)."""
        differs = (
            manifest["head_fingerprint"] != head_fingerprint
            or manifest["dims"] != list(self.dims)
            or manifest["index"] != config.to_dict()
            or manifest.get("budgets", []) != list(self.budgets)
        )
        if differs and not reindex:
            raise SmecError(
                f"{self.path} was indexed with head {manifest['head_fingerprint']} at dims {manifest['dims']} "
                f"({manifest['index']['factories']}), budgets {manifest.get('budgets', [])}; this head is {head_fingerprint} "
                f"at dims {list(self.dims)} ({config.to_dict()['factories']}), budgets {list(self.budgets)}. Rebuild the indexes with "
                f"`smec-compress reindex --head HEAD --data-dir {self.path}` (or set SMEC_REINDEX=true)"
            )
        return differs

    def load(self, manifest: dict, *, with_indexes: bool) -> tuple[State, dict[str, int]]:
        """The manifest's segments as a state (unbuilt segments without indexes when not
        ``with_indexes``), and the external id -> live iid map."""
        count = int(manifest["next_iid"])
        ext: list[str | None] = [None] * count
        segments = []
        for seg_id in manifest["segments"]:
            iids, ids = self._read_ids(seg_id)
            for i, e in zip(iids.tolist(), ids):
                ext[i] = e
            if manifest["format"] == 1:
                self._migrate_vectors(seg_id, iids)
            vectors = open_vectors(self.vectors_path(seg_id), len(iids), self.input_dim)
            if with_indexes:
                indexes = {d: self._read_index(self.index_path(seg_id, d)) for d in self.dims}
                inner = {d: faiss.downcast_index(faiss.downcast_index(idx).index) for d, idx in indexes.items()}
                budgets = {b: self._read_index(self.budget_path(seg_id, b)) for b in self.budgets}
                segments.append(Segment(seg_id, iids, indexes, inner, manifest["segment_kinds"][str(seg_id)], budgets, vectors))
            else:
                segments.append(Segment(seg_id, iids, {}, {}, "unbuilt", vectors=vectors))
            self.persisted.add(seg_id)
        tombstones = frozenset(int(t) for t in manifest["tombstones"])
        dead = {s.id: int(np.isin(s.iids, list(tombstones)).sum()) for s in segments} if tombstones else {}
        iid_of = {ext[i]: i for s in segments for i in s.iids.tolist() if i not in tombstones}
        state = State(tuple(segments), tombstones, dead, self.input_dim, count, len(iid_of), ext)
        return with_selector(state), iid_of

    def _read_ids(self, seg_id: int) -> tuple[np.ndarray, list[str]]:
        """A segment's iids (sorted) and external ids, from its Parquet file."""
        path = self.segment_path(seg_id)
        if not path.exists():
            raise SmecError(f"{path}: segment file named by the manifest is missing; restore the data directory from a backup")
        table = pq.read_table(path, columns=[ID, "iid"])
        iids = table.column("iid").to_numpy().astype(np.int64)
        order = np.argsort(iids, kind="stable")
        ids = table.column(ID).to_pylist()
        return iids[order], [ids[j] for j in order.tolist()]

    def _migrate_vectors(self, seg_id: int, iids: np.ndarray) -> None:
        """Format 1 kept a segment's vectors in its Parquet file: write them to its ``.f32`` file
        (in iid order, fsynced), unless a previous open already did."""
        path = self.vectors_path(seg_id)
        if path.exists() and path.stat().st_size == file_bytes(len(iids), self.input_dim):
            return
        full = np.zeros((len(iids), self.input_dim), np.float32)
        for batch in iter_batches(self.segment_path(seg_id), check_finite=False):
            full[np.searchsorted(iids, batch.rest.column("iid").to_numpy())] = batch.vectors
        write_vectors(path, full, self.input_dim)
        fsync_path(path)

    @staticmethod
    def _read_index(path: Path) -> faiss.Index:
        if not path.exists():
            raise SmecError(f"{path}: index file named by the manifest is missing; run `smec-compress reindex`")
        return faiss.read_index(str(path))

    def remove_orphans(self, manifest: dict | None) -> None:
        """Files of a snapshot that crashed before its manifest landed, and stray temporaries."""
        keep = {MANIFEST, LOCK}
        if manifest is not None:
            keep.add(self.wal_path(int(manifest["generation"])).name)
            for seg_id in manifest["segments"]:
                keep.update(p.name for p in self.segment_files(seg_id, manifest["dims"], manifest.get("budgets", [])))
        else:
            keep.add(self.wal_path(0).name)
        for path in self.path.iterdir():
            if path.is_file() and path.name not in keep and (path.name.startswith(("seg-", "wal-", ".")) and path.name != ".gitkeep"):
                path.unlink()

    def recover(self, apply: Callable[[Record], None]) -> WriteAheadLog:
        """Apply the current log's intact records in order (its torn tail is cut off the file)
        and open it for appending, counting the records it already holds."""
        path = self.wal_path(self.generation)
        replayed = 0
        for record in replay(path):
            apply(record)
            replayed += 1
        return WriteAheadLog(path, fsync=self.fsync, records=replayed)

    # ------------------------------------------------------------------------ snapshots
    def snapshot(self, state: State, *, head_fingerprint: str, config: IndexConfig, next_segment: int,
                 wal: WriteAheadLog | None) -> WriteAheadLog:
        """Persist ``state`` (see the module docstring for the order); returns the new, empty log."""
        generation = self.generation + 1
        for seg in state.segments:
            if seg.id not in self.persisted:
                self._write_segment(seg, state)
        new_wal = WriteAheadLog(self.wal_path(generation), fsync=self.fsync)
        manifest = {
            "format": FORMAT,
            "generation": generation,
            "head_fingerprint": head_fingerprint,
            "input_dim": self.input_dim,
            "dims": list(self.dims),
            "index": config.to_dict(),
            "budgets": list(self.budgets),
            "segments": [s.id for s in state.segments],
            "segment_kinds": {str(s.id): s.kind for s in state.segments},
            "tombstones": sorted(state.tombstones),
            "next_iid": state.count,
            "next_segment": next_segment,
        }
        write_text(self.path / MANIFEST, json.dumps(manifest), fsync=True)
        if wal is not None:
            wal.close()
        old_generation, self.generation = self.generation, generation
        self.wal_path(old_generation).unlink(missing_ok=True)
        live_ids = {s.id for s in state.segments}
        for seg_id in sorted(self.persisted - live_ids):
            for path in self.segment_files(seg_id, self.dims, self.budgets):
                path.unlink(missing_ok=True)
        self.persisted &= live_ids
        return new_wal

    def _write_segment(self, seg: Segment, state: State) -> None:
        ids = pa.array([state.ext[i] for i in seg.iids.tolist()], pa.string())
        with atomic_file(self.segment_path(seg.id), fsync=True) as tmp:
            pq.write_table(pa.table({ID: ids, "iid": pa.array(seg.iids, pa.int64())}), tmp)
        fsync_path(self.vectors_path(seg.id))  # written when the segment was built
        for d in self.dims:
            with atomic_file(self.index_path(seg.id, d), fsync=True) as tmp:
                faiss.write_index(seg.indexes[d], str(tmp))
        for b in self.budgets:
            with atomic_file(self.budget_path(seg.id, b), fsync=True) as tmp:
                faiss.write_index(seg.budgets[b], str(tmp))
        fsync_path(self.path)
        self.persisted.add(seg.id)

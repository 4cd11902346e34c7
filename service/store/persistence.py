"""The data directory: its lock, manifest, snapshots, recovery from the log, and orphan removal.

Files (names and manifest keys are the on-disk format; keep them stable):

* ``LOCK``: ``flock``-ed by the one process that owns the directory.
* ``manifest.json``: format, generation, head fingerprint, input dim, dims, index settings, the
  live segment ids and their kinds, tombstones, next iid and next segment id.
* ``seg-<id>.parquet``: a segment's full vectors (ids, vectors and an ``iid`` column),
  ``seg-<id>.d<dim>.faiss``: its index for each served dim, and ``seg-<id>.b<bytes>.faiss``: its
  index for each served byte budget (the head's codec over raw vectors).
* ``wal-<generation>.log``: the write-ahead log since the manifest's snapshot (``service.wal``).

A snapshot writes the segments not yet on disk (each file under a temporary name, fsynced and
renamed into place by ``smec_compress.data.atomic``), then a fresh empty log, then the manifest
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

from smec_compress.data.atomic import atomic_file, fsync_path, write_text
from smec_compress.data.io import iter_batches
from smec_compress.data.schema import EmbeddingMeta
from smec_compress.data.writer import EmbeddingWriter
from smec_compress.errors import SmecError

from ..wal import Record, WriteAheadLog, replay
from .segments import IndexConfig
from .state import Segment, State, with_selector

MANIFEST = "manifest.json"
LOCK = "LOCK"
FORMAT = 1
ROWS_PER_WRITE = 65_536


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

    def index_files(self, seg_id: int, dims, budgets) -> list[Path]:
        """Every index file of a segment: one per dim, one per byte budget."""
        return [self.index_path(seg_id, d) for d in dims] + [self.budget_path(seg_id, b) for b in budgets]

    # ---------------------------------------------------------------------------- open
    def read_manifest(self) -> dict | None:
        path = self.path / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except ValueError as exc:
            raise SmecError(f"{path}: corrupt manifest ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise SmecError(f"{path}: unknown store format {manifest.get('format')!r} (expected {FORMAT})")
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
        full = np.zeros((count, self.input_dim), np.float32)
        ext: list[str | None] = [None] * count
        segments = []
        for seg_id in manifest["segments"]:
            iids_parts = []
            for batch in iter_batches(self.segment_path(seg_id), check_finite=False):
                iids = batch.rest.column("iid").to_numpy()
                full[iids] = batch.vectors
                for i, e in zip(iids.tolist(), batch.ids):
                    ext[i] = e
                iids_parts.append(iids)
            iids = np.sort(np.concatenate(iids_parts)).astype(np.int64)
            if with_indexes:
                indexes, inner = {}, {}
                for d in self.dims:
                    path = self.index_path(seg_id, d)
                    if not path.exists():
                        raise SmecError(f"{path}: index file named by the manifest is missing; run `smec-compress reindex`")
                    idx = faiss.read_index(str(path))
                    indexes[d] = idx
                    inner[d] = faiss.downcast_index(faiss.downcast_index(idx).index)
                budgets = {}
                for b in self.budgets:
                    path = self.budget_path(seg_id, b)
                    if not path.exists():
                        raise SmecError(f"{path}: index file named by the manifest is missing; run `smec-compress reindex`")
                    budgets[b] = faiss.read_index(str(path))
                segments.append(Segment(seg_id, iids, indexes, inner, manifest["segment_kinds"][str(seg_id)], budgets))
            else:
                segments.append(Segment(seg_id, iids, {}, {}, "unbuilt"))
            self.persisted.add(seg_id)
        tombstones = frozenset(int(t) for t in manifest["tombstones"])
        dead = {s.id: int(np.isin(s.iids, list(tombstones)).sum()) for s in segments} if tombstones else {}
        iid_of = {ext[i]: i for s in segments for i in s.iids.tolist() if i not in tombstones}
        state = State(tuple(segments), tombstones, dead, full, count, len(iid_of), ext)
        return with_selector(state), iid_of

    def remove_orphans(self, manifest: dict | None) -> None:
        """Files of a snapshot that crashed before its manifest landed, and stray temporaries."""
        keep = {MANIFEST, LOCK}
        if manifest is not None:
            keep.add(self.wal_path(int(manifest["generation"])).name)
            for seg_id in manifest["segments"]:
                keep.add(self.segment_path(seg_id).name)
                keep.update(p.name for p in self.index_files(seg_id, manifest["dims"], manifest.get("budgets", [])))
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
                self._write_segment(seg, state, head_fingerprint)
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
            self.segment_path(seg_id).unlink(missing_ok=True)
            for path in self.index_files(seg_id, self.dims, self.budgets):
                path.unlink(missing_ok=True)
        self.persisted &= live_ids
        return new_wal

    def _write_segment(self, seg: Segment, state: State, head_fingerprint: str) -> None:
        rows = seg.iids
        path = self.segment_path(seg.id)
        meta = EmbeddingMeta(kind="corpus", head_fingerprint=head_fingerprint)
        with EmbeddingWriter(path, self.input_dim, meta, rest_schema=pa.schema([("iid", pa.int64())])) as writer:
            for start in range(0, len(rows), ROWS_PER_WRITE):
                part = rows[start : start + ROWS_PER_WRITE]
                writer.write([state.ext[i] for i in part.tolist()], state.full[part], pa.table({"iid": pa.array(part, pa.int64())}))
        fsync_path(path)
        for d in self.dims:
            with atomic_file(self.index_path(seg.id, d), fsync=True) as tmp:
                faiss.write_index(seg.indexes[d], str(tmp))
        for b in self.budgets:
            with atomic_file(self.budget_path(seg.id, b), fsync=True) as tmp:
                faiss.write_index(seg.budgets[b], str(tmp))
        fsync_path(self.path)
        self.persisted.add(seg.id)

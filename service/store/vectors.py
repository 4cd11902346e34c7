"""The stored full vectors: one raw float32 file per segment, memory-mapped read-only.

RAM holds the low-dim indexes only. Rescoring and ``get`` read back the few rows they need
through the page cache, which the kernel fills on demand and reclaims under pressure: the full
vectors are never anonymous memory, whatever the corpus size.

A segment's file (``seg-<id>.f32``: its rows in the order of its sorted iids, nothing else) is
written once when the segment is built and never changed, so a reader holding an old state keeps
a valid mapping even after a merge unlinks the file. It is not fsynced on write (the write-ahead
log already holds the vectors of every acknowledged write); the snapshot that first names the
segment fsyncs it before the manifest lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smec_compress.data.atomic import atomic_file
from smec_compress.errors import SmecError

WRITE_ROWS = 65_536  # rows gathered and written per block: a merge of 1M rows never holds them all


def write_vectors(path: Path, rows, dim: int) -> np.ndarray:
    """Write ``rows`` (anything sliceable to (n, dim) float32 blocks: an array, a memory map or a
    :class:`Gathered`) to ``path`` in blocks and return the file mapped read-only."""
    n = len(rows)
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        for start in range(0, n, WRITE_ROWS):
            fh.write(np.ascontiguousarray(rows[start : start + WRITE_ROWS], dtype="<f4").tobytes())
    return open_vectors(path, n, dim)


def file_bytes(n: int, dim: int) -> int:
    """The size of a segment's vector file: ``n`` rows of ``dim`` float32."""
    return n * dim * 4


def open_vectors(path: Path, n: int, dim: int) -> np.ndarray:
    """The ``(n, dim)`` float32 rows of ``path``, memory-mapped read-only (an error naming the
    file if it is missing or of another size)."""
    if n == 0:
        return np.zeros((0, dim), np.float32)
    expected = file_bytes(n, dim)
    size = path.stat().st_size if path.exists() else None
    if size != expected:
        found = "missing" if size is None else f"{size} bytes"
        raise SmecError(f"{path}: full-vector file is {found}, expected {expected} ({n} rows x {dim} dims); "
                        "restore the data directory from a backup")
    return np.memmap(path, dtype="<f4", mode="r", shape=(n, dim))


class Gathered:
    """The full vectors of ``iids`` (any shape, -1 = none: zero rows), looked up in the segments
    that hold them; sliced like an array (positions in ``iids``), reading only the rows asked for."""

    def __init__(self, segments: Sequence, iids: np.ndarray, dim: int) -> None:
        self.segments = segments
        self.iids = np.asarray(iids, dtype=np.int64)
        self.dim = dim

    def __len__(self) -> int:
        return len(self.iids)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.iids), self.dim)

    def __getitem__(self, key) -> np.ndarray:
        return rows_of(self.segments, self.iids[key], self.dim)


def rows_of(segments: Sequence, iids: np.ndarray, dim: int) -> np.ndarray:
    """``iids.shape + (dim,)`` float32: each iid's full vector from the segment holding it
    (segments' iids are sorted and disjoint), zeros for -1 or an iid no segment holds."""
    flat = np.asarray(iids, dtype=np.int64).ravel()
    out = np.zeros((len(flat), dim), np.float32)
    for seg in segments:
        if not seg.rows or not len(flat):
            continue
        pos = np.minimum(np.searchsorted(seg.iids, flat), seg.rows - 1)
        hit = np.flatnonzero(seg.iids[pos] == flat)
        if len(hit):
            order = np.argsort(pos[hit], kind="stable")  # read the file front to back
            out[hit[order]] = seg.vectors[pos[hit][order]]
    return out.reshape(*np.shape(iids), dim)


class StateVectors:
    """The full vectors of one published state, indexed by iid (what ``smec_compress.rescore``
    takes): ``vectors[iids]`` reads just those rows."""

    def __init__(self, segments: Sequence, dim: int) -> None:
        self.segments = segments
        self.dim = dim

    def __getitem__(self, iids) -> np.ndarray:
        return rows_of(self.segments, np.asarray(iids), self.dim)

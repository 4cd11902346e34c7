"""The write-ahead log: every acknowledged write, fsynced before the client hears "ok".

One file per snapshot generation (``wal-<gen>.log``). A record is a fixed header (magic, op,
row count, vector dim, payload length, CRC32) followed by the payload: the ids as a JSON list,
then the full-dimension float32 vectors (upserts only). A crash can leave at most one torn
record at the tail (it was never acknowledged, because the fsync had not returned); replay
stops at the first record that is short or fails its CRC and truncates the file there, so the
next append starts on a clean boundary.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smec_compress.data.atomic import fsync_path

log = logging.getLogger("smec.service")

MAGIC = b"SMW1"
HEADER = struct.Struct("<4sBIIII")  # magic, op, rows, dim, payload bytes, crc32(header fields + payload)
UPSERT, DELETE = 1, 2


@dataclass(frozen=True)
class Record:
    op: int
    ids: list[str]
    vectors: np.ndarray | None  # (rows, dim) float32 for UPSERT, None for DELETE


def encode(op: int, ids: list[str], vectors: np.ndarray | None) -> bytes:
    ids_blob = json.dumps(ids, ensure_ascii=False).encode()
    dim = 0 if vectors is None else int(vectors.shape[1])
    payload = struct.pack("<I", len(ids_blob)) + ids_blob
    if vectors is not None:
        payload += np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    fields = struct.pack("<BIII", op, len(ids), dim, len(payload))
    return HEADER.pack(MAGIC, op, len(ids), dim, len(payload), zlib.crc32(fields + payload)) + payload


class WriteAheadLog:
    """Append-only, fsync-per-write log; not thread-safe (the store's writer lock guards it).

    ``records`` is how many records the file already holds (what ``replay`` yielded from it), so
    that ``records`` counts every record since the last snapshot.
    """

    def __init__(self, path: Path, *, fsync: bool = True, records: int = 0) -> None:
        self.path = path
        self.fsync = fsync
        existed = path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if not existed and fsync:
            os.fsync(self._fd)
            fsync_path(path.parent)
        self.records = records
        self.bytes = os.fstat(self._fd).st_size

    def append(self, op: int, ids: list[str], vectors: np.ndarray | None = None) -> None:
        data = encode(op, ids, vectors)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self._fd)
        self.records += 1
        self.bytes += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def replay(path: Path) -> Iterator[Record]:
    """The intact records of a log, in order; a torn or corrupt tail is cut off the file."""
    if not path.exists():
        return
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        record, end = _decode(data, pos)
        if record is None:
            log.warning("%s: dropping %d bytes of a torn or corrupt tail record (never acknowledged)", path, len(data) - pos)
            with open(path, "r+b") as fh:
                fh.truncate(pos)
                fh.flush()
                os.fsync(fh.fileno())
            return
        yield record
        pos = end


def _decode(data: bytes, pos: int) -> tuple[Record | None, int]:
    if pos + HEADER.size > len(data):
        return None, pos
    magic, op, rows, dim, length, crc = HEADER.unpack_from(data, pos)
    start, end = pos + HEADER.size, pos + HEADER.size + length
    if magic != MAGIC or op not in (UPSERT, DELETE) or end > len(data):
        return None, pos
    payload = data[start:end]
    if zlib.crc32(struct.pack("<BIII", op, rows, dim, length) + payload) != crc:
        return None, pos
    (ids_len,) = struct.unpack_from("<I", payload, 0)
    ids = json.loads(payload[4 : 4 + ids_len])
    vectors = None
    if op == UPSERT:
        vectors = np.frombuffer(payload, dtype="<f4", offset=4 + ids_len).reshape(rows, dim).astype(np.float32)
    return Record(op, ids, vectors), end

"""Which files make a dataset, and opening each for streaming: Parquet, or Arrow IPC mapped in memory.

The format follows the file name: ``.arrow``/``.feather``/``.ipc`` are Arrow IPC (read by
memory-mapping, so a batch's vectors are a zero-copy view of the OS page cache), anything else is
Parquet. A directory of such files is one dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SmecError
from .schema import EmbeddingMeta

ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
SUFFIXES = (".parquet", *ARROW_SUFFIXES)


def is_arrow_ipc(path: str | Path) -> bool:
    """Whether a file name means Arrow IPC (``.arrow``/``.feather``/``.ipc``) rather than Parquet."""
    return Path(path).suffix.lower() in ARROW_SUFFIXES


def dataset_files(path: str | Path) -> list[Path]:
    """The files of a dataset: the file itself, or a directory's ``*.parquet``/``*.arrow`` sorted."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise SmecError(f"{path}: directory holds no {'/'.join(SUFFIXES)} files")
        return files
    if not path.exists():
        raise SmecError(f"{path}: file not found")
    return [path]


def open_parquet(path: Path) -> pq.ParquetFile:
    """Open for streaming. ``pre_buffer=False`` matters: pre-buffering made a 1M x 384 read peak
    at 2.4x the array's size instead of 1.45x (bench/io_memory.py)."""
    try:
        return pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SmecError(f"{path}: not a readable Parquet file ({exc})") from None


class ArrowFile:
    """An Arrow IPC file, memory-mapped, with the slice of ``pq.ParquetFile``'s API we use.

    Both IPC layouts are read: the random-access file format (what we write) and the stream
    format (what e.g. Hugging Face ``datasets`` caches as ``.arrow``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            try:
                self._reader, self._stream = pa.ipc.open_file(pa.memory_map(str(path))), False
            except pa.ArrowInvalid:  # no file footer: try the stream layout
                self._reader, self._stream = pa.ipc.open_stream(pa.memory_map(str(path))), True
        except (pa.ArrowInvalid, OSError) as exc:
            raise SmecError(f"{path}: not a readable Arrow IPC file ({exc})") from None
        self.schema_arrow = self._reader.schema

    def _record_batches(self) -> Iterator[pa.RecordBatch]:
        """Zero-copy views of the mapped file; a stream is re-opened for each pass."""
        if self._stream:
            yield from pa.ipc.open_stream(pa.memory_map(str(self.path)))
        else:
            for i in range(self._reader.num_record_batches):
                yield self._reader.get_batch(i)

    @property
    def num_rows(self) -> int:
        return sum(batch.num_rows for batch in self._record_batches())

    def iter_batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        for record_batch in self._record_batches():
            for start in range(0, record_batch.num_rows, batch_size):
                yield record_batch.slice(start, batch_size)


def open_dataset_file(path: Path) -> pq.ParquetFile | ArrowFile:
    """A Parquet or Arrow IPC file (by its name), opened for streaming record batches."""
    return ArrowFile(path) if is_arrow_ipc(path) else open_parquet(path)


def _num_rows(source: pq.ParquetFile | ArrowFile) -> int:
    return source.metadata.num_rows if isinstance(source, pq.ParquetFile) else source.num_rows


def read_meta(path: str | Path) -> EmbeddingMeta:
    """The metadata of a dataset (its first file's)."""
    return EmbeddingMeta.from_schema(open_dataset_file(dataset_files(path)[0]).schema_arrow)


def count_rows(path: str | Path) -> int:
    return sum(_num_rows(open_dataset_file(f)) for f in dataset_files(path))




"""Embeddings on disk: Parquet or Arrow IPC files with one row per vector.

Layout: a string ``id`` column and an ``embedding`` column of ``fixed_size_list<float32>[D]``,
plus any other columns (passed through by ``compress``). Schema metadata under the key
``smec_compress`` records the model, dimension, normalisation and a fingerprint of the model,
so a head fitted on one embedder refuses vectors from another. On read we also accept
``list<float>`` columns and float16/float64 values, so files written by other tools work, and a
directory of files is one dataset.

Two on-disk formats, chosen by the file name:

- ``.parquet`` (the default): compact and read by every tool. Vector values are written with
  ``BYTE_STREAM_SPLIT`` + zstd and no dictionary: 9% smaller than zstd with a dictionary, the
  smallest layout measured (bench/formats.py). Decoding a list column still costs far more than
  the matmul that compresses it.
- ``.arrow`` (Arrow IPC file, also ``.feather``/``.ipc``), uncompressed: read by memory-mapping,
  so a batch's vectors are a zero-copy view of the file (of the OS page cache). This is the
  format for throughput: ``compress`` from ``.arrow`` ran 5x faster than from Parquet
  (BENCHMARKS "On-disk formats").

Reading streams record batches into one preallocated ``(N, D)`` float32 array: peak memory is
the array plus one batch, and no Python loop runs per row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .direct_io import DirectFile
from .errors import SmecError

META_KEY = b"smec_compress"
DEFAULT_BATCH_ROWS = 65_536
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
SUFFIXES = (".parquet", *ARROW_SUFFIXES)


@dataclass(frozen=True)
class EmbeddingMeta:
    """What produced a file's vectors; ``None`` where a foreign file does not say."""

    model: str | None = None
    dim: int | None = None
    normalized: bool | None = None
    fingerprint: str | None = None  # of the embedding model's files
    kind: str | None = None  # "corpus" or "queries" when written by `embed`
    head_fingerprint: str | None = None  # set by `compress`
    source_dim: int | None = None  # input dim of the head that compressed these vectors

    def to_bytes(self) -> bytes:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}).encode()

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> "EmbeddingMeta":
        raw = (schema.metadata or {}).get(META_KEY)
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except ValueError:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Columns:
    """Names of the id and vector columns (overridable for files from other tools)."""

    id: str = "id"
    embedding: str = "embedding"


@dataclass
class Embeddings:
    """A whole embedding file in memory."""

    ids: list[str]
    vectors: np.ndarray  # (N, D) float32
    meta: EmbeddingMeta = field(default_factory=EmbeddingMeta)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


@dataclass
class Batch:
    """One streamed record batch: ids, vectors, and the other columns to pass through."""

    id_array: pa.Array  # as stored; ``ids`` converts to Python strings only when asked
    vectors: np.ndarray
    rest: pa.Table
    path: Path

    @cached_property
    def ids(self) -> list[str]:
        return [str(x) for x in self.id_array.to_pylist()]


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


class _ArrowFile:
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


def open_dataset_file(path: Path) -> pq.ParquetFile | _ArrowFile:
    """A Parquet or Arrow IPC file (by its name), opened for streaming record batches."""
    return _ArrowFile(path) if is_arrow_ipc(path) else open_parquet(path)


def _num_rows(source: pq.ParquetFile | _ArrowFile) -> int:
    return source.metadata.num_rows if isinstance(source, pq.ParquetFile) else source.num_rows


def _check_columns(path: Path, schema: pa.Schema, columns: Columns) -> None:
    names = schema.names
    for role, name in (("id", columns.id), ("embedding", columns.embedding)):
        if name not in names:
            flag = "--id-column" if role == "id" else "--embedding-column"
            raise SmecError(f"{path}: no {role} column {name!r} (columns: {', '.join(names)}; choose one with {flag})")


def vectors_from_arrow(array: pa.Array, *, where: str, first_row: int = 0) -> np.ndarray:
    """A list/fixed-size-list column as a 2-D float32 array, without a loop over rows.

    Ragged rows, nulls and non-float values are errors that say how many rows and where.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()  # one chunk: no copy
    kind = array.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        raise SmecError(f"{where}: embedding column has type {kind}, expected a list of floats")
    if not pa.types.is_floating(kind.value_type):
        raise SmecError(f"{where}: embedding values have type {kind.value_type}, expected float16/32/64")
    if array.null_count:
        raise SmecError(f"{where}: {array.null_count} rows have no embedding (null)")
    n = len(array)
    if pa.types.is_fixed_size_list(kind):
        dim = kind.list_size
    else:
        lengths = np.diff(array.offsets.to_numpy())
        dim = int(lengths[0]) if n else 0
        ragged = np.flatnonzero(lengths != dim)
        if len(ragged):
            raise SmecError(
                f"{where}: ragged embeddings: {len(ragged)} of {n} rows differ from the first row's "
                f"length {dim} (first at row {first_row + int(ragged[0])}, length {int(lengths[ragged[0]])})"
            )
    values = array.flatten()
    if values.null_count:
        raise SmecError(f"{where}: {values.null_count} null values inside embeddings")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(n, dim).astype(np.float32, copy=False)


def iter_batches(
    path: str | Path,
    *,
    columns: Columns = Columns(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    check_finite: bool = True,
) -> Iterator[Batch]:
    """Stream a file or directory of Parquet/Arrow IPC files as batches with bounded memory.

    Every file must hold vectors of one dimension; NaN/inf rows are an error (counted per batch)
    unless ``check_finite=False`` (for callers that check more cheaply themselves). From Arrow IPC
    files the vectors are read-only views of the memory-mapped file.
    """
    dim: int | None = None
    first: Path | None = None
    for file in dataset_files(path):
        source = open_dataset_file(file)
        _check_columns(file, source.schema_arrow, columns)
        first_row = 0
        where = f"{file}, column {columns.embedding!r}"
        for record_batch in source.iter_batches(batch_size=batch_rows):
            vectors = vectors_from_arrow(record_batch.column(columns.embedding), where=where, first_row=first_row)
            first_row += len(vectors)
            if dim is None:
                dim, first = vectors.shape[1], file
            elif vectors.shape[1] != dim and len(vectors):
                raise SmecError(f"{file}: vectors have {vectors.shape[1]} dims but {first} has {dim}")
            id_array = record_batch.column(columns.id)
            if check_finite:
                reject_nonfinite(vectors, id_array, where=where)
            rest = pa.Table.from_batches([record_batch]).drop_columns([columns.id, columns.embedding])
            yield Batch(id_array, vectors, rest, file)


def reject_nonfinite(vectors: np.ndarray, ids: pa.Array | pa.ChunkedArray, *, where: str) -> None:
    """Refuse rows with NaN or inf, naming the count and the first one's id."""
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise SmecError(f"{where}: {len(bad)} rows contain NaN or inf (first id {ids[int(bad[0])].as_py()!r})")


def read_meta(path: str | Path) -> EmbeddingMeta:
    """The metadata of a dataset (its first file's)."""
    return EmbeddingMeta.from_schema(open_dataset_file(dataset_files(path)[0]).schema_arrow)


def count_rows(path: str | Path) -> int:
    return sum(_num_rows(open_dataset_file(f)) for f in dataset_files(path))


def read_embeddings(
    path: str | Path,
    *,
    columns: Columns = Columns(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    check_finite: bool = True,
) -> Embeddings:
    """A whole dataset as ids + one ``(N, D)`` float32 array, filled batch by batch."""
    total = count_rows(path)
    if total == 0:
        raise SmecError(f"{path}: no rows")
    ids: list[str] = []
    out: np.ndarray | None = None
    row = 0
    for batch in iter_batches(path, columns=columns, batch_rows=batch_rows, check_finite=check_finite):
        if out is None:
            out = np.empty((total, batch.vectors.shape[1]), dtype=np.float32)
        out[row : row + len(batch.ids)] = batch.vectors
        row += len(batch.ids)
        ids.extend(batch.ids)
    meta = read_meta(path)
    return Embeddings(ids, out, replace(meta, dim=int(out.shape[1])))


class EmbeddingWriter:
    """Write embeddings batch by batch to a temporary name, renamed into place on success.

    The format follows the name: Arrow IPC for ``.arrow``/``.feather``/``.ipc`` (uncompressed, so
    readers can memory-map it), else Parquet (zstd; vector values ``BYTE_STREAM_SPLIT``, no
    dictionary). A failure (or Ctrl-C) part way leaves no file under the final name, and never
    clobbers an existing good file with a half-written one.

    ``direct=True`` writes through :class:`~smec_compress.direct_io.DirectFile` (``O_DIRECT``):
    the same bytes, without the kernel CPU of copying them into the page cache. ``compress`` uses
    it from its background writer thread; elsewhere the page cache's write-behind is the better
    deal, since each ``O_DIRECT`` write waits for the disk.
    """

    def __init__(
        self,
        path: str | Path,
        dim: int,
        meta: EmbeddingMeta = EmbeddingMeta(),
        *,
        rest_schema: pa.Schema | None = None,
        columns: Columns = Columns(),
        direct: bool = False,
    ) -> None:
        self.path = Path(path)
        self.direct = direct
        self.dim = dim
        self.columns = columns
        fields = [pa.field(columns.id, pa.string()), pa.field(columns.embedding, pa.list_(pa.float32(), dim))]
        fields += list(rest_schema or [])
        meta = replace(meta, dim=dim)
        self.schema = pa.schema(fields, metadata={META_KEY: meta.to_bytes()})
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._writer: pq.ParquetWriter | pa.ipc.RecordBatchFileWriter | None = None
        self._sink: DirectFile | None = None
        self.rows = 0

    def __enter__(self) -> "EmbeddingWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = DirectFile(self.tmp) if self.direct else None
        try:
            self._writer = self._open_writer(self._sink or str(self.tmp))
        except BaseException:
            if self._sink is not None:
                self._sink.close()
            self.tmp.unlink(missing_ok=True)
            raise
        return self

    def _open_writer(self, sink) -> pq.ParquetWriter | pa.ipc.RecordBatchFileWriter:
        if is_arrow_ipc(self.path):
            return pa.ipc.new_file(sink, self.schema)
        others = [name for name in self.schema.names if name != self.columns.embedding]
        return pq.ParquetWriter(
            sink,
            self.schema,
            compression="zstd",
            use_dictionary=others,  # dictionaries of float vectors only cost time
            column_encoding={f"{self.columns.embedding}.list.element": "BYTE_STREAM_SPLIT"},
        )

    def write(self, ids: list[str] | pa.Array, vectors: np.ndarray, rest: pa.Table | None = None) -> None:
        """Append rows; ``ids`` may be a Python list or an Arrow array (passed through, no copy)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(vectors) != len(ids):
            raise SmecError(f"{self.path}: expected {len(ids)} vectors of {self.dim} dims, got shape {vectors.shape}")
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim)
        if isinstance(ids, (pa.Array, pa.ChunkedArray)):
            ids = ids if ids.type == pa.string() else pc.cast(ids, pa.string())
        else:
            ids = pa.array(ids, pa.string())
        arrays = [ids, embedding]
        if rest is not None:
            arrays += [rest.column(name) for name in rest.column_names]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(vectors)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            try:
                self._writer.close()
            finally:
                if self._sink is not None:
                    self._sink.close()
        except BaseException:  # e.g. the disk filled up while the footer was written
            self.tmp.unlink(missing_ok=True)
            raise
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_embeddings(
    path: str | Path,
    ids: list[str],
    vectors: np.ndarray,
    meta: EmbeddingMeta = EmbeddingMeta(),
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Path:
    """Write a whole array (in row groups of ``batch_rows``) atomically."""
    if len(ids) == 0:
        raise SmecError(f"{path}: refusing to write an empty embedding file")
    with EmbeddingWriter(path, int(vectors.shape[1]), meta) as writer:
        for start in range(0, len(ids), batch_rows):
            writer.write(ids[start : start + batch_rows], vectors[start : start + batch_rows])
    return Path(path)

"""Reading embeddings: stream a dataset's record batches, or fill one ``(N, D)`` float32 array.

On read we accept ``fixed_size_list`` and ``list`` columns of float16/32/64 values, so files
written by other tools (embedding-reader, autofaiss, clip-retrieval) work, and the id and vector
columns can be named (``Columns``). Reading streams record batches into one preallocated array:
peak memory is the array plus one batch, and no Python loop runs per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import SmecError
from ..validation import reject_nonfinite
from .files import count_rows, dataset_files, open_dataset_file, read_meta
from .schema import Columns, EmbeddingMeta

DEFAULT_BATCH_ROWS = 65_536


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


def check_columns(path: Path, schema: pa.Schema, columns: Columns) -> None:
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
        check_columns(file, source.schema_arrow, columns)
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


def dataset_dim(path: str | Path, *, columns: Columns = Columns()) -> int:
    """The vectors' dimension: from the metadata, else from the first row."""
    dim = read_meta(path).dim
    if dim is None:
        first = next(iter_batches(path, columns=columns, batch_rows=1), None)
        if first is None:
            raise SmecError(f"{path}: no rows")
        dim = first.vectors.shape[1]
    return int(dim)


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



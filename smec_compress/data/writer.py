"""Writing embeddings: batch by batch, in the format the file name says, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import SmecError
from .atomic import atomic_file
from .direct_io import DirectFile
from .files import is_arrow_ipc
from .io import DEFAULT_BATCH_ROWS
from .schema import Columns, EmbeddingMeta, embedding_schema, vector_array


class EmbeddingWriter:
    """Write embeddings batch by batch to a temporary name, renamed into place on success.

    The format follows the name: Arrow IPC for ``.arrow``/``.feather``/``.ipc`` (uncompressed, so
    readers can memory-map it), else Parquet (zstd; vector values ``BYTE_STREAM_SPLIT``, no
    dictionary). A failure, Ctrl-C or SIGTERM part way leaves no file under the final name and no
    temporary (``atomic.atomic_file``), and never clobbers an existing good file.

    ``direct=True`` writes through :class:`~smec_compress.data.direct_io.DirectFile` (``O_DIRECT``):
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
        self.schema = embedding_schema(dim, meta, columns=columns, rest=rest_schema)
        self._atomic = atomic_file(self.path)
        self.tmp: Path | None = None
        self._writer: pq.ParquetWriter | pa.ipc.RecordBatchFileWriter | None = None
        self._sink: DirectFile | None = None
        self.rows = 0

    def __enter__(self) -> "EmbeddingWriter":
        self.tmp = self._atomic.__enter__()
        try:
            self._sink = DirectFile(self.tmp) if self.direct else None
            self._writer = self._open_writer(self._sink or str(self.tmp))
        except BaseException as exc:
            if self._sink is not None:
                self._sink.close()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
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
        if isinstance(ids, (pa.Array, pa.ChunkedArray)):
            ids = ids if ids.type == pa.string() else pc.cast(ids, pa.string())
        else:
            ids = pa.array(ids, pa.string())
        arrays = [ids, vector_array(vectors)]
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
        except BaseException as close_error:  # e.g. the disk filled up while the footer was written
            self._atomic.__exit__(type(close_error), close_error, close_error.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, tb)


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

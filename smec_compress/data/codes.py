"""Files of codes: a byte budget's stored vectors, as any Arrow reader sees them.

``compress --budget B`` writes one row per vector: ``id`` (string), ``code``
(``fixed_size_binary[code_size]``: the codec's bytes, exactly what the FAISS index stores) and the
input's other columns. The schema metadata (the same ``smec_compress`` key as embedding files)
records the input's provenance, the head's fingerprint and input dim, the budget and the codec
chosen for it, so a reader knows which head and codec decode the bytes (``SMEC.search(...,
budget=B)``, or the index ``index --head --budget B`` writes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import SmecError
from .files import is_arrow_ipc
from .schema import META_KEY, Columns, EmbeddingMeta
from .writer import EmbeddingWriter

CODE_COLUMN = "code"


@dataclass(frozen=True)
class CodesMeta:
    """What made a codes file: the vectors' provenance, the head and its codec for ``budget``."""

    source: EmbeddingMeta = field(default_factory=EmbeddingMeta)
    head_fingerprint: str | None = None
    source_dim: int | None = None
    budget: int | None = None
    codec: str | None = None  # the chosen candidate's key, e.g. "smec+qat-int4 32 d"
    code_size: int | None = None

    def to_bytes(self) -> bytes:
        doc = {k: v for k, v in asdict(self).items() if v is not None and k != "source"}
        doc["source"] = json.loads(self.source.to_bytes())
        return json.dumps(doc).encode()

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> "CodesMeta":
        raw = (schema.metadata or {}).get(META_KEY)
        doc = json.loads(raw) if raw else {}
        source = EmbeddingMeta(**{k: v for k, v in doc.pop("source", {}).items() if k in EmbeddingMeta.__dataclass_fields__})
        return cls(source, **{k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k != "source"})


def codes_schema(code_size: int, meta: CodesMeta, *, id_column: str = "id", rest: pa.Schema | None = None) -> pa.Schema:
    fields = [pa.field(id_column, pa.string()), pa.field(CODE_COLUMN, pa.binary(code_size)), *(rest or [])]
    return pa.schema(fields, metadata={META_KEY: meta.to_bytes()})


class CodeWriter(EmbeddingWriter):
    """``EmbeddingWriter`` for codes: same formats by name, same atomic rename, a binary column."""

    def __init__(self, path: str | Path, code_size: int, meta: CodesMeta, *, rest_schema: pa.Schema | None = None,
                 columns: Columns = Columns()) -> None:
        super().__init__(path, 1, meta.source, rest_schema=rest_schema, columns=columns)
        self.code_size = code_size
        self.schema = codes_schema(code_size, meta, id_column=columns.id, rest=rest_schema)

    def _open_writer(self, sink):
        if is_arrow_ipc(self.path):
            return pa.ipc.new_file(sink, self.schema)
        return pq.ParquetWriter(sink, self.schema, compression="zstd", use_dictionary=False)  # codes do not repeat

    def write(self, ids, codes: np.ndarray, rest: pa.Table | None = None) -> None:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != self.code_size or len(codes) != len(ids):
            raise SmecError(f"{self.path}: expected {len(ids)} codes of {self.code_size} bytes, got shape {codes.shape}")
        ids = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(ids, pa.string())
        ids = ids if ids.type == pa.string() else pc.cast(ids, pa.string())
        column = pa.FixedSizeBinaryArray.from_buffers(pa.binary(self.code_size), len(codes), [None, pa.py_buffer(codes)])
        arrays = [ids, column] + ([rest.column(n) for n in rest.column_names] if rest is not None else [])
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(codes)


def read_codes(path: str | Path, *, id_column: str = "id") -> tuple[list[str], np.ndarray, CodesMeta]:
    """A whole codes file: ids, ``(N, code_size)`` uint8 codes and its metadata."""
    path = Path(path)
    try:
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all() if is_arrow_ipc(path) else pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise SmecError(f"{path}: not a readable codes file ({e})") from None
    if CODE_COLUMN not in table.column_names or not pa.types.is_fixed_size_binary(table.schema.field(CODE_COLUMN).type):
        raise SmecError(f"{path}: no {CODE_COLUMN!r} column of fixed-size binary codes (written by compress --budget?)")
    size = table.schema.field(CODE_COLUMN).type.byte_width
    column = table.column(CODE_COLUMN).combine_chunks()
    codes = np.frombuffer(column.buffers()[1], dtype=np.uint8, count=len(column) * size,
                          offset=column.offset * size).reshape(len(column), size)
    return table.column(id_column).to_pylist(), codes.copy(), CodesMeta.from_schema(table.schema)

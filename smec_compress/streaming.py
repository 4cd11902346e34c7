"""Apply a fitted head to Parquet embeddings batch by batch, with bounded memory."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from .errors import SmecError
from .io import DEFAULT_BATCH_ROWS, Columns, EmbeddingWriter, iter_batches, read_meta


def check_trained_dim(head, dim: int) -> None:
    """Refuse a dim the head was not trained for, listing the ones it was (before any output)."""
    if dim not in head.dims_:
        raise SmecError(f"--dim {dim} is not a trained dim of this head; trained dims: {list(head.dims_)}")


def compress_file(
    head,
    input_path: str | Path,
    out_path: str | Path,
    *,
    dim: int,
    columns: Columns = Columns(),
    force: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compress every vector of ``input_path`` to ``dim`` into ``out_path`` (atomic).

    Ids and all other columns pass through; the metadata records the head's fingerprint and
    the source dim. Vectors of another dimension or embedder are refused before anything is
    written (``force`` overrides the embedder check only).
    """
    check_trained_dim(head, dim)
    meta = read_meta(input_path)
    out_meta = replace(meta, dim=dim, normalized=True, head_fingerprint=head.fingerprint, source_dim=head.input_dim_)
    with ExitStack() as stack:
        writer: EmbeddingWriter | None = None
        for batch in iter_batches(input_path, columns=columns, batch_rows=batch_rows):
            if writer is None:
                head.check_input(batch.vectors.shape[1], meta.fingerprint, force)
                writer = stack.enter_context(
                    EmbeddingWriter(out_path, dim, out_meta, rest_schema=batch.rest.schema, columns=columns)
                )
            writer.write(batch.ids, head.transform(batch.vectors, dim), batch.rest)
            if progress:
                progress(len(batch.ids))
        if writer is None:
            raise SmecError(f"{input_path}: no rows to compress")
    return writer.rows

"""Apply a fitted head to Parquet/Arrow IPC embeddings batch by batch, with bounded memory."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np

from ..data.files import read_meta
from ..data.io import DEFAULT_BATCH_ROWS, Columns, iter_batches
from ..data.read_ahead import read_ahead
from ..data.schema import compressed_meta
from ..data.writer import EmbeddingWriter
from ..errors import SmecError
from ..validation import reject_nonfinite


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

    Ids and all other columns pass through as Arrow arrays; the metadata records the head's
    fingerprint and the source dim. Vectors of another dimension or embedder are refused before
    anything is written (``force`` overrides the embedder check only). NaN/inf input rows are
    refused too, found from the output (see ``_check_output``), so no extra pass over the input
    runs: from a memory-mapped ``.arrow`` file the matmul and the output write are what is left.
    Three threads share the work: one decodes the next batch (``read_ahead``), this one transforms,
    one writes the previous batch.
    """
    head.check_dim(dim, what="--dim")
    meta = read_meta(input_path)
    out_meta = compressed_meta(meta, head, dim)
    with ExitStack() as stack:
        writer: EmbeddingWriter | None = None
        pending: Future | None = None
        buffers = [np.empty((0, dim), np.float32)] * 2  # reused: first-touching fresh memory is slow
        # closed on the way out, error or not: the read-ahead thread stops before the input is released
        batches = stack.enter_context(
            closing(read_ahead(iter_batches(input_path, columns=columns, batch_rows=batch_rows, check_finite=False)))
        )
        for n, batch in enumerate(batches):
            if writer is None:
                head.check_input(batch.vectors.shape[1], meta.fingerprint, force)
                writer = stack.enter_context(
                    EmbeddingWriter(out_path, dim, out_meta, rest_schema=batch.rest.schema, columns=columns, direct=True)
                )
                # exits before the writer: the last write finishes before the file is closed or removed
                background = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="smec-write"))
                first_rest = batch.rest.schema
            elif batch.rest.schema != first_rest:
                raise SmecError(f"{batch.path}: its other columns ({_describe(batch.rest.schema)}) differ from the "
                                f"first file's ({_describe(first_rest)}); every file of a dataset needs the same columns")
            # two buffers in turn: the one the background write is reading is never overwritten
            rows = len(batch.vectors)
            if len(buffers[n % 2]) < rows:
                buffers[n % 2] = np.empty((rows, dim), np.float32)
            with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf rows are reported below, not warned about
                compressed = head.transform(batch.vectors, dim, out=buffers[n % 2][:rows])
            _check_output(compressed, batch, where=f"{batch.path}, column {columns.embedding!r}")
            if pending is not None:
                pending.result()  # one write in flight, in order; re-raises its error here
            # the write overlaps the next batch's matmul; with O_DIRECT (direct=True above) it is mostly disk
            # time, not CPU taken from the matmul, and the output does not evict the mapped input from the cache
            pending = background.submit(writer.write, batch.id_array, compressed, batch.rest)
            if progress:
                progress(rows)
        if writer is None:
            raise SmecError(f"{input_path}: no rows to compress")
        pending.result()
    return writer.rows


def encode_file(
    head,
    input_path: str | Path,
    out_path: str | Path,
    *,
    budget: int,
    columns: Columns = Columns(),
    force: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Encode every full-dim vector of ``input_path`` with ``head``'s codec for ``budget`` into a
    codes file ``out_path`` (``data.codes``; atomic), ids and other columns kept. The same
    checks as ``compress_file`` come first: the budget, the dimension and embedder, NaN/inf rows."""
    from ..data.codes import CodeWriter, CodesMeta

    bc = head._codec(budget)  # before any reading or output
    meta = read_meta(input_path)
    out_meta = CodesMeta(meta, head.fingerprint, head.input_dim_, budget, bc.candidate.key, int(bc.codec.code_size_))
    with ExitStack() as stack:
        writer = None
        for batch in iter_batches(input_path, columns=columns, batch_rows=batch_rows):
            if writer is None:
                head.check_input(batch.vectors.shape[1], meta.fingerprint, force)
                writer = stack.enter_context(CodeWriter(out_path, out_meta.code_size, out_meta,
                                                        rest_schema=batch.rest.schema, columns=columns))
            writer.write(batch.id_array, head.encode(batch.vectors, budget=budget), batch.rest)
            if progress:
                progress(len(batch.vectors))
        if writer is None:
            raise SmecError(f"{input_path}: no rows to encode")
    return writer.rows


def _check_output(compressed: np.ndarray, batch, *, where: str) -> None:
    """Refuse the batch if an output row is not finite, naming the input rows at fault.

    A NaN or inf anywhere in an input row makes every coordinate of its output row NaN/inf
    (NaN * w is NaN; inf * w is inf, or NaN where w is 0; normalising by an infinite norm gives
    NaN), so checking one output column finds every bad input row at 1/D of the cost of
    checking the input.
    """
    if np.isfinite(compressed[:, 0]).all():
        return
    reject_nonfinite(batch.vectors, batch.id_array, where=where)
    raise SmecError(f"{where}: compressed vectors overflowed float32; input values are too large")


def _describe(schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema) or "none"

"""``--engine ray``: the same embed/compress jobs as Ray Data pipelines.

``read_parquet -> map_batches(callable class) -> write_parquet`` on a local Ray that the command
starts, or on an existing cluster given by ``--ray-address``. Each actor loads the head (or the
embedding model) once; batches stay Arrow tables end to end. The output is a directory of
Parquet files, written under a temporary name and renamed when the job has finished, which every
reader here treats as one dataset.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..data.atomic import atomic_dir, refuse_existing
from ..data.files import count_rows, dataset_files, is_arrow_ipc, read_meta
from ..data.io import Columns, iter_batches, vectors_from_arrow
from ..data.schema import EmbeddingMeta, compressed_meta, embedding_schema, vector_array
from ..errors import SmecError
from ..validation import reject_nonfinite


def parquet_files(input_path) -> list[Path]:
    """The dataset's files, which must all be Parquet: Ray Data reads those, not Arrow IPC."""
    files = dataset_files(input_path)
    arrow = [f for f in files if is_arrow_ipc(f)]
    if arrow:
        raise SmecError(f"{arrow[0]}: --engine ray reads Parquet only; use the local engine for Arrow IPC files "
                        "(it memory-maps them)")
    return files


class CompressBatch:
    """Ray actor: load the head once, then compress Arrow batches, keeping every other column."""

    def __init__(self, head_dir: str, dim: int, columns: Columns) -> None:
        from ..model.head import SMEC

        self.head = SMEC.load(head_dir)
        self.dim = dim
        self.columns = columns

    def __call__(self, table: pa.Table) -> pa.Table:
        """``[id (string), embedding[dim], other columns]``: the local engine's layout."""
        where = f"column {self.columns.embedding!r}"
        vectors = vectors_from_arrow(table.column(self.columns.embedding), where=where)
        ids = table.column(self.columns.id).cast(pa.string())
        reject_nonfinite(vectors, ids, where=where)
        rest = table.drop_columns([self.columns.id, self.columns.embedding])
        compressed = vector_array(self.head.transform(vectors, self.dim))
        return pa.Table.from_arrays([ids, compressed, *rest.columns], names=[self.columns.id, self.columns.embedding, *rest.column_names])


class EmbedBatch:
    """Ray actor: load the sentence-transformers model once, then embed Arrow batches of texts."""

    def __init__(self, model: str | None, batch_size: int, normalize: bool, id_column: str, text_column: str) -> None:
        from ..data.embed import Embedder

        self.embedder = Embedder(model)
        self.batch_size, self.normalize = batch_size, normalize
        self.id_column, self.text_column = id_column, text_column

    def __call__(self, table: pa.Table) -> pa.Table:
        texts = [t or "" for t in table.column(self.text_column).to_pylist()]
        vectors = self.embedder.encode(texts, batch_size=self.batch_size, normalize=self.normalize)
        ids = pa.array([str(x) for x in table.column(self.id_column).to_pylist()], pa.string())
        return pa.table({"id": ids, "embedding": vector_array(vectors)})


def _start(address: str | None):
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def _actors(ray) -> int:
    """One actor per cluster CPU but one, so read and write tasks always find a CPU to run on.

    Counted from the cluster's total, not what is free now: actors of a finished job are
    released lazily, and sizing from free CPUs could ask for zero and wait forever.
    """
    return max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)


def _write(ds, out_dir: Path, schema: pa.Schema) -> int:
    """Write to a sibling temp directory, then rename into place: no half-written output."""
    with atomic_dir(out_dir, overwrite=False) as tmp:
        ds.write_parquet(str(tmp), schema=schema)
    return count_rows(out_dir)


def compress_ray(head, head_dir, input_path, out_dir, *, dim: int, columns: Columns = Columns(),
                 force: bool = False, batch_rows: int = 65_536, address: str | None = None,
                 concurrency: int | None = None) -> int:
    """Compress with Ray Data; same checks and output columns and metadata as the local engine."""
    head.check_dim(dim, what="--dim")
    files = parquet_files(input_path)
    out_dir = Path(out_dir)
    refuse_existing(out_dir)
    first = next(iter_batches(input_path, columns=columns, batch_rows=1))  # validates columns and dim
    meta = read_meta(input_path)
    head.check_input(first.vectors.shape[1], meta.fingerprint, force)
    out_meta = compressed_meta(meta, head, dim)
    schema = embedding_schema(dim, out_meta, columns=columns, rest=first.rest.schema)
    ray = _start(address)
    ds = ray.data.read_parquet([str(f) for f in files])
    ds = ds.map_batches(
        CompressBatch, fn_constructor_kwargs={"head_dir": str(head_dir), "dim": dim, "columns": columns},
        batch_format="pyarrow", batch_size=batch_rows,
        compute=ray.data.ActorPoolStrategy(size=concurrency or _actors(ray)),
    )
    return _write(ds, out_dir, schema)


def first_file_schema(input_path) -> pa.Schema:
    import pyarrow.parquet as pq

    return pq.read_schema(parquet_files(input_path)[0])


def embed_ray(input_path, out_dir, *, model: str | None = None, batch_size: int = 64, normalize: bool = True,
              id_column: str = "id", text_column: str = "text", address: str | None = None,
              concurrency: int | None = None) -> int:
    """Embed a Parquet file (or directory) of texts with Ray Data, one model per actor."""
    from ..data.embed import Embedder

    files = parquet_files(input_path)
    names = first_file_schema(input_path).names
    for role, name in (("id", id_column), ("text", text_column)):
        if name not in names:
            raise SmecError(f"{files[0]}: no {role} column {name!r} (columns: {', '.join(names)})")
    out_dir = Path(out_dir)
    refuse_existing(out_dir)
    embedder = Embedder(model)
    meta: EmbeddingMeta = embedder.meta(normalize=normalize)
    schema = embedding_schema(meta.dim, meta)
    ray = _start(address)
    ds = ray.data.read_parquet([str(f) for f in files]).select_columns([id_column, text_column])
    ds = ds.map_batches(
        EmbedBatch, fn_constructor_kwargs={"model": model, "batch_size": batch_size, "normalize": normalize,
                                           "id_column": id_column, "text_column": text_column},
        batch_format="pyarrow", batch_size=1024, compute=ray.data.ActorPoolStrategy(size=concurrency or 1),  # one model per actor: heavy
    )
    return _write(ds, out_dir, schema)

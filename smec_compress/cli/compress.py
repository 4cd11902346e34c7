"""``compress`` (apply a head to a corpus) and ``index`` (a FAISS index over compressed vectors)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SmecError
from .app import app
from .common import EmbeddingColumn, Engine, EngineOption, IdColumn, RayAddress, out, progress_bar


@app.command()
def compress(
    head_dir: Annotated[Path, typer.Argument(help="A head saved by `fit`.")],
    input: Annotated[Path, typer.Argument(help="Embeddings to compress (.parquet/.arrow file or directory; .arrow is memory-mapped: several times faster).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet or .arrow (Arrow IPC), by its name; written atomically.")],
    dim: Annotated[Optional[int], typer.Option(help="Target dim; must be one the head was trained for.")] = None,
    byte_budget: Annotated[Optional[int], typer.Option("--budget", min=1, help="Instead of --dim: write each vector's code with the head's codec for this many bytes (a head fitted with --budgets): a binary 'code' column, the codec named in the file's metadata.")] = None,
    force: Annotated[bool, typer.Option(help="Apply even if the vectors come from another embedder than the head's.")] = False,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per streamed batch.")] = 65_536,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
    engine: EngineOption = Engine.local,
    ray_address: RayAddress = None,
) -> None:
    """Apply a head: stream vectors through it at one dim (or encode them with its codec for a
    byte budget), keep ids and other columns.

    With --engine ray, --out becomes a directory of Parquet files (one dataset).
    """
    from ..data.files import count_rows
    from ..data.schema import Columns
    from ..engines.local import compress_file
    from ..model.head import SMEC

    if (dim is None) == (byte_budget is None):
        raise SmecError("give --dim (float vectors) or --budget (the codec's bytes), not both or neither")
    head = SMEC.load(head_dir)
    columns = Columns(id_column, embedding_column)
    if byte_budget is not None:
        _encode(head, input, out_path, byte_budget, columns, force, batch_rows, engine)
        return
    head.check_dim(dim, what="--dim")  # before any reading or output
    if engine is Engine.ray:
        from ..engines.ray import compress_ray

        rows = compress_ray(head, head_dir, input, out_path, dim=dim, columns=columns, force=force, batch_rows=batch_rows,
                            address=ray_address)
        out.print(f"wrote {rows} x {dim} vectors to {out_path} (Ray Data)")
        return
    start = time.perf_counter()
    total = count_rows(input)
    with progress_bar() as bar:
        task = bar.add_task(f"compress to {dim} d", total=total)
        rows = compress_file(head, input, out_path, dim=dim, columns=columns, force=force, batch_rows=batch_rows,
                             progress=lambda n: bar.advance(task, n))
    seconds = time.perf_counter() - start
    out.print(f"wrote {rows} x {dim} vectors to {out_path} in {seconds:.1f}s ({rows / seconds:,.0f} vectors/s)")


def _encode(head, input: Path, out_path: Path, budget: int, columns, force: bool, batch_rows: int, engine) -> None:
    """``compress --budget``: the codes of every vector, with the progress and summary ``compress`` prints."""
    from ..data.files import count_rows
    from ..engines.local import encode_file

    if engine is not Engine.local:
        raise SmecError("--budget runs with --engine local (the codec phase is not distributed)")
    size = head._codec(budget).codec.code_size_  # an unknown budget is refused here, before reading
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"encode to {budget} B", total=count_rows(input))
        rows = encode_file(head, input, out_path, budget=budget, columns=columns, force=force, batch_rows=batch_rows,
                           progress=lambda n: bar.advance(task, n))
    seconds = time.perf_counter() - start
    out.print(f"wrote {rows} codes of {size} B ({head._codec(budget).candidate.key}) to {out_path} in {seconds:.1f}s")


@app.command()
def index(
    input: Annotated[Path, typer.Argument(help="Compressed embeddings (.parquet/.arrow file or directory), e.g. from `compress`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for index.faiss, ids.parquet and index.json.")],
    factory: Annotated[Optional[str], typer.Option(help="FAISS factory string [default: chosen from size and --max-memory].")] = None,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Memory budget of the index, e.g. 512M, 4G [default: 4G].")] = None,
    head_dir: Annotated[Optional[Path], typer.Option("--head", help="With --budget: a head fitted with --budgets; INPUT is then the full-dim corpus.")] = None,
    byte_budget: Annotated[Optional[int], typer.Option("--budget", min=1, help="Index with the head's codec for this many bytes a vector: one FAISS index that takes raw full-dim vectors and queries (above 1M rows, inverted lists of the same codes, nprobe 32).")] = None,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
) -> None:
    """Build a FAISS inner-product index over compressed vectors (Flat -> HNSW -> IVF-PQ by budget),
    or, with --head and --budget, over the full-dim corpus encoded by the head's budget codec."""
    from ..data.files import count_rows
    from ..data.schema import Columns
    from ..export.index import build_index
    from ..resources import parse_bytes

    if (head_dir is None) != (byte_budget is None):
        raise SmecError("--head and --budget go together: the head's codec for that budget indexes the full-dim corpus")
    if byte_budget is not None and (factory is not None or max_memory is not None):
        raise SmecError("--budget makes the head's codec the whole index (an exact scan of its codes; above "
                        "1,000,000 rows inverted lists of the same codes): drop --factory/--max-memory")
    budget = parse_bytes(max_memory or "4G")
    total = count_rows(input)
    columns = Columns(id_column, embedding_column)
    if byte_budget is not None:
        from ..export.budget_index import budget_index, build_budget_index
        from ..model.head import SMEC

        head = SMEC.load(head_dir)
        budget_index(head, byte_budget)  # an unknown budget or a sign-bit codec fails before any bar
    with progress_bar() as bar:
        task = bar.add_task("index", total=total)
        if byte_budget is not None:
            stats = build_budget_index(head, input, out_dir, budget=byte_budget, columns=columns,
                                       progress=lambda n: bar.advance(task, n))
        else:
            stats = build_index(input, out_dir, factory=factory, max_memory=budget, columns=columns,
                                progress=lambda n: bar.advance(task, n))
    out.print(f"{stats.index_type} index of {stats.count} x {stats.dim} vectors written to {out_dir}")

"""The ``smec-compress`` command: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import SmecError

app = typer.Typer(
    name="smec-compress",
    help="Learned compression of frozen retrieval embeddings (SMEC).\n\n"
    "Flow: embed (texts -> Parquet) -> fit (train a head) -> compress / eval (apply at any trained dim).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

IdColumn = Annotated[str, typer.Option("--id-column", help="Name of the id column in Parquet input.")]
EmbeddingColumn = Annotated[str, typer.Option("--embedding-column", help="Name of the vector column in Parquet input.")]
class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOption = Annotated[
    Engine, typer.Option(help="local: stream in this process. ray: a Ray Data pipeline (local Ray, or --ray-address).")
]
RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join (default: start a local Ray).")]
ModelOption = Annotated[
    Optional[Path], typer.Option("--model", help="Local sentence-transformers folder. Default: bundled all-MiniLM-L6-v2.")
]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def parse_dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SmecError(f"--dims {text!r}: expected comma-separated integers such as 128,64,32") from None
    if not dims:
        raise SmecError("--dims is empty: give at least one target dim, e.g. --dims 64,32")
    return dims


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Options that apply to every command."""


@app.command()
def embed(
    input: Annotated[Path, typer.Argument(help="BEIR directory, .jsonl(.gz) with _id/id + text, or .parquet with a text column.")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet (or .arrow: Arrow IPC, fastest to compress from). For a BEIR directory the queries go beside it as NAME.queries.parquet (.arrow).")],
    model: ModelOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 64,
    normalize: Annotated[bool, typer.Option(help="L2-normalise vectors (cosine search).")] = True,
    id_column: IdColumn = "id",
    text_column: Annotated[str, typer.Option("--text-column", help="Text column of Parquet input.")] = "text",
    engine: EngineOption = Engine.local,
    ray_address: RayAddress = None,
) -> None:
    """Embed texts with a frozen sentence-transformers model into Parquet (id + embedding).

    With --engine ray, INPUT is Parquet with id and text columns and --out becomes a directory of
    Parquet files (one dataset).
    """
    from .embed import Embedder, embed_source, output_paths, text_sources
    from .io import Columns

    if engine is Engine.ray:
        from .ray_engine import embed_ray

        rows = embed_ray(input, out_path, model=str(model) if model else None, batch_size=batch_size, normalize=normalize,
                         id_column=id_column, text_column=text_column, address=ray_address)
        out.print(f"wrote {rows} vectors to {out_path} (Ray Data)")
        return
    sources = text_sources(input, columns=Columns(id=id_column), text_column=text_column)
    targets = output_paths(out_path, list(sources))
    embedder = Embedder(model)
    with progress_bar() as bar:
        for role, source in sources.items():
            task = bar.add_task(f"embed {role}", total=source.total)
            rows = embed_source(
                embedder, source, targets[role], batch_size=batch_size, normalize=normalize,
                progress=lambda n, t=task: bar.advance(t, n),
            )
            bar.console.print(f"wrote {rows} x {embedder.dim} vectors to {targets[role]}")


@app.command()
def fit(
    embeddings: Annotated[Path, typer.Argument(help="Corpus embeddings (.parquet/.arrow file or directory).")],
    head_dir: Annotated[Path, typer.Option("--out", help="Directory to save the fitted head in.")],
    dims: Annotated[str, typer.Option(help="Target dims, strictly decreasing, each below the input dim.")] = "128,64,48,32,16",
    queries: Annotated[Optional[Path], typer.Option(help="Query embeddings for supervised fitting (with --qrels).")] = None,
    qrels: Annotated[Optional[Path], typer.Option(help="TSV query-id, corpus-id, score: the training pairs.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs per stage (default: the head's default).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Cap on training steps (batches) per stage, so big samples train in bounded time (default: the head's default, 2000).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same head.")] = 0,
    sample_rows: Annotated[int, typer.Option("--sample-rows", min=1, help="Train on a uniform sample of at most this many corpus rows (bounded memory).")] = 1_000_000,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
) -> None:
    """Train a SMEC head on frozen vectors (unsupervised; supervised with --queries and --qrels).

    Corpora larger than --sample-rows are sampled uniformly in one streaming pass; with --qrels
    the judged documents are always kept in the sample.
    """
    from .beir import read_qrels
    from .head import SMEC
    from .io import Columns, count_rows, read_embeddings
    from .sampling import sample_embeddings
    from .training_data import training_pairs

    columns = Columns(id_column, embedding_column)
    if (queries is None) != (qrels is None):
        raise SmecError("supervised fitting needs both --queries and --qrels")
    keep = {d for rel in read_qrels(qrels).values() for d in rel} if qrels is not None else set()
    with progress_bar() as bar:
        task = bar.add_task("read corpus", total=count_rows(embeddings))
        corpus, total = sample_embeddings(
            embeddings, sample_rows, seed=seed, columns=columns, keep_ids=keep, progress=lambda n: bar.advance(task, n)
        )
    if total > len(corpus.ids):
        err.print(f"training on a uniform sample of {len(corpus.ids):,} of {total:,} rows (--sample-rows)")
    kwargs = {"dims": parse_dims(dims), "seed": seed}
    if epochs is not None:
        kwargs["epochs_per_stage"] = epochs
    if max_steps is not None:
        kwargs["max_steps_per_stage"] = max_steps
    fit_args: dict = {}
    if queries is not None:
        q_vectors, positives, report = training_pairs(corpus, read_embeddings(queries, columns=columns), qrels)
        err.print(report)
        fit_args = {"queries": q_vectors, "positives": positives}
    start = time.perf_counter()
    head = SMEC(**kwargs).fit(corpus.vectors, embedder_fingerprint=corpus.meta.fingerprint, **fit_args)
    head.save(head_dir)
    out.print(
        f"fitted dims {','.join(map(str, head.dims_))} on {len(corpus.ids)} x {corpus.dim} vectors "
        f"in {time.perf_counter() - start:.1f}s; saved to {head_dir}"
    )


@app.command()
def compress(
    head_dir: Annotated[Path, typer.Argument(help="A head saved by `fit`.")],
    input: Annotated[Path, typer.Argument(help="Embeddings to compress (.parquet/.arrow file or directory; .arrow is memory-mapped: several times faster than .parquet).")],
    dim: Annotated[int, typer.Option(help="Target dim; must be one the head was trained for.")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet or .arrow (Arrow IPC), by its name; written atomically.")],
    force: Annotated[bool, typer.Option(help="Apply even if the vectors come from another embedder than the head's.")] = False,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per streamed batch.")] = 65_536,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
    engine: EngineOption = Engine.local,
    ray_address: RayAddress = None,
) -> None:
    """Apply a head: stream vectors through it at one dim, keep ids and other columns.

    With --engine ray, --out becomes a directory of Parquet files (one dataset).
    """
    from .head import SMEC
    from .io import Columns, count_rows
    from .streaming import compress_file

    head = SMEC.load(head_dir)
    if engine is Engine.ray:
        from .ray_engine import compress_ray

        rows = compress_ray(head, head_dir, input, out_path, dim=dim, columns=Columns(id_column, embedding_column),
                            force=force, batch_rows=batch_rows, address=ray_address)
        out.print(f"wrote {rows} x {dim} vectors to {out_path} (Ray Data)")
        return
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"compress to {dim} d", total=count_rows(input))
        rows = compress_file(
            head, input, out_path, dim=dim, columns=Columns(id_column, embedding_column), force=force,
            batch_rows=batch_rows, progress=lambda n: bar.advance(task, n),
        )
    seconds = time.perf_counter() - start
    out.print(f"wrote {rows} x {dim} vectors to {out_path} in {seconds:.1f}s ({rows / seconds:,.0f} vectors/s)")


@app.command("eval")
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="BEIR directory, or a corpus .parquet/.arrow from `embed` (queries beside it) with --qrels.")],
    head_dir: Annotated[Optional[Path], typer.Option("--head", help="An unsupervised head saved by `fit`.")] = None,
    sup_head_dir: Annotated[Optional[Path], typer.Option("--supervised-head", help="A head fitted with training qrels (also scored on held-out queries).")] = None,
    fit_smec: Annotated[bool, typer.Option("--fit-smec", help="Fit SMEC heads here on the corpus: unsupervised, plus supervised when training qrels exist.")] = False,
    dims: Annotated[str, typer.Option(help="Dims to compare at (also the byte budgets of PQ/OPQ).")] = "16,32,48,64,96,128",
    model: ModelOption = None,
    split: Annotated[str, typer.Option(help="Qrels split of a BEIR directory (qrels/SPLIT.tsv).")] = "test",
    qrels: Annotated[Optional[Path], typer.Option(help="Qrels TSV (overrides --split).")] = None,
    train_qrels: Annotated[Optional[Path], typer.Option("--train-qrels", help="Training qrels (default: qrels/train.tsv of a BEIR directory).")] = None,
    adaptor: Annotated[bool, typer.Option(help="Include the Matryoshka-Adaptor baseline (trains a small MLP).")] = True,
    quantizers: Annotated[bool, typer.Option(help="Include int8, binary, PQ and OPQ rows.")] = True,
    report_dir: Annotated[Optional[Path], typer.Option("--out", help="Write report.json, report.md and quality.png here.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache (default $SMEC_CACHE_DIR or ~/.cache/smec-compress).")] = None,
    force: Annotated[bool, typer.Option(help="Use a head even if it was fitted on another embedder.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of random projection, the adaptor, codecs and fitted heads.")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for FAISS and torch (default: all cores).")] = None,
) -> None:
    """Retrieval quality per dim and per byte: full vectors, truncation, PCA, random projection,
    Matryoshka-Adaptor, SMEC, and int8 / binary / PQ / OPQ alone and stacked on PCA or SMEC."""
    from .beir import is_beir_dir
    from .cache import default_cache_dir
    from .compare import check_head, compare, fit_reducers, header, plan, row_cells, write_report
    from .evalset import check_qrels, heldout_queries, load_evalset
    from .evaluate import select_queries

    target_dims = parse_dims(dims)
    if threads is not None:
        import faiss
        import torch

        faiss.omp_set_num_threads(threads)
        torch.set_num_threads(threads)
    if fit_smec and (head_dir or sup_head_dir):
        raise SmecError("--fit-smec fits its own heads; drop --head/--supervised-head, or drop --fit-smec")
    with progress_bar() as bar:
        verb = "embed" if is_beir_dir(dataset) else "read"  # a BEIR directory is embedded (or read from the cache)
        tasks = {role: bar.add_task(f"{verb} {role}", total=None) for role in ("corpus", "queries")}
        data = load_evalset(
            dataset, qrels_path=qrels, split=split, model=model, cache_dir=cache_dir or default_cache_dir(),
            train_qrels_path=train_qrels, progress={role: (lambda n, t=t: bar.advance(t, n)) for role, t in tasks.items()},
        )
        for role, task in tasks.items():
            bar.update(task, total=len(getattr(data, role).ids), completed=len(getattr(data, role).ids))
    for warning in check_qrels(data.qrels, data.corpus, data.queries):
        err.print(f"[yellow]warning:[/] {warning}")
    corpus, selection = data.corpus, select_queries(list(data.queries.ids), data.qrels)
    if selection.skipped_without_qrels:
        err.print(f"{selection.skipped_without_qrels} of {len(data.queries.ids)} queries have no judgements in these qrels (skipped)")
    heads = {}
    if head_dir or sup_head_dir:
        from .head import SMEC

        heads = {name: SMEC.load(path) for name, path in (("smec", head_dir), ("smec-sup", sup_head_dir)) if path}
        for name, head in heads.items():
            check_head(head, corpus, target_dims, force=force, label=f"--{'head' if name == 'smec' else 'supervised-head'}")
    heldout = heldout_queries(data.qrels, data.train_qrels) if data.train_qrels else None
    if sup_head_dir and heldout is None:
        err.print("[yellow]warning:[/] no training qrels known (--train-qrels): the supervised head's score may be inflated")
    with progress_bar() as bar:
        task = bar.add_task("fit baselines", total=None)
        reducers = fit_reducers(corpus.vectors, target_dims, adaptor=adaptor, seed=seed)
        if fit_smec:
            from .compare import fit_smec_heads

            bar.update(task, description="fit SMEC")
            heads = fit_smec_heads(corpus, data.queries, data.train_qrels_path, target_dims, seed=seed)
        reducers.update(heads)
        methods = plan(
            corpus.dim, target_dims, reducers, stacked=["pca", *heads], quantizers=quantizers,
            supervised=[n for n in heads if n.endswith("-sup")],
        )
        bar.update(task, description="score", total=len(methods), completed=0)
        rows = compare(
            corpus, data.queries, data.qrels, methods, reducers, heldout=heldout, seed=seed,
            on_row=lambda row: bar.advance(task),
        )
    title = f"{dataset.name}: {len(selection.query_ids)} judged queries, {len(corpus.ids)} docs"
    if heldout is not None:
        title += f", {len(heldout)} held out from training qrels"
    table = Table(title=title)
    for name in header(rows):
        table.add_column(name, justify="left" if name == "method" else "right")
    for row in rows:
        table.add_row(*row_cells(row, heldout=heldout is not None))
    out.print(table)
    if report_dir is not None:
        from .plot import plot_quality

        info = {"dataset": str(dataset), "model": data.model, "docs": len(corpus.ids), "judged_queries": len(selection.query_ids),
                "heldout_queries": None if heldout is None else len(heldout), "dims": list(target_dims), "seed": seed}
        write_report(rows, report_dir, info=info)
        plot_quality(rows, report_dir / "quality.png", title=title)
        out.print(f"report written to {report_dir} (report.json, report.md, quality.png)")


@app.command()
def index(
    input: Annotated[Path, typer.Argument(help="Compressed embeddings (.parquet/.arrow file or directory), e.g. from `compress`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for index.faiss, ids.parquet and index.json.")],
    factory: Annotated[Optional[str], typer.Option(help="FAISS factory string (default: chosen from size and --max-memory).")] = None,
    max_memory: Annotated[str, typer.Option("--max-memory", help="Memory budget of the index, e.g. 512M, 4G.")] = "4G",
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
) -> None:
    """Build a FAISS inner-product index over compressed vectors (Flat -> HNSW -> IVF-PQ by budget)."""
    from .index import build_index, parse_bytes
    from .io import Columns, count_rows

    budget = parse_bytes(max_memory)
    with progress_bar() as bar:
        task = bar.add_task("index", total=count_rows(input))
        info = build_index(
            input, out_dir, factory=factory, max_memory=budget, columns=Columns(id_column, embedding_column),
            progress=lambda n: bar.advance(task, n),
        )
    out.print(f"{info.factory} index of {info.count} x {info.dim} vectors written to {out_dir}")


@app.command()
def serve(
    head_dir: Annotated[Optional[Path], typer.Option("--head", help="Head to serve (env SMEC_HEAD_DIR).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Where documents and indexes persist (env SMEC_DATA_DIR).")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Run the HTTP service (compress, search, documents); other settings come from SMEC_* env vars."""
    from service.app import serve as run_service

    overrides = {k: v for k, v in {"head_dir": head_dir, "data_dir": data_dir}.items() if v is not None}
    run_service(host=host, port=port, **overrides)


@app.command()
def reindex(
    head_dir: Annotated[Path, typer.Option("--head", help="The (new) head to index with.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The service's data directory (stop the server first).")],
) -> None:
    """Rebuild the service's indexes from its stored full vectors with HEAD (index settings from SMEC_* env vars)."""
    from service.settings import Settings
    from service.store import reindex as rebuild

    from .head import SMEC

    s = Settings(head_dir=head_dir, data_dir=data_dir)
    store = rebuild(
        data_dir, SMEC.load(head_dir), dims=tuple(s.dims) if s.dims else None, factories=s.index_factories,
        default_factory=s.index_factory, index_params=s.index_params, index_min_rows=s.index_min_rows, fsync=s.fsync,
    )
    count, dims = len(store), list(store.dims)
    store.close()
    out.print(f"reindexed {count} documents in {data_dir} at dims {dims} with head {head_dir}")


def user_message(exc: SmecError | MemoryError | OSError) -> str:
    """The one-line message for an error the user can fix (anything else is a bug: traceback)."""
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller --sample-rows or --batch-rows"
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}"
    return str(exc)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (traceback with --debug)."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; no partial output was kept")
        sys.exit(130)
    except (SmecError, MemoryError, OSError) as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {user_message(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)

"""The ``smec-compress`` command: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
import time
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
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet. For a BEIR directory the queries go beside it as NAME.queries.parquet.")],
    model: ModelOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 64,
    normalize: Annotated[bool, typer.Option(help="L2-normalise vectors (cosine search).")] = True,
    id_column: IdColumn = "id",
    text_column: Annotated[str, typer.Option("--text-column", help="Text column of Parquet input.")] = "text",
) -> None:
    """Embed texts with a frozen sentence-transformers model into Parquet (id + embedding)."""
    from .embed import Embedder, embed_source, output_paths, text_sources
    from .io import Columns

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
    embeddings: Annotated[Path, typer.Argument(help="Corpus embeddings (.parquet file or directory).")],
    head_dir: Annotated[Path, typer.Option("--out", help="Directory to save the fitted head in.")],
    dims: Annotated[str, typer.Option(help="Target dims, strictly decreasing, each below the input dim.")] = "128,64,48,32,16",
    queries: Annotated[Optional[Path], typer.Option(help="Query embeddings for supervised fitting (with --qrels).")] = None,
    qrels: Annotated[Optional[Path], typer.Option(help="TSV query-id, corpus-id, score: the training pairs.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs per stage (default: the head's default).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same head.")] = 0,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
) -> None:
    """Train a SMEC head on frozen vectors (unsupervised; supervised with --queries and --qrels)."""
    from .io import Columns, read_embeddings
    from .training_data import training_pairs

    from .head import SMEC

    columns = Columns(id_column, embedding_column)
    corpus = read_embeddings(embeddings, columns=columns)
    kwargs = {"dims": parse_dims(dims), "seed": seed}
    if epochs is not None:
        kwargs["epochs_per_stage"] = epochs
    fit_args: dict = {}
    if (queries is None) != (qrels is None):
        raise SmecError("supervised fitting needs both --queries and --qrels")
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
    input: Annotated[Path, typer.Argument(help="Embeddings to compress (.parquet file or directory).")],
    dim: Annotated[int, typer.Option(help="Target dim; must be one the head was trained for.")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet (written atomically).")],
    force: Annotated[bool, typer.Option(help="Apply even if the vectors come from another embedder than the head's.")] = False,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per streamed batch.")] = 65_536,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
) -> None:
    """Apply a head: stream vectors through it at one dim, keep ids and other columns."""
    from .head import SMEC
    from .io import Columns
    from .streaming import compress_file

    head = SMEC.load(head_dir)
    with progress_bar() as bar:
        task = bar.add_task(f"compress to {dim} d", total=None)
        rows = compress_file(
            head, input, out_path, dim=dim, columns=Columns(id_column, embedding_column), force=force,
            batch_rows=batch_rows, progress=lambda n: bar.advance(task, n),
        )
    out.print(f"wrote {rows} x {dim} vectors to {out_path}")


@app.command("eval")
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="BEIR directory, or a corpus .parquet from `embed` (queries beside it) with --qrels.")],
    head_dir: Annotated[Optional[Path], typer.Option("--head", help="A head saved by `fit` to compare.")] = None,
    dims: Annotated[str, typer.Option(help="Dims to compare at.")] = "16,32,48,64",
    model: ModelOption = None,
    split: Annotated[str, typer.Option(help="Qrels split of a BEIR directory (qrels/SPLIT.tsv).")] = "test",
    qrels: Annotated[Optional[Path], typer.Option(help="Qrels TSV (overrides --split).")] = None,
    report_dir: Annotated[Optional[Path], typer.Option("--out", help="Write report.json and report.md here.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache (default $SMEC_CACHE_DIR or ~/.cache/smec-compress).")] = None,
    force: Annotated[bool, typer.Option(help="Use the head even if it was fitted on another embedder.")] = False,
) -> None:
    """Retrieval quality (nDCG@10, Recall@100) of full vectors, truncation, PCA, random projection and SMEC."""
    from .baselines import PCA, RandomProjection, Truncation
    from .cache import default_cache_dir
    from .compare import HEADER, compare, row_cells, write_report
    from .evalset import check_qrels, load_evalset

    target_dims = parse_dims(dims)
    with progress_bar() as bar:
        tasks = {role: bar.add_task(f"embed {role}", total=None) for role in ("corpus", "queries")}
        data = load_evalset(
            dataset, qrels_path=qrels, split=split, model=model, cache_dir=cache_dir or default_cache_dir(),
            progress={role: (lambda n, t=t: bar.advance(t, n)) for role, t in tasks.items()},
        )
        for role, task in tasks.items():
            bar.update(task, total=len(getattr(data, role).ids), completed=len(getattr(data, role).ids))
    for warning in check_qrels(data.qrels, data.corpus, data.queries):
        err.print(f"[yellow]warning:[/] {warning}")
    corpus = data.corpus
    reducers = {
        "truncation": Truncation().fit(corpus.vectors),
        "random": RandomProjection().fit(corpus.vectors),
        "pca": PCA().fit(corpus.vectors),
    }
    if head_dir is not None:
        from .head import SMEC

        head = SMEC.load(head_dir)
        head.check_input(corpus.dim, corpus.meta.fingerprint, force)
        missing = sorted(set(target_dims) - set(head.dims_), reverse=True)
        if missing:
            raise SmecError(f"the head has no dims {missing}; trained dims: {list(head.dims_)} (pick --dims among them)")
        reducers["smec"] = head
    rows = compare(corpus, data.queries, data.qrels, list(target_dims), reducers)
    judged = sum(q in data.qrels for q in data.queries.ids)
    table = Table(title=f"{dataset.name}: {judged} judged queries, {len(corpus.ids)} docs")
    for name in HEADER:
        table.add_column(name, justify="left" if name == "method" else "right")
    for row in rows:
        table.add_row(*row_cells(row))
    out.print(table)
    if report_dir is not None:
        write_report(rows, report_dir, info={"dataset": str(dataset), "model": data.model, "judged_queries": judged})
        out.print(f"report written to {report_dir}")


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


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (traceback with --debug)."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except SmecError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {exc.filename or ''}: {exc.strerror or exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; no partial output was kept")
        sys.exit(130)

"""``eval``: every compressor side by side on one dataset, as a table (and report files)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import SmecError
from .app import app
from .common import DocumentPrompt, ModelOption, QueryPrompt, err, out, parse_dims, progress_bar


@app.command("eval")
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="BEIR directory, or a corpus .parquet/.arrow from `embed` (queries beside it) with --qrels.")],
    head_dir: Annotated[Optional[Path], typer.Option("--head", help="An unsupervised head saved by `fit`.")] = None,
    sup_head_dir: Annotated[Optional[Path], typer.Option("--supervised-head", help="A head fitted with training qrels (also scored on held-out queries).")] = None,
    fit_smec: Annotated[bool, typer.Option("--fit-smec", help="Fit SMEC heads here on the corpus: unsupervised, plus supervised when training qrels exist.")] = False,
    dims: Annotated[str, typer.Option(help="Dims to compare at (also the byte budgets of PQ/OPQ).")] = "16,32,48,64,96,128",
    budgets: Annotated[str, typer.Option(help="Byte budgets per vector: RaBitQ, re-ranked sign bits and PQ/OPQ at each, and the best method within each.")] = "16,32,48,64",
    model: ModelOption = None,
    split: Annotated[str, typer.Option(help="Qrels split of a BEIR directory (qrels/SPLIT.tsv).")] = "test",
    qrels: Annotated[Optional[Path], typer.Option(help="Qrels TSV (overrides --split).")] = None,
    train_qrels: Annotated[Optional[Path], typer.Option("--train-qrels", help="Training qrels [default: qrels/train.tsv of a BEIR directory].")] = None,
    adaptor: Annotated[bool, typer.Option(help="Include the Matryoshka-Adaptor baseline (trains a small MLP).")] = True,
    quantizers: Annotated[bool, typer.Option(help="Include int8, binary, PQ and OPQ rows.")] = True,
    report_dir: Annotated[Optional[Path], typer.Option("--out", help="Write report.json, report.md and quality.png here.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache [default: $SMEC_CACHE_DIR or ~/.cache/smec-compress].")] = None,
    force: Annotated[bool, typer.Option(help="Use a head even if it was fitted on another embedder.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of random projection, the adaptor, codecs and fitted heads.")] = 0,
    query_prompt: QueryPrompt = None,
    document_prompt: DocumentPrompt = None,
    rescore: Annotated[int, typer.Option(min=0, max=10_000, help="Also score every reducer and codec with its top N candidates rescored by the full vectors (two-stage search; 0: off).")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for FAISS and torch [default: all cores].")] = None,
    bootstrap: Annotated[int, typer.Option(min=0, max=100_000, help="Paired bootstrap 95% intervals with this many resamples of the judged queries (seeded by --seed): each SMEC head minus the strongest of PCA, centred PCA and truncation per dim, and each head's budget codec minus the best quantiser that fits (0: off).")] = 0,
) -> None:
    """Retrieval quality per dim and per byte: full vectors, truncation, PCA, random projection,
    Matryoshka-Adaptor, SMEC, and int8 / binary / PQ / OPQ alone and stacked on PCA or SMEC;
    per byte budget RaBitQ and re-ranked sign bits on PCA, and the best method within each."""
    from ..data.beir import is_beir_dir
    from ..evaluation.cache import default_cache_dir
    from ..data.embed import Prompts
    from ..evaluation.evalset import check_source, load_evalset
    from ..evaluation.report import best_within, budget_cells, budget_header, header, row_cells, short, write_report
    from ..evaluation.run import check_head, run_comparison
    from ..model.head import SMEC

    target_dims = parse_dims(dims)
    target_budgets = parse_dims(budgets, "--budgets")
    if fit_smec and (head_dir or sup_head_dir):
        raise SmecError("--fit-smec fits its own heads; drop --head/--supervised-head, or drop --fit-smec")
    check_source(dataset, qrels_path=qrels, prompts=Prompts(query_prompt, document_prompt))  # before any bar: a missing --qrels is the only output
    heads = {name: SMEC.load(path) for name, path in (("smec", head_dir), ("smec-sup", sup_head_dir)) if path}
    if threads is not None:
        import faiss
        import torch

        faiss.omp_set_num_threads(threads)
        torch.set_num_threads(threads)
    with progress_bar() as bar:
        verb = "embed" if is_beir_dir(dataset) else "read"  # a BEIR directory is embedded (or read from the cache)
        tasks = {role: bar.add_task(f"{verb} {role}", total=None) for role in ("corpus", "queries")}
        data = load_evalset(
            dataset, qrels_path=qrels, split=split, model=model, cache_dir=cache_dir or default_cache_dir(),
            train_qrels_path=train_qrels, progress={role: (lambda n, t=t: bar.advance(t, n)) for role, t in tasks.items()},
            prompts=Prompts(query_prompt, document_prompt),
        )
        for role, task in tasks.items():
            bar.update(task, total=len(getattr(data, role).ids), completed=len(getattr(data, role).ids))
    for name, head in heads.items():
        label = f"--{'head' if name == 'smec' else 'supervised-head'}"
        for warning in check_head(head, data.corpus, target_dims, force=force, label=label, judged=data.qrels):
            err.print(f"[yellow]warning:[/] {warning}")
    if sup_head_dir and data.train_qrels is None:
        err.print("[yellow]warning:[/] no training qrels known (--train-qrels): the supervised head's score may be inflated")
    with progress_bar() as bar:
        task = bar.add_task("fit baselines", total=None)
        result = run_comparison(
            data, target_dims, budgets=target_budgets, heads=heads, fit_smec=fit_smec, adaptor=adaptor, quantizers=quantizers, seed=seed,
            rescore=rescore,
            on_stage=lambda description, total: bar.update(task, description=description, total=total, completed=0),
            on_row=lambda row: bar.advance(task),
        )
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    if result.skipped_queries:
        err.print(f"{result.skipped_queries} of {len(data.queries.ids)} queries have no judgements in these qrels (skipped)")
    title = f"{dataset.name}: {result.judged_queries} judged queries, {len(data.corpus.ids)} docs"
    if result.heldout is not None:
        title += f", {len(result.heldout)} held out from training qrels"
    table = Table(title=title)
    for name in short(header(result.rows)):
        method = name == "method"  # long names (pca+rabitq-unrotated-2bit) wrap instead of being cut off
        table.add_column(name, justify="left" if method else "right", overflow="fold" if method else "ellipsis")
    for row in result.rows:
        table.add_row(*row_cells(row, heldout=result.heldout is not None))
    out.print(table)
    ranked_by = budget_header(result.rows)[4]
    best = Table(title=f"best within each byte budget (by {ranked_by})")
    for name in short(budget_header(result.rows)):
        method = name == "best method"
        best.add_column(name, justify="left" if method else "right", overflow="fold" if method else "ellipsis")
    for budget, row in best_within(result.rows, target_budgets):
        best.add_row(*budget_cells(budget, row, result.rows))
    out.print(best)
    intervals = _bootstrap(result, list(heads) or (["smec", "smec-sup"] if fit_smec else []), target_budgets, bootstrap, seed)
    if report_dir is not None:
        from ..evaluation.plot import plot_quality

        info = {"dataset": str(dataset), "model": data.model, "docs": len(data.corpus.ids),
                "judged_queries": result.judged_queries, "dims": list(target_dims), "budgets": list(target_budgets), "seed": seed,
                "rescore": rescore,
                "heldout_queries": None if result.heldout is None else len(result.heldout),
                "bootstrap": [asdict(i) for i in intervals], "bootstrap_resamples": bootstrap}
        write_report(result.rows, report_dir, info=info, budgets=target_budgets)
        plot_quality(result.rows, report_dir / "quality.png", title=title)
        out.print(f"report written to {report_dir} (report.json, report.md, quality.png)")


def _bootstrap(result, heads: list[str], budgets: list[int], resamples: int, seed: int) -> list:
    """Print (and return) the paired-bootstrap intervals of ``evaluation.bootstrap`` (none when off)."""
    if not resamples:
        return []
    from ..evaluation.bootstrap import against_quantisers, against_simple
    from ..evaluation.run import REDUCERS

    heads = [h for h in heads if any(r.method == h for r in result.rows)]
    intervals = against_simple(result.rows, result.per_query, heads, resamples=resamples, seed=seed)
    intervals += against_quantisers(result.rows, result.per_query, heads, budgets, float_methods=[*REDUCERS, *heads],
                                    resamples=resamples, seed=seed)
    table = Table(title=f"paired bootstrap, {resamples} resamples of {result.judged_queries} queries: nDCG@10 difference, 95% interval")
    for name in ("ours", "minus", "dim / bytes", "difference", "95% interval", "verdict"):
        table.add_column(name, justify="left" if name in ("ours", "minus", "verdict") else "right", overflow="fold")
    for i in intervals:
        at = f"{i.dim} d" if i.dim is not None else f"<= {i.budget} B"
        table.add_row(i.ours, i.theirs, at, f"{i.diff:+.4f}", f"[{i.low:+.4f}, {i.high:+.4f}]", i.verdict)
    if intervals:
        out.print(table)
    else:
        err.print("[yellow]warning:[/] --bootstrap: no SMEC head in this comparison (give --head or --fit-smec)")
    return intervals

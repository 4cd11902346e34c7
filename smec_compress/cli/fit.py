"""``fit``: train a head on a (sampled) corpus, with a progress bar per training stage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SmecError
from .app import app
from .common import EmbeddingColumn, IdColumn, err, out, parse_dims, progress_bar


class StageBars:
    """The library's per-step progress callback drawn as one rich bar per stage: steps done of
    the stage's total, time per step, loss, elapsed time and the stage's ETA."""

    def __init__(self, bar) -> None:
        self.bar, self.task, self.stage, self.start = bar, None, None, 0.0

    def __call__(self, p) -> None:  # p: model.train.FitProgress
        if p.stage != self.stage:
            self.stage, self.start = p.stage, time.perf_counter()
            self.task = self.bar.add_task(f"train {p.stage}", total=p.total)
        per_step = (time.perf_counter() - self.start) / p.step
        self.bar.update(self.task, completed=p.step,
                        description=f"train {p.stage} ({per_step * 1000:.0f} ms/step, loss {p.loss:.4f})")


class CodecBars:
    """``fit --budgets``' progress: one bar per budget over its codec candidates, naming the one
    measured last and its recall."""

    def __init__(self, bar, totals: dict[int, int]) -> None:
        self.bar, self.totals, self.tasks = bar, totals, {}

    def __call__(self, budget: int, candidate, recall: float) -> None:
        if budget not in self.tasks:
            self.tasks[budget] = self.bar.add_task(f"codec for {budget} B", total=self.totals[budget])
        self.bar.update(self.tasks[budget], advance=1,
                        description=f"codec for {budget} B ({candidate.key}: recall@10 {recall:.3f})")


def report_choices(head) -> None:
    """One line per budget: what was chosen, its criterion, the runner-up's, and for a codec
    trained in the loop the criterion of the blind stack it started from."""
    from ..codecs.budget import MAPPED, blind_twin

    for budget, bc in head.codecs_.items():
        ranked = sorted(bc.choice.recall.items(), key=lambda kv: -kv[1])
        line = f"{budget} B: {bc.candidate.key}, {bc.codec.code_size_} B stored, recall@10 {ranked[0][1]:.3f}"
        if len(ranked) > 1:
            line += f" (next: {ranked[1][0]} {ranked[1][1]:.3f}; {len(ranked)} candidates)"
        if bc.candidate.codec in MAPPED and (blind := blind_twin(bc.candidate).key) in bc.choice.recall:
            line += f"; trained in the loop, blind {bc.choice.recall[blind]:.3f}"
        out.print(line)


def report_supervision(head) -> None:
    """Per dim, which map a gated supervised fit kept and the held-back scores that decided it."""
    s = head.supervision_
    if not s:
        return
    from ..model.head import VALIDATION_HELD_BACK

    checked_on = s.get("validation", VALIDATION_HELD_BACK)  # heads saved before validation pairs existed
    out.print(f"supervision checked on {s['held_out_queries']} {checked_on} (nDCG@10, supervised vs unsupervised):")
    for d in head.dims_:
        sup, unsup = s["ndcg10_supervised"].get(str(d)), s["ndcg10_unsupervised"][str(d)]
        kept = "supervised" if d in s["supervised_dims"] else "unsupervised"
        out.print(f"  {d} d: {kept} kept ({'no supervised fit' if sup is None else f'{sup:.3f}'} vs {unsup:.3f})")


@app.command()
def fit(
    embeddings: Annotated[Path, typer.Argument(help="Corpus embeddings (.parquet/.arrow file or directory).")],
    head_dir: Annotated[Path, typer.Option("--out", help="Directory to save the fitted head in.")],
    dims: Annotated[str, typer.Option(help="Target dims, strictly decreasing, each below the input dim.")] = "128,64,48,32,16",
    queries: Annotated[Optional[Path], typer.Option(help="Query embeddings: with --qrels, supervised fitting; without, unlabelled queries (a query log) that anchor the codecs of --budgets and join their choice.")] = None,
    qrels: Annotated[Optional[Path], typer.Option(help="TSV query-id, corpus-id, score: the training pairs.")] = None,
    validation: Annotated[Optional[float], typer.Option("--validation", min=0.0, max=0.95, help="With --qrels: share of the labelled queries held back; at each dim the supervised map is kept only where it ranks their documents better, by more than chance, than an unsupervised fit does (which it also runs), so scarce labels cannot make a dim worse; 0 trusts the labels at every dim [default: the head's, 0.2].")] = None,
    validation_qrels: Annotated[Optional[Path], typer.Option("--validation-qrels", help="With --qrels: qrels of other queries in --queries (e.g. a dev split) that decide, per dim, whether the supervised map is kept, instead of holding back --validation of the training queries; every training pair is then trained on.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs of the training schedule (per stage when sequential) [default: the head's, 40].")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Cap on training steps (batches) per stage, so big samples train in bounded time [default: the head's, 2000].")] = None,
    budgets: Annotated[Optional[str], typer.Option("--budgets", help="Byte budgets per vector, e.g. 16,32: for each, the codec (on the full vectors or a head dim) that keeps most of held-back corpus rows' neighbours is chosen, without labels, and saved with the head.")] = None,
    codec_steps: Annotated[Optional[int], typer.Option("--codec-steps", min=0, help="Training steps of the rank-trained candidates of --budgets (rank-distilled OPQ, the head's quantisers trained in the loop); 0 leaves them out [default: the head's, 400].")] = None,
    normalize: Annotated[Optional[bool], typer.Option("--normalize/--no-normalize", help="Make the head's outputs unit vectors (cosine search), or keep norms (inner-product search, for dot-product embedders: the targets are then full-dim inner products) [default: as the input says: vectors embedded with --no-normalize that are not unit get a head that keeps norms].")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same head.")] = 0,
    sample_rows: Annotated[int, typer.Option("--sample-rows", min=1, help="Train on a uniform sample of at most this many corpus rows.")] = 1_000_000,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Memory the fit may use, e.g. 8G; the sample shrinks to fit it [default: the smallest of the address-space limit, the cgroup limit and available RAM].")] = None,
    id_column: IdColumn = "id",
    embedding_column: EmbeddingColumn = "embedding",
) -> None:
    """Train a SMEC head on frozen vectors (unsupervised; supervised with --queries and --qrels).

    Corpora larger than the sample are sampled uniformly in one streaming pass; the sample is at
    most --sample-rows rows and as many as fit the memory budget at this input dimension. With
    --qrels the judged documents are always kept in the sample. With --budgets, a codec per byte
    budget is chosen and saved too (on up to 100,000 sampled rows, fewer above 655 d); --queries without
    --qrels anchor those codecs on your queries. Only training queries belong there: queries you
    evaluate on would leak into the codecs.
    """
    from ..config import MIN_ROWS, FitConfig
    from ..data.beir import read_qrels
    from ..data.files import count_rows, read_meta
    from ..data.io import dataset_dim, read_embeddings
    from ..data.sampling import sample_embeddings
    from ..data.schema import Columns
    from ..data.training_data import training_pairs
    from ..model.budgets import candidate_count, check_budgets
    from ..model.footprint import read_batch_rows, sample_rows_for
    from ..model.head import SMEC
    from ..resources import MemoryLimit, available_memory, format_bytes, parse_bytes

    columns = Columns(id_column, embedding_column)
    if qrels is not None and queries is None:
        raise SmecError("supervised fitting needs both --queries and --qrels")
    if queries is not None and qrels is None and budgets is None:
        raise SmecError("--queries without --qrels are unlabelled queries, used by the codecs of --budgets only: "
                        "add --budgets (or --qrels for supervised fitting)")
    params = {"dims": parse_dims(dims), "seed": seed}
    if epochs is not None:
        params["epochs_per_stage"] = epochs
    if max_steps is not None:
        params["max_steps_per_stage"] = max_steps
    if codec_steps is not None:
        params["codec_steps"] = codec_steps
    if validation is not None:
        if qrels is None:
            raise SmecError("--validation holds back labelled queries: it needs --queries and --qrels")
        params["supervised_validation"] = validation
    if validation_qrels is not None:
        if qrels is None:
            raise SmecError("--validation-qrels checks a supervised fit: it needs --queries and --qrels")
        if validation is not None:
            raise SmecError("give --validation (a share of the training queries held back) or --validation-qrels, not both")
    meta = read_meta(embeddings)
    input_dim = meta.dim or dataset_dim(embeddings, columns=columns)  # a foreign file: from its first row
    normalized = meta.normalized is not False
    params["normalize"] = normalized if normalize is None else normalize
    if not params["normalize"]:
        err.print("the head keeps norms: inner-product search" + ("" if normalize is False else
                  f" ({embeddings} was embedded without normalisation; --normalize for cosine)"))
    cfg = FitConfig.from_dict(params).checked(input_dim, MIN_ROWS)  # a bad --dims fails before any reading
    byte_budgets = () if budgets is None else parse_dims(budgets, "--budgets")
    check_budgets(byte_budgets, input_dim, cfg.dims, learned=cfg.codec_steps > 0, normalize=cfg.normalize)  # before any reading
    budget = MemoryLimit(parse_bytes(max_memory), "--max-memory") if max_memory else available_memory()
    total_rows = count_rows(embeddings)
    rows = sample_rows_for(budget.bytes, input_dim, cfg, most=min(sample_rows, total_rows), normalized=normalized)
    byte_budgets = check_budgets(byte_budgets, input_dim, cfg.dims, learned=cfg.codec_steps > 0, rows=rows,
                                 normalize=cfg.normalize)
    if rows == total_rows:
        err.print(f"training on all {total_rows:,} rows of {input_dim} d")
    else:
        limit = "--sample-rows" if rows == sample_rows else f"{format_bytes(budget.bytes)}, the {budget.source}"
        err.print(f"training on a uniform sample of {rows:,} of {total_rows:,} rows of {input_dim} d (limited by {limit})")
    judged = [read_qrels(path) for path in (qrels, validation_qrels) if path is not None]
    keep = {d for q in judged for rel in q.values() for d in rel}  # labelled documents stay in the sample
    with progress_bar() as bar:
        task = bar.add_task("read corpus", total=total_rows)
        corpus, _ = sample_embeddings(embeddings, rows, seed=seed, columns=columns, keep_ids=keep,
                                          batch_rows=read_batch_rows(input_dim), progress=lambda n: bar.advance(task, n))
    fit_args: dict = {}
    if queries is not None and qrels is not None:
        query_embeddings = read_embeddings(queries, columns=columns)
        q_vectors, positives, report = training_pairs(corpus, query_embeddings, qrels)
        err.print(report)
        fit_args = {"queries": q_vectors, "positives": positives}
        if validation_qrels is not None:
            v_vectors, v_positives, report = training_pairs(corpus, query_embeddings, validation_qrels, kind="validation")
            err.print(report)
            fit_args |= {"validation_queries": v_vectors, "validation_positives": v_positives}
    elif queries is not None:
        anchors = read_embeddings(queries, columns=columns)
        fp, other = corpus.meta.fingerprint, anchors.meta.fingerprint
        if fp and other and fp != other:
            raise SmecError(f"{queries}: embedded by another model than the corpus (fingerprint "
                            f"{anchors.meta.fingerprint} vs {corpus.meta.fingerprint})")
        err.print(f"{len(anchors.ids):,} unlabelled queries anchor the codecs")
        fit_args = {"anchor_queries": anchors.vectors, "anchor_ids": anchors.ids}
    start = time.perf_counter()
    totals = {b: candidate_count(input_dim, b, cfg.dims, codec_steps=cfg.codec_steps, rows=len(corpus.ids))
              for b in byte_budgets}
    with progress_bar() as bar:
        head = SMEC(**params).fit(corpus.vectors, budgets=byte_budgets, embedder_fingerprint=corpus.meta.fingerprint,
                                  progress=StageBars(bar), codec_progress=CodecBars(bar, totals), **fit_args)
    head.save(head_dir)
    report_supervision(head)
    report_choices(head)
    out.print(
        f"fitted dims {','.join(map(str, head.dims_))} on {len(corpus.ids)} x {corpus.dim} vectors "
        f"in {time.perf_counter() - start:.1f}s; saved to {head_dir}"
    )

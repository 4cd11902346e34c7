"""Side-by-side retrieval quality of every compressor at each size: the table users choose from.

A ``Method`` is a reducer (or none: the full vectors) at a dim, optionally followed by a codec
(int8, binary, PQ, OPQ). All of them search the same judged queries against the same corpus and
are scored by the same evaluator, so rows differ only in how the vectors were compressed. Sizes
are bytes per stored vector: ``4 * dim`` for float32, the codec's code size otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .beir import Qrels
from .errors import SmecError
from .evaluate import score_run, search, select_queries, to_run
from .io import Embeddings
from .quantize import make_codec

K = 100  # depth of every search: Recall@100 needs it


class Reducer(Protocol):
    def transform(self, X: np.ndarray, dim: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Method:
    """What one row measures: ``reducer`` (None = full vectors) at ``dim``, then ``codec``.

    ``m`` is the number of PQ/OPQ sub-quantisers (= bytes per vector); ``supervised`` marks
    methods that saw training qrels, whose overall score is inflated by label overlap.
    """

    name: str
    reducer: str | None
    dim: int
    codec: str | None = None
    m: int | None = None
    supervised: bool = False


@dataclass(frozen=True)
class Row:
    """One method at one size: bytes and quality (nDCG@10 also on held-out queries when known)."""

    method: str
    dim: int
    bytes_per_vector: int
    compression: float  # float32 full-dim bytes / this method's bytes
    ndcg10: float
    recall10: float
    recall100: float
    mrr10: float
    pct_of_full: float  # nDCG@10 as % of the full-dim reference
    ndcg10_heldout: float | None = None  # on test queries whose relevant docs no training pair uses
    supervised: bool = False


def plan(
    input_dim: int,
    dims: Iterable[int],
    reducers: Iterable[str],
    *,
    stacked: Iterable[str] = (),
    quantizers: bool = True,
    supervised: Iterable[str] = (),
) -> list[Method]:
    """The default set of rows.

    Float32 rows for every reducer at every dim; then, at matching byte budgets, the quantisers
    on the full vectors (int8, binary, PQ and OPQ with ``m`` = each dim that divides the input
    dim) and each ``stacked`` reducer followed by int8 (``dim`` bytes), binary (``dim / 8``) and
    OPQ with ``m = dim / 4`` (4 dims per sub-quantiser, so ``dim / 4`` bytes).
    """
    dims = sorted(set(dims))
    reducers, stacked, supervised = list(reducers), list(stacked), set(supervised)
    if not dims or dims[0] < 1 or dims[-1] > input_dim:
        raise SmecError(f"dims {dims} must lie in 1..{input_dim} (the input dimension)")
    methods = [Method("full", None, input_dim)]
    methods += [Method(r, r, d, supervised=r in supervised) for r in reducers for d in dims]
    if not quantizers:
        return methods
    methods += [Method("int8", None, input_dim, "int8"), Method("binary", None, input_dim, "binary")]
    methods += [Method(c, None, input_dim, c, m=d) for c in ("pq", "opq") for d in dims if input_dim % d == 0]
    for r in stacked:
        sup = r in supervised
        methods += [Method(f"{r}+int8", r, d, "int8", supervised=sup) for d in dims]
        methods += [Method(f"{r}+binary", r, d, "binary", supervised=sup) for d in dims if d % 8 == 0]
        methods += [Method(f"{r}+opq", r, d, "opq", m=d // 4, supervised=sup) for d in dims if d % 4 == 0]
    return methods


def _quality(run, qrels: Qrels, heldout: list[str] | None) -> tuple[dict[str, float], float | None]:
    scores = score_run(run, qrels)
    if heldout is None:
        return scores, None
    return scores, score_run({q: run[q] for q in heldout if q in run}, qrels)["ndcg@10"]


def compare(
    corpus: Embeddings,
    queries: Embeddings,
    qrels: Qrels,
    methods: list[Method],
    reducers: Mapping[str, Reducer],
    *,
    heldout: list[str] | None = None,
    seed: int = 0,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Score every method on the judged queries (and on ``heldout``, a subset of them).

    Reduced vectors are computed once per (reducer, dim) and shared by the codecs stacked on them;
    codecs are fitted on the corpus vectors only.
    """
    selection = select_queries(list(queries.ids), qrels)
    position = {q: i for i, q in enumerate(queries.ids)}
    q_vectors = queries.vectors[[position[q] for q in selection.query_ids]]
    reduced: dict[tuple[str | None, int], tuple[np.ndarray, np.ndarray]] = {}
    full_bytes, full_ndcg, rows = 4 * corpus.dim, None, []
    for method in methods:
        key = (method.reducer, method.dim)
        if key not in reduced:
            reducer = reducers[method.reducer] if method.reducer else None
            reduced[key] = (
                (corpus.vectors, q_vectors) if reducer is None
                else (reducer.transform(corpus.vectors, method.dim), reducer.transform(q_vectors, method.dim))
            )
        docs, qs = reduced[key]
        if method.codec is None:
            (scores, indices), size = search(docs, qs, K), 4 * method.dim
        else:
            codec = make_codec(method.codec, m=method.m, seed=seed).fit(docs)
            codes = codec.encode(docs)
            (scores, indices), size = codec.search(codes, qs, K), codes.shape[1]
        metrics, held = _quality(to_run(selection.query_ids, corpus.ids, scores, indices), qrels, heldout)
        full_ndcg = metrics["ndcg@10"] if full_ndcg is None else full_ndcg  # the first method is the reference
        row = Row(
            method.name, method.dim, int(size), full_bytes / size, metrics["ndcg@10"], metrics["recall@10"],
            metrics["recall@100"], metrics["mrr@10"], 100 * metrics["ndcg@10"] / full_ndcg, held, method.supervised,
        )
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


HEADER = ("method", "dim", "bytes/vector", "compression", "nDCG@10", "Recall@100", "% of full")
HELDOUT_HEADER = "nDCG@10 held-out"


def label(row: Row) -> str:
    """The method's name, marked when it saw training labels."""
    return row.method + (" (sup)" if row.supervised else "")


def row_cells(row: Row, *, heldout: bool = False) -> tuple[str, ...]:
    cells = (
        label(row),
        str(row.dim),
        str(row.bytes_per_vector),
        f"{row.compression:.0f}x" if row.compression >= 10 else f"{row.compression:.1f}x",
        f"{row.ndcg10:.4f}",
        f"{row.recall100:.4f}",
        f"{row.pct_of_full:.1f}",
    )
    if heldout:
        cells += ("" if row.ndcg10_heldout is None else f"{row.ndcg10_heldout:.4f}",)
    return cells


def header(rows: list[Row]) -> tuple[str, ...]:
    """The table's columns: the held-out column only when some row has that score."""
    return HEADER + ((HELDOUT_HEADER,) if any(r.ndcg10_heldout is not None for r in rows) else ())


def to_markdown(rows: list[Row]) -> str:
    cols = header(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "".join("---|" if c == "method" else "---:|" for c in cols)]
    lines += ["| " + " | ".join(row_cells(r, heldout=len(cols) > len(HEADER))) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def best_per_budget(rows: list[Row], budgets: Iterable[int]) -> str:
    """For each byte budget, the best method that fits in it: the question users actually ask.

    Ranked by held-out nDCG@10 when every row has it: on all queries a supervised head is
    flattered by the labels it was trained on, and would top every budget for that reason alone.
    """
    held = bool(rows) and all(r.ndcg10_heldout is not None for r in rows)
    key = (lambda r: r.ndcg10_heldout) if held else (lambda r: r.ndcg10)
    ref = key(rows[0]) if rows else 1.0
    ranked = "nDCG@10 held-out" if held else "nDCG@10"
    lines = [f"| bytes/vector <= | best method (by {ranked}) | dim | bytes | {ranked} | % of full | nDCG@10 all queries |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for budget in sorted(budgets):
        fitting = [r for r in rows if r.bytes_per_vector <= budget]
        if fitting:
            r = max(fitting, key=key)
            lines.append(
                f"| {budget} | {label(r)} | {r.dim} | {r.bytes_per_vector} | {key(r):.4f} | {100 * key(r) / ref:.1f} | {r.ndcg10:.4f} |"
            )
    return "\n".join(lines) + "\n"


def write_report(rows: list[Row], out: Path, *, info: dict) -> None:
    """``report.json`` (rows + how they were made) and ``report.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=2))
    budgets = sorted({r.bytes_per_vector for r in rows})
    notes = "\n".join(f"- {k}: {v}" for k, v in info.items())
    (out / "report.md").write_text(
        f"{notes}\n\n{to_markdown(rows)}\nBest nDCG@10 within each byte budget:\n\n{best_per_budget(rows, budgets)}"
    )


def fit_reducers(X: np.ndarray, dims: Iterable[int], *, adaptor: bool = True, seed: int = 0) -> dict[str, Reducer]:
    """The baselines fitted on the corpus vectors: truncation, random projection, PCA and
    (unless ``adaptor=False``, it trains a small MLP) the Matryoshka-Adaptor on ``dims``."""
    from .baselines import PCA, MatryoshkaAdaptor, RandomProjection, Truncation

    reducers: dict[str, Reducer] = {
        "truncation": Truncation().fit(X),
        "random": RandomProjection(seed=seed).fit(X),
        "pca": PCA().fit(X),
    }
    if adaptor:
        reducers["mat-adaptor"] = MatryoshkaAdaptor(dims=tuple(sorted(set(dims), reverse=True)), seed=seed).fit(X)
    return reducers


def check_head(head, corpus: Embeddings, dims: Iterable[int], *, force: bool = False, label: str = "head") -> None:
    """A head must take these vectors (same dim, same embedder unless ``force``) at every dim."""
    head.check_input(corpus.dim, corpus.meta.fingerprint, force)
    missing = sorted(set(dims) - set(head.dims_), reverse=True)
    if missing:
        raise SmecError(f"{label} has no dims {missing}; trained dims: {list(head.dims_)} (pick --dims among them)")


def fit_smec_heads(
    corpus: Embeddings, queries: Embeddings, train_qrels_path: Path | None, dims: Iterable[int], *, seed: int = 0, **params
) -> dict[str, Reducer]:
    """``{"smec": unsupervised head, "smec-sup": head fitted with the training pairs}`` on the
    corpus vectors at ``dims`` (the supervised one only when training qrels are given)."""
    from .head import SMEC
    from .training_data import training_pairs

    head_dims = tuple(sorted({d for d in dims if d < corpus.dim}, reverse=True))
    fp = corpus.meta.fingerprint
    heads: dict[str, Reducer] = {"smec": SMEC(dims=head_dims, seed=seed, **params).fit(corpus.vectors, embedder_fingerprint=fp)}
    if train_qrels_path is not None:
        q_vectors, positives, _ = training_pairs(corpus, queries, train_qrels_path)
        heads["smec-sup"] = SMEC(dims=head_dims, seed=seed, **params).fit(
            corpus.vectors, queries=q_vectors, positives=positives, embedder_fingerprint=fp
        )
    return heads

"""Side-by-side retrieval quality of every compressor at each size: the table users choose from.

A ``Method`` is a reducer (or none: the full vectors) at a dim, optionally followed by a codec
(int8, binary, PQ, OPQ, RaBitQ). All of them search the same judged queries against the same corpus and
are scored by the same evaluator, so rows differ only in how the vectors were compressed. Sizes
are bytes per stored vector: ``4 * dim`` for float32, the codec's code size otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..codecs import make_codec
from ..codecs.budget import Candidate, candidates
from ..data.beir import Qrels
from ..data.io import Embeddings
from ..errors import SmecError
from .retrieval import score_run, scored, search, select_queries, to_run

K = 100  # depth of every search: Recall@100 needs it


class Reducer(Protocol):
    def transform(self, X: np.ndarray, dim: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Method:
    """What one row measures: ``reducer`` (None = full vectors) at ``dim``, then ``codec``.

    ``m`` is the number of PQ/OPQ sub-quantisers (= bytes per vector), ``bits`` RaBitQ's bits per
    dimension; ``supervised`` marks methods that saw training qrels, whose overall score is
    inflated by label overlap.
    """

    name: str
    reducer: str | None
    dim: int
    codec: str | None = None
    m: int | None = None
    bits: int | None = None
    supervised: bool = False
    budget: int | None = None  # the head's own codec for this many bytes (``fit --budgets``)


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
    rescored: int | None = None  # top candidates rescored with the full vectors (kept on disk, not in these bytes)


@dataclass(frozen=True)
class PlanContext:
    """What a planning rule sees: the input dim, the dims and byte budgets to compare at, the
    float reducers, the reducers to stack codecs on, and which of them saw training labels."""

    input_dim: int
    dims: list[int]
    budgets: list[int]
    reducers: list[str]
    stacked: list[str]
    supervised: set[str]
    head_codecs: Mapping[str, Mapping[int, Candidate]]  # per head: its budgets' chosen codecs
    rows: int | None = None  # corpus rows the codecs train on (OPQ needs 256)


def _full(ctx: PlanContext) -> list[Method]:
    return [Method("full", None, ctx.input_dim)]


def _float_rows(ctx: PlanContext) -> list[Method]:
    return [Method(r, r, d, supervised=r in ctx.supervised) for r in ctx.reducers for d in ctx.dims]


def _codecs_on_full(ctx: PlanContext) -> list[Method]:
    """int8 and binary on the full vectors, PQ and OPQ with ``m`` = each dim that divides it."""
    methods = [Method("int8", None, ctx.input_dim, "int8"), Method("binary", None, ctx.input_dim, "binary")]
    return methods + [Method(c, None, ctx.input_dim, c, m=d) for c in ("pq", "opq") for d in ctx.dims if ctx.input_dim % d == 0]


def _budget_codecs(ctx: PlanContext) -> list[Method]:
    """The quantisers users pick per byte budget, and ours: ``codecs.budget.candidates`` with PCA as
    the reducer (OPQ and rank-distilled OPQ at ``m`` = budget, RaBitQ, re-ranked sign bits and int8
    on the full vectors where they fit, else over PCA, and OPQ over PCA), for a corpus of ``rows``."""
    reducer = "pca" if "pca" in ctx.reducers else None
    return [Method(c.label, c.reducer, c.dim, c.codec, m=c.m, bits=c.bits)
            for budget in ctx.budgets for c in candidates(ctx.input_dim, budget, reducer=reducer, rows=ctx.rows)]


def _stacked_codecs(ctx: PlanContext) -> list[Method]:
    """Each stacked reducer followed by int8 (``dim`` bytes), binary (``dim / 8``) and OPQ with
    ``m = dim / 4`` (4 dims per sub-quantiser, so ``dim / 4`` bytes)."""
    methods = []
    for r in ctx.stacked:
        sup = r in ctx.supervised
        methods += [Method(f"{r}+int8", r, d, "int8", supervised=sup) for d in ctx.dims]
        methods += [Method(f"{r}+binary", r, d, "binary", supervised=sup) for d in ctx.dims if d % 8 == 0]
        methods += [Method(f"{r}+opq", r, d, "opq", m=d // 4, supervised=sup) for d in ctx.dims if d % 4 == 0]
    return methods


def _head_codecs(ctx: PlanContext) -> list[Method]:
    """Each head's own codec per budget, as ``fit --budgets`` chose and fitted it."""
    return [Method(f"{head} {budget}B: {c.label}", head, c.dim, c.codec, m=c.m, bits=c.bits,
                   supervised=head in ctx.supervised, budget=budget)
            for head, chosen in ctx.head_codecs.items() for budget, c in sorted(chosen.items())]


# The registry of row families, in table order: a new family (a codec, rescoring) is one more rule.
FLOAT_RULES: tuple[Callable[[PlanContext], list[Method]], ...] = (_full, _float_rows)
CODEC_RULES: tuple[Callable[[PlanContext], list[Method]], ...] = (_codecs_on_full, _stacked_codecs, _budget_codecs, _head_codecs)


def plan(
    input_dim: int,
    dims: Iterable[int],
    reducers: Iterable[str],
    *,
    budgets: Iterable[int] = (),
    stacked: Iterable[str] = (),
    quantizers: bool = True,
    supervised: Iterable[str] = (),
    head_codecs: Mapping[str, Mapping[int, Candidate]] | None = None,
    rows: int | None = None,
) -> list[Method]:
    """The rows to score: every rule of ``FLOAT_RULES`` (the full vectors, each reducer at each
    dim) and, with ``quantizers``, of ``CODEC_RULES`` (codecs alone and stacked on reducers, and
    the per-budget quantisers at each of ``budgets``, bytes per vector, and the codecs heads
    chose for their own budgets, ``head_codecs``)."""
    dims, budgets = sorted(set(dims)), sorted(set(budgets))
    if not dims or dims[0] < 1 or dims[-1] > input_dim:
        raise SmecError(f"dims {dims} must lie in 1..{input_dim} (the input dimension)")
    if budgets and budgets[0] < 1:
        raise SmecError(f"byte budgets {budgets} must be at least 1")
    ctx = PlanContext(input_dim, dims, budgets, list(reducers), list(stacked), set(supervised), dict(head_codecs or {}), rows)
    rules = FLOAT_RULES + (CODEC_RULES if quantizers else ())
    return list(dict.fromkeys(method for rule in rules for method in rule(ctx)))  # rules may list a row twice


def _quality(run, qrels: Qrels, heldout: list[str] | None) -> tuple[dict[str, float], float | None, dict[str, float]]:
    """The run's means, its held-out queries' nDCG@10 (None without them) and every query's nDCG@10."""
    scores, per_query = scored(run, qrels)
    if heldout is None:
        return scores, None, per_query
    return scores, score_run({q: run[q] for q in heldout if q in run}, qrels)["ndcg@10"], per_query


def _search(method: Method, reduced: dict, docs: np.ndarray, queries: np.ndarray, reducers: Mapping[str, Reducer],
            seed: int, depth: int = K) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Top-``depth`` of ``method`` and its bytes per vector; reduced vectors are cached in ``reduced``
    per (reducer, dim) and shared by the codecs stacked on them."""
    key = (method.reducer, method.dim)
    if key not in reduced:
        reducer = reducers[method.reducer] if method.reducer else None
        reduced[key] = ((docs, queries) if reducer is None
                        else (reducer.transform(docs, method.dim), reducer.transform(queries, method.dim)))
    docs, queries = reduced[key]
    if method.codec is None:
        return search(docs, queries, depth), 4 * method.dim
    codec = make_codec(method.codec, m=method.m, bits=method.bits, seed=seed).fit(docs)
    codes = codec.encode(docs)
    return codec.search(codes, queries, depth), codes.shape[1]


def rescored_run(indices: np.ndarray, queries: np.ndarray, docs: np.ndarray, rescore: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``K`` of: each query's top ``rescore`` candidates re-ranked with the full vectors
    (``rescore.rescore``), then its other candidates in the method's own order; scores are
    full-dim for the rescored ones and below all of them for the rest."""
    from ..rescore import rescore as rerank

    top_s, top_i = rerank(indices[:, :rescore], queries, docs, rescore)
    rest = indices[:, rescore:K]
    floor = np.nanmin(np.where(np.isfinite(top_s), top_s, np.nan), axis=1, keepdims=True) - 1
    rest_s = floor - np.arange(1, rest.shape[1] + 1, dtype=np.float32)  # keeps their order after the rescored
    return np.hstack([top_s, rest_s])[:, :K], np.hstack([top_i, rest])[:, :K]


def row_key(row: Row) -> tuple[str, int, int]:
    """What tells a comparison's rows apart: method, dim and bytes (OPQ at several ``m`` share a name and dim)."""
    return row.method, row.dim, row.bytes_per_vector


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
    rescore: int = 0,
    per_query: dict[tuple[str, int, int], np.ndarray] | None = None,
) -> list[Row]:
    """Score every method on the judged queries (and on ``heldout``, a subset of them); with
    ``rescore`` R > 0, each method but the full vectors also gets a row ``NAME +rescore R``: its
    top R candidates rescored with the full vectors (``rescored_run``), at the same bytes of RAM.

    Reduced vectors are computed once per (reducer, dim) and shared by the codecs stacked on them;
    codecs are fitted on the corpus vectors only. ``per_query``, when given, receives each row's
    per-query nDCG@10 (judged queries in order) under ``row_key(row)``, for paired bootstraps.
    """
    selection = select_queries(list(queries.ids), qrels)
    position = {q: i for i, q in enumerate(queries.ids)}
    q_vectors = queries.vectors[[position[q] for q in selection.query_ids]]
    reduced: dict[tuple[str | None, int], tuple[np.ndarray, np.ndarray]] = {}
    full_bytes, full_ndcg, rows = 4 * corpus.dim, None, []
    depth = max(K, rescore)
    for method in methods:
        if method.budget is not None:  # the head's stored codec, applied to the full vectors
            head = reducers[method.reducer]
            codes = head.encode(corpus.vectors, budget=method.budget)
            (scores, indices), size = head.search(codes, q_vectors, depth, budget=method.budget), codes.shape[1]
        else:
            (scores, indices), size = _search(method, reduced, corpus.vectors, q_vectors, reducers, seed, depth)
        runs = [(method.name, None, scores[:, :K], indices[:, :K])]
        if rescore and method.name != "full":
            runs.append((f"{method.name} +rescore {rescore}", rescore,
                         *rescored_run(indices, q_vectors, corpus.vectors, rescore)))
        for name, rescored, s, i in runs:
            metrics, held, each = _quality(to_run(selection.query_ids, corpus.ids, s, i), qrels, heldout)
            full_ndcg = metrics["ndcg@10"] if full_ndcg is None else full_ndcg  # the first method is the reference
            row = Row(
                name, method.dim, int(size), full_bytes / size, metrics["ndcg@10"], metrics["recall@10"],
                metrics["recall@100"], metrics["mrr@10"], 100 * metrics["ndcg@10"] / full_ndcg, held, method.supervised,
                rescored,
            )
            rows.append(row)
            if per_query is not None:
                per_query[row_key(row)] = np.array([each.get(q, 0.0) for q in selection.query_ids])  # no hits: 0
            if on_row:
                on_row(row)
    return rows



"""One comparison run, as ``eval`` and ``bench/quality.py`` both do it: fit the baselines (and
SMEC heads, if asked) on the corpus, plan the rows, score them, and say what was scored."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..data.io import Embeddings
from ..errors import SmecError
from ..validation import check_served_dims
from .baselines import PCA, MatryoshkaAdaptor, RandomProjection, Truncation
from .compare import Method, Reducer, Row, compare, plan
from .evalset import EvalSet, check_qrels, heldout_queries
from .retrieval import select_queries

# The float reducers every comparison fits on the corpus vectors, by name: (X, dims, seed) -> fitted.
# A new baseline is one more entry; "mat-adaptor" trains a small MLP and can be left out.
REDUCERS: dict[str, Callable[[np.ndarray, list[int], int], Reducer]] = {
    "truncation": lambda X, dims, seed: Truncation().fit(X),
    "random": lambda X, dims, seed: RandomProjection(seed=seed).fit(X),
    "pca": lambda X, dims, seed: PCA().fit(X),
    "pca-centred": lambda X, dims, seed: PCA(center=True).fit(X),  # one of the strongest simple reducers on some data
    "mat-adaptor": lambda X, dims, seed: MatryoshkaAdaptor(dims=tuple(sorted(set(dims), reverse=True)), seed=seed).fit(X),
}


def fit_reducers(X: np.ndarray, dims: Iterable[int], *, adaptor: bool = True, seed: int = 0) -> dict[str, Reducer]:
    """Every registered baseline fitted on the corpus vectors (the adaptor unless ``adaptor=False``)."""
    dims = list(dims)
    return {name: fit(X, dims, seed) for name, fit in REDUCERS.items() if adaptor or name != "mat-adaptor"}


def check_head(head, corpus: Embeddings, dims: Iterable[int], *, force: bool = False, label: str = "head",
               judged: Iterable[str] = ()) -> list[str]:
    """A head must take these vectors (same dim, same embedder unless ``force``) at every dim, and
    its budget codecs must not have been anchored on the ``judged`` queries (that is leakage).
    Returns warnings (anchors of unknown ids; unit vectors given to a head that keeps norms)."""
    from ..model.budgets import anchored_on

    head.check_input(corpus.dim, corpus.meta.fingerprint, force)
    check_served_dims(dims, head.dims_, what=label)
    leaked = anchored_on(head, judged)
    if leaked:
        raise SmecError(f"{label}: its budget codecs were anchored on {leaked} of the judged queries (fit --queries): "
                        "scoring them on those queries would leak; refit anchored on training queries only")
    warnings = []
    if leaked is None:
        warnings.append(f"{label}: its budget codecs were anchored on {head.anchors_} unlabelled queries of unknown ids: "
                        "make sure none of them is a test query")
    if not head.config_.normalize and corpus.meta.normalized:
        warnings.append(f"{label}: the head keeps norms (fit --no-normalize) but these vectors are unit: give it "
                        "vectors embedded with --no-normalize, as it was fitted on")
    return warnings


def fit_smec_heads(corpus: Embeddings, queries: Embeddings, train_qrels_path, dims: Iterable[int], *, seed: int = 0,
                   threads: int | None = None, budgets: Iterable[int] = (), **params) -> dict[str, Reducer]:
    """``{"smec": unsupervised head, "smec-sup": head fitted with the training pairs}`` on the
    corpus vectors at ``dims`` (the supervised one only when training qrels are given), each
    with a codec chosen per byte budget in ``budgets``."""
    from ..data.training_data import training_pairs
    from ..model.head import SMEC

    head_dims = tuple(sorted({d for d in dims if d < corpus.dim}, reverse=True))
    fp = corpus.meta.fingerprint
    heads: dict[str, Reducer] = {
        "smec": SMEC(dims=head_dims, seed=seed, **params).fit(corpus.vectors, budgets=budgets, embedder_fingerprint=fp,
                                                              threads=threads)}
    if train_qrels_path is not None:
        q_vectors, positives, _ = training_pairs(corpus, queries, train_qrels_path)
        heads["smec-sup"] = SMEC(dims=head_dims, seed=seed, **params).fit(
            corpus.vectors, queries=q_vectors, positives=positives, budgets=budgets, embedder_fingerprint=fp,
            threads=threads)
    return heads


@dataclass
class Comparison:
    """The scored rows and what they were scored on."""

    rows: list[Row]
    judged_queries: int
    skipped_queries: int  # queries without judgements in these qrels
    heldout: list[str] | None  # test queries none of whose relevant docs is a training positive
    warnings: list[str]
    per_query: dict = field(default_factory=dict)  # compare.row_key(row) -> per-query nDCG@10 (judged queries in order)


def run_comparison(
    data: EvalSet,
    dims: Iterable[int],
    *,
    budgets: Iterable[int] = (),
    heads: Mapping[str, Reducer] | None = None,
    fit_smec: bool = False,
    adaptor: bool = True,
    quantizers: bool = True,
    seed: int = 0,
    rescore: int = 0,
    on_stage: Callable[[str, int | None], None] | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> Comparison:
    """Score every planned method on ``data``'s judged test queries (and its held-out ones).

    ``budgets`` (bytes per vector) add the per-budget quantisers (RaBitQ, re-ranked sign bits,
    PQ/OPQ at ``m`` = budget). ``heads`` are fitted SMEC heads by name ("smec", and "smec-sup" for one that saw training
    labels), or ``fit_smec`` fits them here; they are stacked with every codec, like PCA.
    ``rescore`` R > 0 adds each method's rows with its top R candidates rescored with the full vectors.
    ``on_stage(description, total_rows_or_None)`` and ``on_row(row)`` report progress.
    """
    dims = list(dims)
    stage = on_stage or (lambda description, total: None)
    warnings = check_qrels(data.qrels, data.corpus, data.queries)
    selection = select_queries(list(data.queries.ids), data.qrels)
    heldout = heldout_queries(data.qrels, data.train_qrels) if data.train_qrels else None
    stage("fit baselines", None)
    reducers = fit_reducers(data.corpus.vectors, dims, adaptor=adaptor, seed=seed)
    heads = dict(heads or {})
    if fit_smec:
        stage("fit SMEC", None)
        heads = fit_smec_heads(data.corpus, data.queries, data.train_qrels_path, dims, seed=seed,
                               budgets=budgets if quantizers else ())
    reducers.update(heads)
    methods: list[Method] = plan(data.corpus.dim, dims, reducers, budgets=budgets, stacked=["pca", *heads], quantizers=quantizers,
                                 supervised=[n for n in heads if n.endswith("-sup")],
                                 head_codecs={n: {b: bc.candidate for b, bc in getattr(h, "codecs_", {}).items()}
                                              for n, h in heads.items()}, rows=len(data.corpus.ids))
    stage("score", len(methods) * (2 if rescore else 1) - (1 if rescore else 0))
    per_query: dict = {}
    rows = compare(data.corpus, data.queries, data.qrels, methods, reducers, heldout=heldout, seed=seed, on_row=on_row,
                   rescore=rescore, per_query=per_query)
    return Comparison(rows, len(selection.query_ids), selection.skipped_without_qrels, heldout, warnings, per_query)

"""Which codec to use at a byte budget, decided without labels.

At a given number of bytes per vector users pick among OPQ, RaBitQ and sign bits, and which one
wins changes with the data (on SciFact OPQ leads at 16 bytes; on a held-out collection re-ranked
sign bits lead by 3 points). ``choose`` measures every candidate that fits the budget on the corpus
itself: some corpus rows are held back as queries, each candidate is fitted on the other rows, and
the criterion is recall@k of the held-back rows' full-dim top-k (the ranking every codec is meant
to keep). Evaluation labels are never read. ``choose_budgets`` does it for several budgets at
once, fitting each candidate once however many budgets it fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import SmecError
from ..normalize import l2_normalize
from ..validation import check_int
from . import OPQ_TRAINED
from .rabitq import BITS as RABITQ_BITS
from .rabitq import code_size
from .base import exact_search
from .pq import KSUB
from .distil import RankTraining
from .sparse import BYTES_PER_LATENT


@dataclass(frozen=True)
class Candidate:
    """A codec at a budget: ``codec`` on the first ``dim`` dims of ``reducer``'s output (None: on
    the vectors as they are), with ``m`` (PQ's sub-quantisers, CSR's non-zeros) or RaBitQ's ``bits``."""

    codec: str
    dim: int
    reducer: str | None = None
    m: int | None = None
    bits: int | None = None

    @property
    def label(self) -> str:
        """The row name ``eval`` shows (its dim is a column of its own)."""
        name = f"{self.reducer}+{self.codec}" if self.reducer else self.codec
        return name + (f"-{self.bits}bit" if self.bits else "")

    @property
    def key(self) -> str:
        """Unique among a budget's candidates: the label with the dim and ``m``."""
        return f"{self.label} {self.dim} d" + (f" m={self.m}" if self.m else "")


def _widest(dims: Sequence[int], fits) -> int | None:
    fitting = [d for d in dims if fits(d)]
    return max(fitting) if fitting else None


def _on_vectors(dims: Sequence[int], budget: int, reducer: str | None) -> list[Candidate]:
    """RaBitQ (rotated and FAISS' unrotated, 1-4 bits), re-ranked sign bits (8 a byte, the last
    byte padded), int8 and int4, each at the widest of ``dims`` whose code fits (widest: on SciFact narrower dims at the same bits scored no
    better beyond noise), and OPQ at ``m`` = budget with 2, 4 or 8 dims per sub-quantiser."""
    out = []
    for bits in RABITQ_BITS:
        dim = _widest(dims, lambda d, bits=bits: code_size(d, bits) <= budget)
        if dim is not None:
            out += [Candidate(codec, dim, reducer, bits=bits) for codec in ("rabitq", "rabitq-unrotated")]
    if (dim := _widest(dims, lambda d: -(-d // 8) <= budget)) is not None:
        out.append(Candidate("binary-rerank", dim, reducer))
    if (dim := _widest(dims, lambda d: d <= budget)) is not None:
        out.append(Candidate("int8", dim, reducer))
    if (dim := _widest(dims, lambda d: -(-d // 2) <= budget)) is not None:
        out.append(Candidate("int4", dim, reducer))
    out += [Candidate("opq", d, reducer, m=budget) for d in (2 * budget, 4 * budget, 8 * budget) if d in dims]
    return out


OPQ_TRAINER = "torch"  # the choice fits OPQ at every budget and several dims: on torch kernels (pq.OPQ)
# Quantisation in the loop (qat.py): each blind quantiser on a head's dims, and its in-loop twin.
IN_LOOP = {"int8": "qat-int8", "int4": "qat-int4", "binary-rerank": "qat-binary", "opq": "qat-opq"}
MAPPED = frozenset(IN_LOOP.values())  # they hold the head's map themselves and take full-dim rows


def sees_full_vectors(cand: "Candidate") -> bool:
    """Whether ``cand``'s codec takes the (unit) full-dim rows rather than a reducer's output."""
    return cand.reducer is None or cand.codec in MAPPED


def in_loop(cand: "Candidate") -> "Candidate":
    """``cand`` (a blind quantiser on a reducer's dims) with its quantiser trained in the loop."""
    return Candidate(IN_LOOP[cand.codec], cand.dim, cand.reducer, m=cand.m)


def blind_twin(cand: "Candidate") -> "Candidate":
    """The blind stack an in-loop ``cand`` started from (``in_loop``'s inverse)."""
    return Candidate(next(b for b, q in IN_LOOP.items() if q == cand.codec), cand.dim, cand.reducer, m=cand.m)
HELD_BACK = 1000  # most corpus rows (and queries) held back as the criterion's probes


def training_rows(n: int, held_back: int = HELD_BACK) -> int:
    """Rows the candidates are fitted on when ``choose`` holds probes back from ``n`` rows."""
    return n - max(2, min(held_back, n // 10))


def split_held_back(X: np.ndarray, *, held_back: int = HELD_BACK, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The criterion's probes and the rows the candidates are fitted on (``training_rows``), at random by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(X))
    n_held = len(X) - training_rows(len(X), held_back)
    return X[order[:n_held]], X[order[n_held:]]


def candidates(input_dim: int, budget: int, *, reducer: str | None = None, dims: Sequence[int] = (),
               learned: bool = True, rows: int | None = None) -> list[Candidate]:
    """Every codec that fits ``budget`` bytes a vector, on the full vectors and on ``reducer``'s
    output at ``dims`` (its served dims; "pca": any multiple of 8 below the input dim).

    On the full vectors: OPQ (and, if ``learned``, rank-distilled OPQ) at ``m`` = budget when it
    divides the dim, the CSR sparse code at ``budget / 4`` non-zeros, and the codecs of
    ``_on_vectors`` where the whole vector fits; a codec that
    fits the whole vector is not tried on fewer dims. With fewer than 256 training ``rows``, PQ's
    k-means cannot run and OPQ is left out.
    """
    check_int("budget", budget, 1, 4 * input_dim)  # 4 * dim bytes: the float vector itself
    if reducer == "pca" and not dims:
        dims = range(8, input_dim, 8)
    out = []
    if input_dim % budget == 0:
        out += [Candidate("opq", input_dim, None, m=budget)]
        out += [Candidate("rank-opq", input_dim, None, m=budget)] if learned else []
    if budget % BYTES_PER_LATENT == 0:
        out.append(Candidate("csr", input_dim, None, m=budget // BYTES_PER_LATENT))
    out += [c for c in _on_vectors([input_dim], budget, None) if c.codec != "opq"]
    if reducer is not None:
        whole = {(c.codec, c.bits) for c in out}
        reduced = _on_vectors(sorted(d for d in dims if d < input_dim), budget, reducer)
        out += [c for c in reduced if (c.codec, c.bits) not in whole or c.codec == "opq"]
    if rows is not None and rows < KSUB:
        out = [c for c in out if c.codec not in OPQ_TRAINED]
    return out


@dataclass
class Choice:
    """The chosen candidate at ``budget``, the criterion of every candidate (by ``key``), and the
    chosen codec as fitted during the choice (on all rows but the held-back ones; None once saved
    and loaded, where the codec travels on its own)."""

    budget: int
    candidate: Candidate
    recall: dict[str, float] = field(default_factory=dict)
    codec: object = field(default=None, repr=False, compare=False)
    with_queries: bool = False  # the criterion averaged in held-back unlabelled queries


class Reducer(Protocol):
    def transform(self, X: np.ndarray, dim: int) -> np.ndarray: ...


def can_train_in_loop(reducer: object) -> bool:
    """Whether ``reducer`` exposes its map at a dim (``linear_map``), so in-loop codecs can start from it."""
    return callable(getattr(reducer, "linear_map", None))


def neighbour_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (top-k ids) that ``found`` keeps."""
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))


STARTS_FROM = {"rank-opq": "opq", "qat-opq": "opq", "qat-int8": "int8", "qat-int4": "int4"}  # trained: blind


def starts_from(cand: Candidate) -> Candidate | None:
    """The blind candidate whose fitted tables a rank-trained ``cand`` starts from (rank-distilled
    OPQ: OPQ at the same ``m``; an in-loop OPQ or int8 / int4: its blind twin), None where there
    are none (sign bits). ``choose_budgets`` hands that fitted codec over instead of refitting it:
    the same tables (same rows, same seed), fitted once."""
    blind = STARTS_FROM.get(cand.codec)
    return None if blind is None else Candidate(blind, cand.dim, cand.reducer, m=cand.m)


def fit_candidate(cand: Candidate, X: np.ndarray, reducer: Reducer | None, *, seed: int = 0,
                  training: RankTraining | None = None, queries: np.ndarray | None = None, start=None):
    """``cand``'s codec fitted on ``X`` as it sees it (through ``reducer`` at ``cand.dim``);
    ``training`` is the rank-trained codecs' (rank-distilled OPQ, the in-loop ones; their defaults
    when None), which anchor on unlabelled ``queries`` when given (the others have no use for
    them). An in-loop codec starts from ``reducer.linear_map(cand.dim)``; a rank-trained one from
    ``start``, its ``starts_from`` candidate already fitted on ``X`` (fitted here when None)."""
    from . import TRAINED, make_codec

    trainer = OPQ_TRAINER if cand.codec in OPQ_TRAINED else None
    if cand.codec not in TRAINED:
        return make_codec(cand.codec, m=cand.m, bits=cand.bits, seed=seed, trainer=trainer).fit(view(cand, X, reducer))
    codec = make_codec(cand.codec, m=cand.m, seed=seed, training=training, trainer=trainer)
    anchors = None if queries is None else view(cand, queries, reducer)
    kwargs = {} if start is None else {"start": start}
    if cand.codec in MAPPED:
        return codec.fit(view(cand, X, reducer), init=reducer.linear_map(cand.dim), queries=anchors, **kwargs)
    return codec.fit(view(cand, X, reducer), queries=anchors, **kwargs)


def view(cand: Candidate, X: np.ndarray, reducer: Reducer | None) -> np.ndarray:
    """``X`` as ``cand``'s codec sees it: through ``reducer`` at ``cand.dim`` (whose output is unit
    rows), or the rows themselves made unit (``sees_full_vectors``), so every candidate ranks by
    cosine, as the criterion and the head's loss do."""
    if not sees_full_vectors(cand):
        return reducer.transform(X, cand.dim)
    return l2_normalize(np.array(X, dtype=np.float32))


def choose(X: np.ndarray, budget: int, *, on_candidate: Callable[[Candidate, float], None] | None = None,
           **kwargs) -> Choice:
    """``choose_budgets`` at one ``budget``."""
    report = None if on_candidate is None else (lambda _, cand, recall: on_candidate(cand, recall))
    return choose_budgets(X, (budget,), on_candidate=report, **kwargs)[budget]


def choose_budgets(X: np.ndarray, budgets: Sequence[int], *, reducer: str | None = None,
                   fit_reducer: Callable[[np.ndarray], Reducer] | None = None, dims: Sequence[int] = (),
                   held_back: int = HELD_BACK, k: int = 10, seed: int = 0, learned: bool = True,
                   training: RankTraining | None = None, queries: np.ndarray | None = None,
                   on_candidate: Callable[[int, Candidate, float], None] | None = None) -> dict[int, Choice]:
    """Per budget, the candidate with the best recall@``k`` of ``held_back`` corpus rows' full-dim
    top-``k`` (at most a tenth of the rows), each candidate fitted on the other rows. With
    unlabelled ``queries`` the criterion is the mean of that and the same recall for held-back
    queries (a fifth of them, at most ``held_back``); the others anchor the rank-trained codecs.

    ``fit_reducer(rows)`` gives ``reducer``'s transform fitted on the training rows (PCA is refit
    there; a fitted head ignores them, and has seen the held-back rows in its own fit, which
    flatters its candidates a little). ``learned`` adds rank-distilled OPQ and, on a reducer with a
    ``linear_map`` (a head), the best blind head candidate of each ``IN_LOOP`` family trained in
    the loop (``best_per_family``), each trained as ``training`` says (its defaults when None). Ties
    go to the earlier candidate. Each candidate is fitted once: one that fits several budgets (sign
    bits or int8 at a dim, RaBitQ) is measured at the first and reused at the others, and a
    rank-trained one starts from its ``starts_from`` candidate as fitted.
    """
    if len(X) < 20:
        raise SmecError(f"choosing a codec needs at least 20 corpus rows; got {len(X)}")
    if (reducer is None) != (fit_reducer is None):
        raise SmecError("reducer and fit_reducer go together")
    X = l2_normalize(np.array(X, dtype=np.float32))  # the truth is the cosine ranking, as the head's
    queries = None if queries is None else l2_normalize(np.array(queries, dtype=np.float32))
    held, train = split_held_back(X, held_back=held_back, seed=seed)
    k = min(k, len(train))
    probes = [held]
    anchors = None
    if queries is not None and len(queries) >= 2:
        q_order = np.random.default_rng(seed + 1).permutation(len(queries))
        q_held = max(1, min(held_back, len(queries) // 5))
        probes.append(queries[q_order[:q_held]])
        anchors = queries[q_order[q_held:]]
    truths = [exact_search(train, p, k)[1] for p in probes]
    fitted = fit_reducer(train) if fit_reducer else None
    measured: dict[str, tuple[float, object]] = {}  # by key, across budgets: (criterion, fitted codec)

    def measure(cand: Candidate) -> float:
        if cand.key not in measured:
            first = starts_from(cand)
            start = measured[first.key][1] if first is not None and first.key in measured else None
            codec = fit_candidate(cand, train, fitted, seed=seed, training=training, queries=anchors, start=start)
            codes = codec.encode(view(cand, train, fitted))
            measured[cand.key] = (float(np.mean([neighbour_recall(codec.search(codes, view(cand, p, fitted), k)[1], t)
                                                 for p, t in zip(probes, truths)])), codec)
        return measured[cand.key][0]

    out = {}
    for budget in budgets:
        pool = candidates(X.shape[1], budget, reducer=reducer, dims=dims, learned=learned, rows=len(train))
        if not pool:
            raise SmecError(f"no codec can store these vectors in {budget} bytes from {len(train)} training rows "
                            f"(OPQ needs {KSUB})")
        recall: dict[str, float] = {}

        def record(cands: list[Candidate]) -> None:
            for cand in cands:
                recall[cand.key] = measure(cand)
                if on_candidate:
                    on_candidate(budget, cand, recall[cand.key])

        record(pool)
        twins = [in_loop(c) for c in best_per_family(pool, recall)] if learned and can_train_in_loop(fitted) else []
        record(twins)  # the in-loop twins of the best blind candidates, once the pool is measured
        tried = pool + twins
        best = max(tried, key=lambda c: recall[c.key])  # ties: the earlier candidate
        out[budget] = Choice(budget, best, recall, measured[best.key][1], with_queries=len(probes) > 1)
        for cand in tried:  # an ``m`` is tied to its budget: those codecs fit no other one, so free the losers'
            if cand.m is not None and cand != best:  # tables (an OPQ rotation at 4,096 d is 64 MiB)
                measured[cand.key] = (measured[cand.key][0], None)
    return out


def _has_in_loop_twin(cand: Candidate) -> bool:
    return bool(cand.reducer) and cand.codec in IN_LOOP  # a blind quantiser on a reducer's dims


def in_loop_families(pool: Sequence[Candidate]) -> set[str]:
    """The ``IN_LOOP`` families with a candidate on a reducer's dims in ``pool``."""
    return {c.codec for c in pool if _has_in_loop_twin(c)}


def best_per_family(pool: Sequence[Candidate], recall: dict[str, float]) -> list[Candidate]:
    """Per quantiser family of ``IN_LOOP``, the best blind candidate on the reducer's dims (by
    ``recall``, ties to the earlier): the ones ``choose`` trains in the loop, at most one a
    family, so the in-loop phase costs four trainings a budget, not one per dim."""
    best: dict[str, Candidate] = {}
    for cand in pool:
        if _has_in_loop_twin(cand) and (cand.codec not in best or recall[cand.key] > recall[best[cand.codec].key]):
            best[cand.codec] = cand
    return list(best.values())

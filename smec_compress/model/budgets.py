"""A fitted head's codecs, one per byte budget: chosen without labels, fitted, saved beside it.

``fit --budgets 16,32`` asks, per budget, which (dim, codec) pair keeps most of the ranking:
``codecs.budget.choose_budgets`` scores every candidate (the head's dims and the full vectors, each with
OPQ, rank-distilled OPQ, RaBitQ, re-ranked sign bits, int8 or int4, and the best head candidate
of each family trained in the loop) by recall of held-back corpus
rows' full-dim neighbours, and the winner is kept as fitted there (on all rows but the held-back
ones, at most a tenth: refitting it on them too would double the cost of the codec phase). The
choice, every candidate's criterion and the codec tables are saved in the head directory
(``codecs.json`` + ``codec-BUDGET.bin``, the latter a serialised FAISS index where there is one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..codecs import Codec, make_codec
from ..codecs.budget import Candidate, Choice, candidates, choose_budgets, in_loop_families, training_rows
from ..errors import SmecError

CODECS_FILE = "codecs.json"
ANCHORS_FILE = "anchor-ids.npy"  # 64-bit hashes of the unlabelled queries' ids, so eval can refuse leakage
CODEC_ROWS = 100_000  # rows the choice and the codecs train on: k-means and OPQ need no more
CODEC_SAMPLE_BYTES = 2**28  # ... and no more than 256 MiB of them: the choice holds a few copies, and at
# 4,096 d the fit's own sample already fills most of the memory budget (16,384 rows there)


def codec_rows(n: int, input_dim: int) -> int:
    """Rows the codec phase uses of an ``n``-row sample at ``input_dim``."""
    return min(n, CODEC_ROWS, max(1024, CODEC_SAMPLE_BYTES // (4 * input_dim)))
REDUCER = "smec"  # how a head's own dims are named among the candidates
CRITERION = "recall@10 of held-back corpus rows' full-dim neighbours"
QUERY_CRITERION = ", averaged with the same for held-back unlabelled queries"


@dataclass
class BudgetCodec:
    """The codec chosen for one budget: what was chosen, why, and its fitted tables."""

    choice: Choice
    codec: Codec
    criterion: str = CRITERION

    @property
    def candidate(self) -> Candidate:
        return self.choice.candidate


def check_budgets(budgets: Iterable[int], input_dim: int, dims: Iterable[int], *, learned: bool = True,
                  rows: int | None = None, normalize: bool = True) -> tuple[int, ...]:
    """Distinct budgets, ascending, each in 1..4 * input_dim (bytes of the float vector) and met
    by at least one codec on the full vectors or at the head's ``dims`` that ``rows`` corpus rows
    can train (OPQ needs 256 once the criterion's rows are held back). Every codec searches unit
    vectors, so a head that keeps norms (``normalize=False``) has none."""
    out = tuple(sorted(set(budgets)))
    if out and not normalize:
        raise SmecError("byte budgets need a head that normalises: their codecs search unit vectors "
                        "(drop normalize=False / --no-normalize, or fit without budgets)")
    for b in out:
        if not (isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 1 <= b <= 4 * input_dim):
            raise SmecError(f"budget {b!r} must be a whole number of bytes in 1..{4 * input_dim} "
                            f"({4 * input_dim} = the float32 vector itself)")
        train = None if rows is None else training_rows(codec_rows(rows, input_dim))
        if not candidates(input_dim, int(b), reducer=REDUCER, dims=tuple(dims), learned=learned, rows=train):
            raise SmecError(f"no codec stores a {input_dim}-d vector (or its head dims {list(dims)}) in {b} bytes"
                            + ("" if rows is None else f" from {rows:,} rows"))
    return tuple(int(b) for b in out)


def candidate_count(input_dim: int, budget: int, dims: Iterable[int], *, codec_steps: int, rows: int) -> int:
    """How many candidates ``fit_budgets`` will measure at ``budget`` on ``rows`` rows (for bars):
    the pool, and one in-loop twin per family with a head candidate when ``codec_steps`` > 0."""
    pool = candidates(input_dim, budget, reducer=REDUCER, dims=tuple(dims), learned=codec_steps > 0,
                      rows=training_rows(codec_rows(rows, input_dim)))
    return len(pool) + (len(in_loop_families(pool)) if codec_steps > 0 else 0)


def fit_budgets(head, X: np.ndarray, budgets: Iterable[int], *, seed: int = 0, codec_steps: int = 400,
                queries: np.ndarray | None = None,
                on_candidate: Callable[[int, Candidate, float], None] | None = None) -> dict[int, BudgetCodec]:
    """Choose and fit a codec per budget for ``head`` on (``codec_rows`` of) the rows ``X``;
    the rank-trained codecs (rank-distilled OPQ, the in-loop ones) train ``codec_steps`` steps (0:
    not candidates). Unlabelled ``queries``
    join the criterion and anchor the rank-trained codecs (``codecs.budget.choose_budgets``); a
    candidate that fits several budgets is fitted once."""
    from ..codecs.rank_pq import RankTraining

    budgets = check_budgets(budgets, X.shape[1], head.dims_, learned=codec_steps > 0, rows=len(X),
                            normalize=head.config_.normalize)
    n = codec_rows(len(X), X.shape[1])
    rows = X if len(X) == n else X[np.sort(np.random.default_rng(seed).choice(len(X), n, replace=False))]
    training = RankTraining(steps=codec_steps) if codec_steps else None
    choices = choose_budgets(rows, budgets, reducer=REDUCER, fit_reducer=lambda _: head, dims=head.dims_, seed=seed,
                             learned=training is not None, training=training, queries=queries,
                             on_candidate=on_candidate)
    out = {}
    for budget, choice in choices.items():
        codec, choice.codec = choice.codec, None  # one home for the codec: as a loaded head has it
        out[budget] = BudgetCodec(choice, codec, CRITERION + (QUERY_CRITERION if choice.with_queries else ""))
    return out


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """Sorted 64-bit hashes of string ids: enough to test overlap without storing a query log."""
    import hashlib

    return np.sort(np.array([int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little")
                             for i in ids], dtype=np.uint64))


def anchored_on(head, query_ids: Iterable[str]) -> int | None:
    """How many of ``query_ids`` anchored ``head``'s codecs; None when its anchors' ids are unknown
    (fitted from Python without ``anchor_ids``) and 0 when it had no anchors."""
    if not getattr(head, "codecs_", None) or not head.anchors_:
        return 0
    if head.anchor_ids_ is None:
        return None
    return int(np.isin(id_hashes(query_ids), head.anchor_ids_).sum())


def view(head, X, cand: Candidate) -> np.ndarray:
    """``X`` (checked against the head's input dim) as ``cand``'s codec sees it."""
    from ..codecs.budget import view as codec_view
    from ..validation import check_matrix

    return codec_view(cand, check_matrix("X", X, input_dim=head.input_dim_), head)


def save_budgets(codecs: dict[int, BudgetCodec], directory: Path, *, anchors: int = 0,
                 anchor_ids: np.ndarray | None = None) -> None:
    """``codecs.json`` and one ``codec-BUDGET.bin`` per budget, each written atomically; with no
    codecs, the directory is left with none (a head saved over one fitted with budgets)."""
    from ..data.atomic import atomic_file, write_text

    for stale in directory.glob("codec-*.bin"):  # from an earlier save with other budgets
        if int(stale.stem.split("-")[1]) not in codecs:
            stale.unlink()
    if anchor_ids is None:
        (directory / ANCHORS_FILE).unlink(missing_ok=True)
    if not codecs:
        (directory / CODECS_FILE).unlink(missing_ok=True)
        return
    if anchor_ids is not None:
        with atomic_file(directory / ANCHORS_FILE) as tmp, open(tmp, "wb") as f:  # a path would get ".npy" appended
            np.save(f, anchor_ids, allow_pickle=False)
    meta = {}
    for budget, bc in codecs.items():
        name = f"codec-{budget}.bin"
        with atomic_file(directory / name) as tmp:
            tmp.write_bytes(bc.codec.state())
        meta[str(budget)] = {"candidate": asdict(bc.candidate), "file": name, "code_size": int(bc.codec.code_size_),
                             "criterion": bc.criterion,
                             "recall": bc.choice.recall}
    write_text(directory / CODECS_FILE, json.dumps({"budgets": meta, "anchor_queries": anchors,
                                                    "anchor_ids_saved": anchor_ids is not None}, indent=2) + "\n")


def load_budgets(directory: Path) -> tuple[dict[int, BudgetCodec], int, np.ndarray | None]:
    """What ``save_budgets`` wrote: the codecs, how many unlabelled queries anchored them, and
    their id hashes (None when unknown); nothing when the head was fitted without budgets."""
    path = directory / CODECS_FILE
    if not path.is_file():
        return {}, 0, None
    try:
        doc = json.loads(path.read_text())
        meta = doc["budgets"]
        anchors = int(doc.get("anchor_queries", 0))
        ids = np.load(directory / ANCHORS_FILE, allow_pickle=False) if doc.get("anchor_ids_saved") else None
        out = {}
        for key, m in meta.items():
            cand = Candidate(**m["candidate"])
            if m["file"] != f"codec-{int(key)}.bin":  # never a path out of the head directory
                raise ValueError(f"codec file {m['file']!r} is not codec-{key}.bin")
            state = (directory / m["file"]).read_bytes()
            codec = make_codec(cand.codec, m=cand.m, bits=cand.bits).restore(state, cand.dim)
            out[int(key)] = BudgetCodec(Choice(int(key), cand, m["recall"]), codec, m.get("criterion", CRITERION))
        return out, anchors, ids
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # FAISS reports a bad file as RuntimeError
        raise SmecError(f"corrupt codecs in {directory}: {e}") from None

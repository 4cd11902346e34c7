"""A fitted head's codecs, one per byte budget: chosen without labels, fitted, saved beside it.

``fit --budgets 16,32`` asks, per budget, which (dim, codec) pair keeps most of the ranking:
``codecs.budget.choose`` scores every candidate (the head's dims and the full vectors, each with
OPQ, rank-distilled OPQ, RaBitQ, re-ranked sign bits or int8) by recall of held-back corpus
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
from ..codecs.budget import Candidate, Choice, candidates, choose
from ..errors import SmecError

CODECS_FILE = "codecs.json"
CODEC_ROWS = 100_000  # rows the choice and the codecs train on: k-means and OPQ need no more
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


def check_budgets(budgets: Iterable[int], input_dim: int, dims: Iterable[int], *, learned: bool = True) -> tuple[int, ...]:
    """Distinct budgets, ascending, each in 1..4 * input_dim (bytes of the float vector) and met
    by at least one codec on the full vectors or at the head's ``dims``."""
    out = tuple(sorted(set(budgets)))
    for b in out:
        if not (isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 1 <= b <= 4 * input_dim):
            raise SmecError(f"budget {b!r} must be a whole number of bytes in 1..{4 * input_dim} "
                            f"({4 * input_dim} = the float32 vector itself)")
        if not candidates(input_dim, int(b), reducer=REDUCER, dims=tuple(dims), learned=learned):
            raise SmecError(f"no codec stores a {input_dim}-d vector (or its head dims {list(dims)}) in {b} bytes")
    return tuple(int(b) for b in out)


def candidate_count(input_dim: int, budget: int, dims: Iterable[int], *, codec_steps: int) -> int:
    """How many candidates ``fit_budgets`` will measure at ``budget`` (for progress bars)."""
    return len(candidates(input_dim, budget, reducer=REDUCER, dims=tuple(dims), learned=codec_steps > 0))


def fit_budgets(head, X: np.ndarray, budgets: Iterable[int], *, seed: int = 0, codec_steps: int = 400,
                queries: np.ndarray | None = None,
                on_candidate: Callable[[int, Candidate, float], None] | None = None) -> dict[int, BudgetCodec]:
    """Choose and fit a codec per budget for ``head`` on (up to ``CODEC_ROWS`` of) the rows ``X``;
    rank-distilled OPQ trains ``codec_steps`` steps (0: not a candidate). Unlabelled ``queries``
    join the criterion and anchor rank-distilled OPQ (``codecs.budget.choose``)."""
    from ..codecs.rank_pq import RankTraining

    budgets = check_budgets(budgets, X.shape[1], head.dims_, learned=codec_steps > 0)
    rows = X if len(X) <= CODEC_ROWS else X[np.sort(np.random.default_rng(seed).choice(len(X), CODEC_ROWS, replace=False))]
    out = {}
    for budget in budgets:
        report = (lambda c, r, b=budget: on_candidate(b, c, r)) if on_candidate else None
        training = RankTraining(steps=codec_steps) if codec_steps else None
        choice = choose(rows, budget, reducer=REDUCER, fit_reducer=lambda _: head, dims=head.dims_, seed=seed,
                        learned=training is not None, training=training, queries=queries, on_candidate=report)
        out[budget] = BudgetCodec(choice, choice.codec, CRITERION if queries is None else CRITERION + QUERY_CRITERION)
    return out


def view(head, X: np.ndarray, cand: Candidate) -> np.ndarray:
    """``X`` as ``cand``'s codec sees it: through the head at its dim, or as it is."""
    return head.transform(X, cand.dim) if cand.reducer else np.asarray(X, dtype=np.float32)


def save_budgets(codecs: dict[int, BudgetCodec], directory: Path) -> None:
    """``codecs.json`` and one ``codec-BUDGET.bin`` per budget, each written atomically; with no
    codecs, the directory is left with none (a head saved over one fitted with budgets)."""
    from ..data.atomic import atomic_file, write_text

    if not codecs:
        (directory / CODECS_FILE).unlink(missing_ok=True)
        return
    meta = {}
    for budget, bc in codecs.items():
        name = f"codec-{budget}.bin"
        with atomic_file(directory / name) as tmp:
            tmp.write_bytes(bc.codec.state())
        meta[str(budget)] = {"candidate": asdict(bc.candidate), "file": name, "code_size": int(bc.codec.code_size_),
                             "criterion": bc.criterion,
                             "recall": bc.choice.recall}
    write_text(directory / CODECS_FILE, json.dumps({"budgets": meta}, indent=2) + "\n")


def load_budgets(directory: Path) -> dict[int, BudgetCodec]:
    """What ``save_budgets`` wrote; nothing when the head was fitted without budgets."""
    path = directory / CODECS_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())["budgets"]
        out = {}
        for key, m in meta.items():
            cand = Candidate(**m["candidate"])
            state = (directory / m["file"]).read_bytes()
            codec = make_codec(cand.codec, m=cand.m, bits=cand.bits).restore(state, cand.dim)
            out[int(key)] = BudgetCodec(Choice(int(key), cand, m["recall"]), codec, m.get("criterion", CRITERION))
        return out
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # FAISS reports a bad file as RuntimeError
        raise SmecError(f"corrupt codecs in {directory}: {e}") from None

"""Side-by-side retrieval quality of reducers at each target dim: the table users choose from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .beir import Qrels
from .evaluate import evaluate_retrieval
from .io import Embeddings


class Reducer(Protocol):
    def transform(self, X: np.ndarray, dim: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Row:
    """One method at one dim: size and quality."""

    method: str
    dim: int
    bytes_per_vector: int
    compression: float  # float32 full-dim bytes / this method's bytes
    ndcg10: float
    recall100: float
    pct_of_full: float  # nDCG@10 as % of the full-dim reference


def compare(
    corpus: Embeddings,
    queries: Embeddings,
    qrels: Qrels,
    dims: list[int],
    reducers: dict[str, Reducer],
) -> list[Row]:
    """Score the full vectors, then every reducer at every dim, on the same search."""
    full_bytes = 4 * corpus.dim
    full = evaluate_retrieval(corpus.ids, corpus.vectors, queries.ids, queries.vectors, qrels)
    rows = [Row("full", corpus.dim, full_bytes, 1.0, full["ndcg@10"], full["recall@100"], 100.0)]
    for name, reducer in reducers.items():
        for dim in dims:
            docs = reducer.transform(corpus.vectors, dim)
            qs = reducer.transform(queries.vectors, dim)
            m = evaluate_retrieval(corpus.ids, docs, queries.ids, qs, qrels)
            rows.append(
                Row(name, dim, 4 * dim, full_bytes / (4 * dim), m["ndcg@10"], m["recall@100"], 100 * m["ndcg@10"] / full["ndcg@10"])
            )
    return rows


HEADER = ("method", "dim", "bytes/vector", "compression", "nDCG@10", "Recall@100", "% of full")


def row_cells(row: Row) -> tuple[str, ...]:
    return (
        row.method,
        str(row.dim),
        str(row.bytes_per_vector),
        f"{row.compression:.1f}x",
        f"{row.ndcg10:.4f}",
        f"{row.recall100:.4f}",
        f"{row.pct_of_full:.1f}",
    )


def to_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(rows: list[Row], out: Path, *, info: dict) -> None:
    """``report.json`` (rows + how they were made) and ``report.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=2))
    (out / "report.md").write_text(to_markdown(rows))

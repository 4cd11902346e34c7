"""The comparison as tables: terminal/markdown rows, the best method per byte budget, and the
``report.json`` / ``report.md`` files ``eval --out`` writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from .compare import Row

HEADER = ("method", "dim", "bytes/vector", "compression", "nDCG@10", "Recall@100", "% of full")
HELDOUT_HEADER = "nDCG@10 held-out"
# The same columns named to fit an 80-column terminal (the files keep the long names).
SHORT = {"bytes/vector": "bytes", "compression": "ratio", "Recall@100": "R@100", "% of full": "% full",
         HELDOUT_HEADER: "held-out", "bytes/vector <=": "budget", "nDCG@10 all queries": "all queries"}


def short(columns: tuple[str, ...]) -> tuple[str, ...]:
    """Terminal names of ``columns``: "best method (by X)" becomes "best method"."""
    return tuple("best method" if c.startswith("best method") else SHORT.get(c, c) for c in columns)


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


def ranking(rows: list[Row]) -> tuple[str, Callable[[Row], float]]:
    """What "best" means: held-out nDCG@10 when every row has it, else nDCG@10 on all queries.

    On all queries a supervised head is flattered by the labels it was trained on, and would top
    every budget for that reason alone.
    """
    if rows and all(r.ndcg10_heldout is not None for r in rows):
        return "nDCG@10 held-out", lambda r: r.ndcg10_heldout
    return "nDCG@10", lambda r: r.ndcg10


def best_within(rows: list[Row], budgets: Iterable[int]) -> list[tuple[int, Row]]:
    """For each byte budget, the best method that fits in it (stored bytes <= budget): the
    question users actually ask. Budgets nothing fits are left out, and so are rescored rows
    (they also read full vectors from disk)."""
    _, key = ranking(rows)
    best = []
    for budget in sorted(set(budgets)):
        fitting = [r for r in rows if r.bytes_per_vector <= budget and not r.rescored]
        if fitting:
            best.append((budget, max(fitting, key=key)))
    return best


def budget_cells(budget: int, row: Row, rows: list[Row]) -> tuple[str, ...]:
    """One line of the best-per-budget table; % of full is against the first row (the reference)."""
    _, key = ranking(rows)
    return (str(budget), label(row), str(row.dim), str(row.bytes_per_vector), f"{key(row):.4f}",
            f"{100 * key(row) / key(rows[0]):.1f}", f"{row.ndcg10:.4f}")


def budget_header(rows: list[Row]) -> tuple[str, ...]:
    name, _ = ranking(rows)
    return ("bytes/vector <=", f"best method (by {name})", "dim", "bytes", name, "% of full", "nDCG@10 all queries")


def best_per_budget(rows: list[Row], budgets: Iterable[int]) -> str:
    """The best method within each byte budget, as a markdown table."""
    lines = ["| " + " | ".join(budget_header(rows)) + " |", "|---:|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(budget_cells(b, r, rows)) + " |" for b, r in best_within(rows, budgets)]
    return "\n".join(lines) + "\n"


def write_report(rows: list[Row], out: Path, *, info: dict, budgets: Iterable[int] = ()) -> None:
    """``report.json`` (rows + how they were made) and ``report.md`` in ``out``; the best-per-budget
    table covers ``budgets`` and every size a row stores."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=2))
    budgets = sorted({r.bytes_per_vector for r in rows} | set(budgets))
    notes = "\n".join(f"- {k}: {v}" for k, v in info.items())
    (out / "report.md").write_text(
        f"{notes}\n\n{to_markdown(rows)}\nBest nDCG@10 within each byte budget:\n\n{best_per_budget(rows, budgets)}"
    )



"""The comparison as tables: terminal/markdown rows, the best method per byte budget, and the
``report.json`` / ``report.md`` files ``eval --out`` writes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from .compare import Row

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



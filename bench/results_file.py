"""Where a benchmark's resumable results live: ``bench/results/STEM.json`` (every finished cell)
and ``STEM.md`` (its BENCHMARKS section, rendered from them), both written atomically."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress.data.atomic import write_text  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def save_results(stem: str, results: dict, render: Callable[[dict], str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / f"{stem}.json", json.dumps(results, indent=2) + "\n")
    write_text(RESULTS / f"{stem}.md", render(results))

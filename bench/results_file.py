"""Where a benchmark's resumable results live: ``bench/results/STEM.json`` (every finished cell)
and ``STEM.md`` (its BENCHMARKS section, rendered from them), both written atomically."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import SECTIONS, measured_at, stamped  # noqa: E402
from smec_compress.data.atomic import write_text  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def save_results(stem: str, results: dict, render: Callable[[dict], str]) -> None:
    """Both files; a section of heads fitted at the defaults is stamped with them (``fit_defaults``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / f"{stem}.json", json.dumps(results, indent=2) + "\n")
    markdown = render(results)
    write_text(RESULTS / f"{stem}.md", stamped(markdown, measured_at(results)) if stem in SECTIONS else markdown)

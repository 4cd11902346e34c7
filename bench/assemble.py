"""Assemble BENCHMARKS.md from the sections the bench scripts write to ``bench/results/*.md``.

    .venv/bin/python bench/assemble.py

Each section carries its own command, machine and date; this script only orders and joins them,
so every number in BENCHMARKS.md comes from a script run, never from an edit by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from fit_defaults import SECTIONS, banner  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ORDER = ["smec_quality", "fit_speed", "defaults", "quality", "matrix", "scarce_labels", "budgets", "codec_time", "opq_trainers", "budget_ivf", "rescore", "service", "dot_product", "io_memory", "formats", "scale", "fit_scale"]

HEADER = """# Benchmarks

Every section below is written by a script in `bench/` (its command, machine and date are in the
section) and joined here by `python bench/assemble.py`. Regenerate a section by re-running its
script. Quality numbers, unless a section says otherwise: BEIR SciFact test split from
`../shared/data/scifact`, all-MiniLM-L6-v2 (384 d), exact inner-product search, nDCG@10 from
trec_eval (pytrec_eval).
"""


def with_banner(stem: str, markdown: str) -> str:
    """``markdown`` with a note under its heading when its heads were fitted at other defaults."""
    note = banner(markdown) if stem in SECTIONS else ""
    if not note:
        return markdown
    heading, _, rest = markdown.partition("\n")
    return f"{heading}\n\n{note}{rest}"


def main() -> None:
    sections = sorted(RESULTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    body = "\n".join(with_banner(p.stem, p.read_text()).rstrip() + "\n" for p in sections)
    (ROOT / "BENCHMARKS.md").write_text(HEADER + "\n" + body)
    print(f"BENCHMARKS.md: {len(sections)} sections ({', '.join(p.stem for p in sections)})")


if __name__ == "__main__":
    main()

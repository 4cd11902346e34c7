"""Which fit defaults a section's numbers were measured at, so a change of default never leaves a
BENCHMARKS table silently claiming numbers today's defaults did not produce.

A section whose numbers come from heads fitted at the defaults carries a stamp (an HTML comment,
invisible in the rendered page) of ``FitConfig``'s defaults at the time of the run;
``bench/assemble.py`` puts a banner on any such section whose stamp differs from today's defaults,
naming each knob that changed. Resumable benchmarks store the stamp with their cells and start
afresh when it no longer matches (their saved cells and cached heads were fitted at other
defaults); their head caches are named by ``tag()``, so stale heads are never reused.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress.config import FitConfig  # noqa: E402

# The defaults that differed before 2026-12-03 (every section saved before stamps existed was measured
# at them): lr 1e-3 and sim_weight 1, replaced by the lr=3e-3 + sim_weight=0 variant of bench/defaults.py
# (sim_weight back at 1 since 2026-12-04: bench/fit_scale.py's recall at 1M rows).
BEFORE_STAMPS = {"lr": 1e-3, "sim_weight": 1.0}
# Sections whose numbers come from heads fitted at the defaults (bench/defaults.py pins its own baseline).
SECTIONS = frozenset({"smec_quality", "fit_speed", "quality", "matrix", "scarce_labels", "budgets", "codec_time",
                      "service", "dot_product", "fit_scale", "budget_ivf", "rescore"})
_STAMP = re.compile(r"<!-- fit defaults: (\{.*?\}) -->")


def current() -> dict:
    """Today's ``FitConfig`` defaults, JSON-ready."""
    return FitConfig().to_dict()


def before_stamps() -> dict:
    """The defaults of results saved before stamps existed."""
    return {**current(), **BEFORE_STAMPS}


def measured_at(results: dict) -> dict:
    """The defaults saved ``results`` were fitted at (``fresh_if_changed`` records them)."""
    return results.get("fit_defaults") or before_stamps()


def stamped(markdown: str, defaults: dict) -> str:
    """``markdown`` with the stamp of ``defaults`` (those its heads were fitted at) as its last line."""
    return _STAMP.sub("", markdown).rstrip() + "\n\n" + f"<!-- fit defaults: {json.dumps(defaults, sort_keys=True)} -->\n"


def stamp_of(markdown: str) -> dict:
    """The defaults a section was measured at: its stamp, or those before stamps existed."""
    found = _STAMP.search(markdown)
    return json.loads(found.group(1)) if found else before_stamps()


def changed(measured_at: dict) -> dict[str, tuple]:
    """``{knob: (then, now)}`` for every default that differs from today's."""
    now = current()
    return {k: (measured_at.get(k), v) for k, v in now.items() if measured_at.get(k) != v}


def tag() -> str:
    """A short name for today's defaults, for caches of heads fitted at them."""
    return hashlib.sha1(json.dumps(current(), sort_keys=True).encode()).hexdigest()[:8]


def fresh_if_changed(results: dict, name: str, cells: str | tuple[str, ...] = "cells") -> dict:
    """``results`` as saved, or emptied of its ``cells`` (one key or several) when they were fitted
    at other defaults (saved before stamps existed: the defaults of ``BEFORE_STAMPS``): a resumed
    run never mixes cells of two defaults in one table."""
    keys = (cells,) if isinstance(cells, str) else cells
    diff = changed(measured_at(results)) if any(results.get(k) for k in keys) else {}
    if diff:
        print(f"{name}: the saved cells were fitted at other defaults "
              f"({', '.join(f'{k} {a} -> {b}' for k, (a, b) in diff.items())}): starting afresh", flush=True)
        results = {**results, **{k: {} for k in keys}}  # one new dict each: the cells are filled in place
    return {**results, "fit_defaults": current()}


def banner(markdown: str) -> str:
    """The note ``bench/assemble.py`` puts under a stale section's heading ('' when current)."""
    diff = changed(stamp_of(markdown))
    if not diff:
        return ""
    knobs = ", ".join(f"{k} {a} (today {b})" for k, (a, b) in diff.items())
    return (f"> **Measured at earlier fit defaults**: {knobs}. These numbers are not today's defaults'; "
            "re-run the section's command to regenerate them (or check out the commit that wrote them).\n")

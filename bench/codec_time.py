"""What ``fit --budgets`` costs (issue 15: the codec phase may add at most 50% to the same fit).

    .venv/bin/python bench/codec_time.py [--datasets scifact nfcorpus cisi] [--budgets 16 32 48 64]
                                         [--threads 2] [--seed 0]

Per dataset (MiniLM through the embedding cache), in one process and one after the other so the
same machine load falls on both: a default ``SMEC(seed=...).fit(corpus)`` without budgets, then
the codec phase ``fit(corpus, budgets=...)`` adds on that same head (``SMEC.fit_codecs``, what
``SMEC.fit`` runs after the float training), timed per candidate. Run it alone: two heavy
jobs on two cores double both clocks. Results: bench/results/codec_time.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import fresh_if_changed  # noqa: E402
from results_file import save_results  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.evalset import load_evalset  # noqa: E402

SHARED = ROOT.parent / "shared"
STEM = "codec_time"


def family(key: str) -> str:
    """A candidate's codec without its dims, bits or rotation: the columns of the per-family table."""
    return re.sub(r"-unrotated|-\dbit", "", key.split(" ")[0].removeprefix("smec+"))


def run(name: str, args) -> dict:
    from smec_compress import SMEC

    data = load_evalset(SHARED / "data" / name, qrels_path=None, split="test", model=None, cache_dir=default_cache_dir())
    X = data.corpus.vectors
    start = time.perf_counter()
    head = SMEC(seed=args.seed).fit(X, threads=args.threads)
    fit_s = time.perf_counter() - start
    seconds: dict[str, float] = defaultdict(float)
    last = [time.perf_counter()]

    def timed(budget, cand, recall):
        now = time.perf_counter()
        took, last[0] = now - last[0], now
        seconds[family(cand.key)] += took
        print(f"{name} {budget:3d} B {cand.key:40s} {recall:.3f} {took:.1f}s", flush=True)

    start = last[0] = time.perf_counter()
    head.fit_codecs(X, args.budgets, threads=args.threads, codec_progress=timed)  # as fit(..., budgets=) runs it
    codec_s = time.perf_counter() - start
    codecs = head.codecs_
    return {"rows": len(X), "dim": X.shape[1], "fit_seconds": fit_s, "codec_seconds": codec_s,
            "by_family": dict(seconds), "chosen": {str(b): bc.candidate.key for b, bc in codecs.items()}}


def render(results: dict) -> str:
    m = results["machine"]
    lines = ["## What the codec phase costs", "",
             f"`{results['command']}` ({m['date']}, {m['arch']}, {m['nproc']} CPUs, torch and FAISS on "
             f"{results['threads']} threads, nothing else running).", "",
             "A default fit without budgets, then the codec phase `fit --budgets "
             + ",".join(map(str, results["budgets"])) + "` adds on that same head (every candidate of every budget "
             "fitted and scored by the label-free criterion, the winners kept). Issue 15 allows the codec phase at "
             "most 50% of the fit.", "",
             "| dataset | rows | fit (s) | codec phase (s) | codec / fit | chosen |", "|---|---:|---:|---:|---:|---|"]
    for name, r in results["cells"].items():
        chosen = "; ".join(f"{b} B: {k}" for b, k in r["chosen"].items())
        lines.append(f"| {name} | {r['rows']:,} | {r['fit_seconds']:.0f} | {r['codec_seconds']:.0f} | "
                     f"{r['codec_seconds'] / r['fit_seconds']:.0%} | {chosen} |")
    families = sorted({f for r in results["cells"].values() for f in r["by_family"]})
    lines += ["", "Seconds of the codec phase per codec family (all budgets and dims together):", "",
              "| dataset | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]
    for name, r in results["cells"].items():
        lines.append(f"| {name} | " + " | ".join(f"{r['by_family'].get(f, 0):.0f}" for f in families) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus", "cisi"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[16, 32, 48, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the saved .json")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    path = ROOT / "bench" / "results" / f"{STEM}.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    if not args.render_only:
        earlier = fresh_if_changed(earlier, STEM)
    same = earlier.get("threads") == args.threads and earlier.get("budgets") == args.budgets
    results = {"command": "python bench/codec_time.py " + " ".join(sys.argv[1:]), "threads": args.threads,
               "budgets": args.budgets, "cells": earlier.get("cells", {}) if same else {},  # other datasets' rows stay
               "fit_defaults": earlier.get("fit_defaults"),
               "machine": {"arch": platform.machine(), "nproc": os.cpu_count(), "date": date.today().isoformat()}}
    if args.render_only:
        results = earlier
    for name in [] if args.render_only else args.datasets:
        results["cells"][name] = run(name, args)
        save_results(STEM, results, render)
        print(render(results), flush=True)
    save_results(STEM, results, render)


if __name__ == "__main__":
    main()

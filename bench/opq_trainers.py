"""FAISS' OPQ against the same algorithm on torch kernels (``OPQ(trainer="torch")``, what the
byte-budget choice fits): the choice's criterion and the seconds per fit.

    .venv/bin/python bench/opq_trainers.py [--datasets scifact nfcorpus cisi] [--bytes 16 32 48 64]
                                           [--seeds 0] [--threads 2]

Per dataset (MiniLM through the embedding cache): the choice's split (``codecs.budget``: up to
1,000 corpus rows held back, seed 0), each trainer fitted on the other rows at ``m`` = bytes on
the full unit vectors, scored by recall@10 of the held-back rows' full-dim top-10. Run it alone:
the seconds are wall clock on a shared machine. Results: bench/results/opq_trainers.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import save_results  # noqa: E402
from smec_compress.codecs import OPQ  # noqa: E402
from smec_compress.codecs.base import exact_search  # noqa: E402
from smec_compress.codecs.budget import neighbour_recall, split_held_back  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.evalset import load_evalset  # noqa: E402
from smec_compress.normalize import l2_normalize  # noqa: E402

SHARED = ROOT.parent / "shared"
STEM = "opq_trainers"
TRAINERS = ("faiss", "torch")


def run(name: str, args) -> list[dict]:
    data = load_evalset(SHARED / "data" / name, qrels_path=None, split="test", model=None, cache_dir=default_cache_dir())
    held, train = split_held_back(l2_normalize(np.array(data.corpus.vectors, dtype=np.float32)))  # as the choice
    truth = exact_search(train, held, 10)[1]
    rows = []
    for m in args.bytes:
        for seed in args.seeds:
            for trainer in TRAINERS:
                start = time.perf_counter()
                codec = OPQ(m, seed=seed, trainer=trainer).fit(train)
                seconds = time.perf_counter() - start
                recall = neighbour_recall(codec.search(codec.encode(train), held, 10)[1], truth)
                rows.append({"dataset": name, "bytes": m, "seed": seed, "trainer": trainer, "recall": recall,
                             "seconds": seconds})
                print(f"{name} {m:3d} B seed {seed} {trainer:6s} recall@10 {recall:.3f} {seconds:.1f}s", flush=True)
    return rows


def render(results: dict) -> str:
    m = results["machine"]
    lines = ["## OPQ: FAISS' trainer against the same algorithm on torch kernels", "",
             f"`{results['command']}` ({m['date']}, {m['arch']}, {m['nproc']} CPUs, {results['threads']} threads).", "",
             "The byte-budget choice fits OPQ at every budget, on the full vectors and on several head dims; it uses "
             "`OPQ(trainer=\"torch\")`, FAISS' OPQMatrix algorithm (random orthogonal start, 20 alternations of a "
             "warm-started PQ k-means and an orthogonal Procrustes step) on torch kernels. The yardstick OPQ of "
             "`eval` and the budgets bench stays FAISS' own. Criterion of the choice (recall@10 of up to 1,000 "
             "held-back corpus rows' full-dim top-10, the OPQ fitted on the rest, full 384-d unit vectors, "
             f"mean of seeds {', '.join(map(str, results['seeds']))}) and seconds per fit:", "",
             "| dataset | bytes | FAISS recall | torch recall | torch - FAISS | FAISS (s) | torch (s) | speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    cells: dict[tuple, dict[str, list[dict]]] = {}
    for r in results["rows"]:
        cells.setdefault((r["dataset"], r["bytes"]), {}).setdefault(r["trainer"], []).append(r)
    for (name, b), by in cells.items():
        rec = {t: float(np.mean([r["recall"] for r in by[t]])) for t in TRAINERS}
        sec = {t: float(np.mean([r["seconds"] for r in by[t]])) for t in TRAINERS}
        lines.append(f"| {name} | {b} | {rec['faiss']:.3f} | {rec['torch']:.3f} | {rec['torch'] - rec['faiss']:+.3f} | "
                     f"{sec['faiss']:.1f} | {sec['torch']:.1f} | {sec['faiss'] / sec['torch']:.1f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus", "cisi"])
    parser.add_argument("--bytes", nargs="+", type=int, default=[16, 32, 48, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import faiss
    import torch

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    results = {"command": "python bench/opq_trainers.py " + " ".join(sys.argv[1:]), "threads": args.threads,
               "seeds": args.seeds, "rows": [],
               "machine": {"arch": platform.machine(), "nproc": os.cpu_count(), "date": date.today().isoformat()}}
    for name in args.datasets:
        results["rows"] += run(name, args)
        save_results(STEM, results, render)
    print(render(results))


if __name__ == "__main__":
    main()

"""Inverted lists over a budget's codes at scale (issue 15): what ``index --budget`` builds above
a million rows, against the exact scan of the same codes.

    .venv/bin/python bench/budget_ivf.py [--rows 1000000] [--queries 1000]

Synthetic clustered 384-d unit vectors (bench/fit_scale.py's generator), a default SMEC head
fitted on 100,000 of them, given two budget codecs by hand (OPQ at 16 bytes on the full vectors,
int8 behind the head's 32 d: the two index families ``with_inverted_lists`` covers), each
indexed flat and as inverted lists (``with_inverted_lists``, nprobe 32 and 128). Reported: recall@10
of the inverted lists against the flat scan of the same codes, for held-out queries, and queries
per second of both (one FAISS thread). Writes bench/results/budget_ivf.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fit_scale import clustered  # noqa: E402
from smec_compress import SMEC  # noqa: E402
from smec_compress.codecs.budget import Candidate, Choice, fit_candidate  # noqa: E402
from smec_compress.data.atomic import write_text  # noqa: E402
from smec_compress.export.budget_index import budget_index, with_inverted_lists  # noqa: E402
from smec_compress.model.budgets import BudgetCodec  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CODECS = {16: Candidate("opq", 384, None, m=16), 32: Candidate("int8", 32, "smec")}


def timed_search(index, queries, k=10):
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, len(queries) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--fit-rows", type=int, default=100_000, help="rows the head is fitted on")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    x = np.concatenate(list(clustered(args.rows + args.queries, 384, seed=3)))
    queries, x = x[: args.queries], x[args.queries :]
    head = SMEC(dims=(64, 32)).fit(x[: args.fit_rows], threads=2)
    head.codecs_ = {b: BudgetCodec(Choice(b, c, {}), fit_candidate(c, x[: args.fit_rows], head)) for b, c in CODECS.items()}
    rows = []
    for budget, cand in CODECS.items():
        flat = budget_index(head, budget)
        flat.add(x)
        truth, flat_qps = timed_search(flat, queries)
        for nprobe in (32, 128):
            ivf = with_inverted_lists(budget_index(head, budget), x[:262_144], rows=len(x), nprobe=nprobe)
            ivf.add(x)
            found, ivf_qps = timed_search(ivf, queries)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
            rows.append({"budget": budget, "codec": cand.key, "nlist": int(faiss.downcast_index(ivf.index).nlist),
                         "nprobe": nprobe, "recall10": recall, "flat_qps": flat_qps, "ivf_qps": ivf_qps})
            print(rows[-1], flush=True)
    info = {"rows": len(x), "queries": args.queries, "date": date.today().isoformat(), "arch": platform.machine(),
            "nproc": os.cpu_count(), "command": "python bench/budget_ivf.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "budget_ivf.json", json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    lines = ["## Inverted lists over a budget's codes (`index --budget` above 1M rows)", "",
             f"`{info['command']}` ({info['date']}, {info['arch']}, {info['nproc']} CPUs, one FAISS thread). "
             f"{info['rows']:,} synthetic clustered 384-d vectors, {info['queries']:,} held-out queries: recall@10 of "
             "the inverted lists against the exact scan of the same codes, and queries per second of both.", "",
             "| bytes | codec | nlist | nprobe | recall@10 vs exact codes | exact QPS | IVF QPS |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['budget']} | {r['codec']} | {r['nlist']} | {r['nprobe']} | {r['recall10']:.4f} | {r['flat_qps']:.0f} | "
              f"{r['ivf_qps']:.0f} |" for r in rows]
    write_text(RESULTS / "budget_ivf.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

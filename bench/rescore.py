"""Two-stage search (issue 17): every reducer and codec `eval` knows, alone and with its top 100
candidates rescored by the full vectors, at the same bytes of RAM.

    .venv/bin/python bench/rescore.py [--dataset scifact] [--rescore 100]

Runs ``run_comparison`` (what ``eval --rescore`` runs) on ../shared/data/DATASET with the bundled
model (the embedding cache), dims 16 / 32 / 64 / 128 and byte budgets 16 / 32 / 64, and writes
bench/results/rescore.md (the BENCHMARKS section) and .json. The full vectors a rescored row reads
are on disk in a vector database (and in RAM in our service today), not in its bytes column.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress.data.atomic import write_text  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.evalset import load_evalset  # noqa: E402
from smec_compress.evaluation.run import run_comparison  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def render(rows: list[dict], info: dict) -> str:
    base = {(r["method"], r["dim"], r["bytes_per_vector"]): r for r in rows if not r["rescored"]}
    lines = [f"## Two-stage search: compressed candidates rescored with the full vectors ({info['dataset']})", "",
             f"`{info['command']}` ({info['date']}, {info['arch']}, {info['nproc']} CPUs). nDCG@10 on the test "
             f"queries of each method alone and with its top {info['rescore']} candidates rescored by exact inner "
             "product with the full vectors (`eval --rescore`, `/search?rescore=`); bytes are the compressed index's "
             f"per vector. Full vectors: {rows[0]['ndcg10']:.4f}.", "",
             "| method | dim | bytes | nDCG@10 | rescored | R@100 |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["rescored"]:
            plain = base[(r["method"].rsplit(" +rescore", 1)[0], r["dim"], r["bytes_per_vector"])]
            lines.append(f"| {plain['method']} | {r['dim']} | {r['bytes_per_vector']} | {plain['ndcg10']:.4f} | "
                         f"{r['ndcg10']:.4f} | {r['recall100']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--rescore", type=int, default=100)
    args = ap.parse_args()
    data = load_evalset(ROOT.parent / "shared" / "data" / args.dataset, qrels_path=None, split="test", model=None,
                        cache_dir=default_cache_dir())
    result = run_comparison(data, [16, 32, 64, 128], budgets=[16, 32, 64], adaptor=False, rescore=args.rescore)
    rows = [r.__dict__ for r in result.rows]
    info = {"dataset": args.dataset, "rescore": args.rescore, "date": date.today().isoformat(), "arch": platform.machine(),
            "nproc": os.cpu_count(), "command": "python bench/rescore.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "rescore.json", json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    write_text(RESULTS / "rescore.md", render(rows, info))


if __name__ == "__main__":
    main()

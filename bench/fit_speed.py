"""Fit speed: joint vs sequential SMRL training, on SciFact, NFCorpus and CISI (all-MiniLM-L6-v2).

    .venv/bin/python bench/fit_speed.py [--data-root DIR] [--datasets scifact nfcorpus cisi]
                                        [--seeds 0 1 2] [--out DIR] [--render-only]

For each dataset, seed and variant (today's default, sequential: the 5 stages 128/64/48/32/16
trained one after another; joint: ``sequential=False``, all stages in one run) one SMEC head is
fitted on the corpus vectors with one torch thread, timed, and scored by test nDCG@10 at
16/32/48/64 d (exact inner-product search over the top 100); our uncentred PCA is the reference
row. Every training step is counted through ``fit``'s progress callback (steps, seconds per
step). Datasets are embedded once with the bundled model through the package's embedding cache.

Every (dataset, variant, seed) result is written to bench/results/fit_speed.json as soon as it
finishes; a rerun skips the results already there, so an interrupted run resumes.
bench/results/fit_speed.md is a BENCHMARKS.md section; ``--render-only`` rebuilds it from the json.
Run one of these at a time: each fit uses one core.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fit_defaults import fresh_if_changed, measured_at, stamped  # noqa: E402

DIMS = (16, 32, 48, 64)
CHAIN = (128, 64, 48, 32, 16)
# Explicit parameters, so the rows keep their meaning whatever the defaults are. The first is 0.1.0's
# default (the reference); the keys are the labels the results are saved under.
VARIANTS = {
    "sequential (today's default)": {"sequential": True, "epochs_per_stage": 20},
    "joint": {"sequential": False, "epochs_per_stage": 20},
    "joint, 40 epochs": {"sequential": False, "epochs_per_stage": 40},
}
SEQ = next(iter(VARIANTS))
# how the saved labels read in the table now that joint, 40 epochs is the default
SHOWN = {SEQ: "sequential (0.1.0's default)", "joint, 40 epochs": "joint, 40 epochs (the default)"}
TOLERANCE = 0.005
DATASETS = ("scifact", "nfcorpus", "cisi")


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"datasets": {}}


def save(results: dict, path: Path) -> None:
    """Atomically (the package's own helper): a kill mid-write never loses earlier results."""
    from smec_compress.data.atomic import write_text

    write_text(path, json.dumps(results, indent=2) + "\n")


class StepCounter:
    """``fit``'s progress callback: steps per stage and the time from each stage's first to last step."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    def __call__(self, p) -> None:
        now = time.perf_counter()
        s = self.stages.setdefault(p.stage, {"steps": 0, "total": p.total, "t_first": now, "t_last": now})
        s["steps"] += 1
        s["t_last"] = now

    def summary(self) -> dict:
        steps = sum(s["steps"] for s in self.stages.values())
        # first to last step of each stage covers steps - 1 intervals
        loop = sum(s["t_last"] - s["t_first"] for s in self.stages.values())
        intervals = sum(s["steps"] - 1 for s in self.stages.values())
        return {"steps": steps, "steps_per_stage": {k: s["steps"] for k, s in self.stages.items()},
                "seconds_per_step": loop / intervals if intervals else None}


def score(ev, fn) -> dict:
    from smec_compress.evaluation.retrieval import evaluate_retrieval

    return {str(d): evaluate_retrieval(ev.corpus.ids, fn(ev.corpus.vectors, d), ev.queries.ids,
                                       fn(ev.queries.vectors, d), ev.qrels)["ndcg@10"] for d in DIMS}


def run(args) -> None:
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    from smec_compress import PCA, SMEC
    from smec_compress.evaluation.cache import default_cache_dir
    from smec_compress.evaluation.evalset import load_evalset
    from smec_compress.evaluation.retrieval import evaluate_retrieval

    path = args.out / "fit_speed.json"
    results = fresh_if_changed(load(path), "fit_speed", "datasets")
    results["machine"] = machine(args)
    t_run = time.perf_counter()
    for name in args.datasets:
        ds = results["datasets"].setdefault(name, {"runs": {v: {} for v in VARIANTS}})
        todo = [(v, s) for v in VARIANTS for s in args.seeds if str(s) not in ds["runs"].setdefault(v, {})]
        if not todo and "pca" in ds:
            print(f"{name}: all done", flush=True)
            continue
        t = time.perf_counter()
        ev = load_evalset(args.data_root / name, qrels_path=None, split="test", model=None, cache_dir=default_cache_dir())
        print(f"{name}: {len(ev.corpus.ids)} docs, {len(ev.queries.ids)} queries, {len(ev.qrels)} judged "
              f"(loaded in {time.perf_counter() - t:.0f} s)", flush=True)
        if "pca" not in ds:
            X = ev.corpus.vectors
            ds.update(docs=len(ev.corpus.ids), judged_queries=len(ev.qrels), input_dim=int(X.shape[1]),
                      full=evaluate_retrieval(ev.corpus.ids, ev.corpus.vectors, ev.queries.ids, ev.queries.vectors,
                                              ev.qrels)["ndcg@10"])
            pca = PCA().fit(X)
            ds["pca"] = score(ev, pca.transform)
            save(results, path)
        for variant, seed in todo:
            counter = StepCounter()
            t = time.perf_counter()
            head = SMEC(dims=CHAIN, seed=seed, **VARIANTS[variant]).fit(ev.corpus.vectors, threads=1, progress=counter)
            secs = time.perf_counter() - t
            r = {"ndcg": score(ev, head.transform), "fit_seconds": secs, **counter.summary()}
            ds["runs"][variant][str(seed)] = r
            results["machine"]["wall_seconds_this_run"] = time.perf_counter() - t_run
            save(results, path)
            print(f"{name} {variant} seed {seed}: " + " ".join(f"{d}d {v:.4f}" for d, v in r["ndcg"].items())
                  + f"  fit {secs:.0f} s, {r['steps']} steps, {r['seconds_per_step'] * 1000:.0f} ms/step", flush=True)
    results["machine"]["wall_seconds_this_run"] = time.perf_counter() - t_run
    save(results, path)
    render(results, args.out / "fit_speed.md")


def machine(args) -> dict:
    return {"arch": platform.machine(), "nproc": os.cpu_count(), "date": datetime.date.today().isoformat(),
            "command": ("HF_HUB_OFFLINE=1 .venv/bin/python bench/fit_speed.py " + " ".join(sys.argv[1:])).strip()}


def mean(runs: dict, key) -> float:
    return float(np.mean([key(r) for r in runs.values()]))


def render(results: dict, path: Path) -> None:
    m = results["machine"]
    lines = ["## Fit speed: joint vs sequential training", "",
             f"SMEC with `dims=(128, 64, 48, 32, 16)`, fitted on each corpus's vectors alone (all-MiniLM-L6-v2, "
             f"384 d), once per seed; test nDCG@10, exact inner-product search; seeds per row in brackets. "
             f"*Sequential* (0.1.0's default, `sequential=True`) trains the 5 stages one after another, each for "
             f"its own schedule (20 epochs, at least 300 and at most 2,000 steps of 256 rows); *joint* "
             f"(`sequential=False`) trains all stages at once on the sum of the nested losses, for one such "
             f"schedule (*40 epochs*: twice as long on small corpora; a 1M-row sample hits the 2,000-step cap "
             f"either way). Fit seconds: one torch thread, one fit at a time, PCA initialisation included. "
             f"Machine: {m['arch']}, {m['nproc']} CPUs; {m['date']}; `{m['command'].strip()}`.", ""]
    verdicts: dict[str, tuple[list, list]] = {}
    for name, ds in results["datasets"].items():
        if "pca" not in ds:
            continue
        runs = {v: ds["runs"].get(v, {}) for v in VARIANTS}
        lines += [f"**{name}** ({ds['docs']:,} docs, {ds['judged_queries']} judged test queries; full "
                  f"{ds['input_dim']} d = {ds['full']:.3f})", "",
                  "| method | " + " | ".join(f"{d} d" for d in DIMS) + " | fit s | steps | ms/step |",
                  "|---|" + "---|" * (len(DIMS) + 3)]
        lines.append("| PCA (uncentred) | " + " | ".join(f"{ds['pca'][str(d)]:.3f}" for d in DIMS) + " | | | |")
        for v, rs in runs.items():
            if not rs:
                continue
            cells = [f"{mean(rs, lambda r: r['ndcg'][str(d)]):.3f}" for d in DIMS]
            lines.append(f"| SMEC, {SHOWN.get(v, v)} [{len(rs)}] | " + " | ".join(cells)
                         + f" | {mean(rs, lambda r: r['fit_seconds']):.0f} | {mean(rs, lambda r: r['steps']):,.0f}"
                         f" | {1000 * mean(rs, lambda r: r['seconds_per_step']):.0f} |")
        for v in list(VARIANTS)[1:]:
            if not (runs[SEQ] and runs[v]):
                continue
            diff = {d: mean(runs[v], lambda r: r["ndcg"][str(d)]) - mean(runs[SEQ], lambda r: r["ndcg"][str(d)]) for d in DIMS}
            speed = mean(runs[SEQ], lambda r: r["fit_seconds"]) / mean(runs[v], lambda r: r["fit_seconds"])
            pace = f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower"
            lines.append(f"| {v} − sequential | " + " | ".join(f"{diff[d]:+.3f}" for d in DIMS) + f" | {pace} | | |")
            for d in DIMS:
                verdicts.setdefault(v, ([], []))[0 if diff[d] >= -TOLERANCE else 1].append(f"{name} {d} d ({diff[d]:+.3f})")
        lines.append("")
        spread = []
        for v, rs in runs.items():
            if len(rs) > 1:
                sd = [float(np.std([r["ndcg"][str(d)] for r in rs.values()], ddof=1)) for d in DIMS]
                spread.append(f"{SHOWN.get(v, v)} " + "/".join(f"{s:.3f}" for s in sd))
        if spread:
            lines += [f"Seed standard deviation at {'/'.join(map(str, DIMS))} d: " + "; ".join(spread) + ".", ""]
    for v, (ok, bad) in verdicts.items():
        lines.append(f"*{v}* within {TOLERANCE} nDCG@10 of sequential, or better: " + (", ".join(ok) or "nowhere") + ".")
        lines.append(f"*{v}* more than {TOLERANCE} below: " + (", ".join(bad) or "nowhere") + "; "
                     + ("it meets the bar at every dim on every dataset measured." if not bad else "it does not meet the bar."))
        lines.append("")
    path.write_text(stamped("\n".join(lines) + "\n", measured_at(results)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--render-only", action="store_true", help="rebuild fit_speed.md from fit_speed.json")
    args = ap.parse_args()
    if args.render_only:
        render(load(args.out / "fit_speed.json"), args.out / "fit_speed.md")
    else:
        run(args)


if __name__ == "__main__":
    main()

"""Quality per byte budget (issue 15): the quantisers users pick against our learned codec.

    .venv/bin/python bench/budgets.py [--datasets scifact nfcorpus cisi scifact-mpnet]
                                      [--budgets 16 32 48 64] [--seeds 0 1 2] [--render-only]

For each dataset and byte budget, ``eval``'s per-budget rows (``plan(..., budgets=...)``), scored by
``eval``'s own code on the test queries: OPQ on the full vectors (``m`` = budget), RaBitQ over PCA
(rotated and FAISS' unrotated, 1-4 bits, each at the widest dim whose code fits, correction factors
counted), sign bits of PCA re-ranked against the float query, and ``rank-opq`` (OPQ whose tables
are then rank-distilled on corpus rows); then, per seed, a default ``SMEC(seed=...).fit(corpus,
budgets=BUDGETS)`` (heads kept under ``--heads``) and the codec it chose for each budget, scored
through the head. Random methods (OPQ, rank-opq, rotated RaBitQ, the head) run once per seed and
are averaged; the others once. The yardstick at a budget is the best quantiser's mean there,
picked with the test labels (which flatters it); the head's choice is compared against it.

Datasets: MiniLM (the bundled model) on ../shared/data/{scifact,nfcorpus,cisi} through the
embedding cache, and SciFact embedded with all-mpnet-base-v2 (../shared/embeddings). Each cell is
saved to bench/results/budgets.json as it finishes and skipped on a re-run, so a run can span
sessions; bench/results/budgets.md is the BENCHMARKS section. ``--threads`` torch and FAISS
threads (default 1). For the first seed, each head's best blind candidate per quantiser family is
also scored against its in-loop twin (the ablation table).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress import write_embeddings  # noqa: E402
from fit_defaults import fresh_if_changed, tag  # noqa: E402
from results_file import save_results  # noqa: E402
from smec_compress.evaluation.baselines import PCA  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.compare import Method, compare, plan  # noqa: E402
from smec_compress.evaluation.evalset import load_evalset  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared"
DATASETS = {
    "scifact": (SHARED / "data" / "scifact", None),
    "nfcorpus": (SHARED / "data" / "nfcorpus", None),
    "cisi": (SHARED / "data" / "cisi", None),
    "scifact-mpnet": (SHARED / "embeddings" / "scifact.mpnet.parquet", SHARED / "data" / "scifact" / "qrels" / "test.tsv"),
}
OURS = "rank-opq"
HEAD = "fit --budgets"  # the codec a default SMEC fit with --budgets chose, per budget
HEAD_Q = "fit --budgets --queries"  # the same, with the training queries (no qrels) as anchors
YARDSTICK = ("opq", "rabitq", "rabitq-unrotated", "binary-rerank", "csr")
RANDOM = frozenset({"opq", "rank-opq", "rabitq"})


def methods_for(dim: int, budgets: list[int]) -> list[Method]:
    """``eval``'s per-budget rows: the yardstick quantisers and ours (PQ and the dims rows left out)."""
    return [m for m in plan(dim, [min(budgets)], ["pca"], budgets=budgets)
            if m.codec in (*YARDSTICK, OURS) and (m.m is None or m.m in budgets)]


def key(dataset: str, method: Method, seed: int) -> str:
    return f"{dataset}|{method.name}|{method.dim}|{method.m or ''}|{seed}"


def run_dataset(name: str, args, results: dict) -> None:
    path, qrels = DATASETS[name]
    data = load_evalset(path, qrels_path=qrels, split="test", model=None, cache_dir=default_cache_dir())
    pca = PCA().fit(data.corpus.vectors)
    for method in methods_for(data.corpus.dim, args.budgets):
        for seed in args.seeds if method.codec in RANDOM else args.seeds[:1]:
            k = key(name, method, seed)
            if k in results["cells"]:
                continue
            start = time.perf_counter()
            (row,) = compare(data.corpus, data.queries, data.qrels, [method], {"pca": pca}, seed=seed)
            results["cells"][k] = {"dataset": name, "method": method.name, "codec": method.codec, "dim": row.dim,
                                   "bytes": row.bytes_per_vector, "seed": seed, "ndcg10": row.ndcg10,
                                   "seconds": time.perf_counter() - start}
            save(results)
            print(k, f"{row.ndcg10:.4f}", f"{row.bytes_per_vector} B", f"{time.perf_counter() - start:.0f}s", flush=True)
    anchors = training_queries(data)
    for seed in args.seeds:
        run_head(name, data, seed, args, results)
        if anchors is not None:
            run_head(name, data, seed, args, results, anchors=anchors)


def training_queries(data):
    """Query vectors of the training qrels that are not test queries (None without training qrels):
    the only queries that may anchor a fit, since anchoring on evaluated queries is leakage."""
    if not data.train_qrels:
        return None
    test = set(data.qrels)
    keep = [i for i, q in enumerate(data.queries.ids) if q in data.train_qrels and q not in test]
    return data.queries.vectors[keep] if keep else None


def run_head(name: str, data, seed: int, args, results: dict, anchors=None) -> None:
    """A default SMEC fit with ``budgets`` on the corpus (``anchors``: training queries without
    their qrels), and each budget's chosen codec scored."""
    from smec_compress import SMEC

    label = HEAD if anchors is None else HEAD_Q
    k = f"{name}|{label}|{seed}"
    folder = head_folder(args, name, seed, anchors is not None)
    if all(f"{k}|{b}" in results["cells"] for b in args.budgets):
        if seed == args.seeds[0] and (folder / "codecs.json").is_file():  # resumes an ablation a stopped run left
            run_ablation(name, data, seed, SMEC.load(folder), label, results, anchors)
        return
    start = time.perf_counter()
    if (folder / "codecs.json").is_file():
        head, seconds = SMEC.load(folder), None
    else:
        head = SMEC(seed=seed).fit(data.corpus.vectors, budgets=args.budgets, anchor_queries=anchors, threads=args.threads)
        seconds = time.perf_counter() - start
        head.save(folder)
    chosen = {b: bc.candidate for b, bc in head.codecs_.items()}
    methods = [m for m in plan(data.corpus.dim, [min(args.budgets)], ["smec"], head_codecs={"smec": chosen}) if m.budget]
    for method, row in zip(methods, compare(data.corpus, data.queries, data.qrels, methods, {"smec": head})):
        results["cells"][f"{k}|{method.budget}"] = {
            "dataset": name, "method": label, "codec": method.codec, "dim": row.dim, "bytes": row.bytes_per_vector,
            "budget": method.budget, "seed": seed, "ndcg10": row.ndcg10, "choice": chosen[method.budget].key,
            "criterion": head.codecs_[method.budget].choice.recall, "fit_seconds": seconds}
        print(k, method.budget, chosen[method.budget].key, f"{row.ndcg10:.4f}", flush=True)
    save(results)
    if seed == args.seeds[0]:  # after the head's own cells, so a stopped run keeps them
        run_ablation(name, data, seed, head, label, results, anchors)


def head_folder(args, name: str, seed: int, queries: bool) -> Path:
    """Where a bench head is kept; ``v2``: fitted with the in-loop candidates (heads from before are not reused)."""
    return args.heads / f"v2-{name}-{seed}{'-queries' if queries else ''}"


def run_ablation(name: str, data, seed: int, head, label: str, results: dict, anchors) -> None:
    """Quantisation in the loop against the same head quantised blind: per budget and family, the
    head's best blind candidate by its criterion and its in-loop twin, each fitted on the whole
    corpus (anchored on ``anchors`` as the fit was) and scored on the test queries."""
    from smec_compress.codecs.budget import best_per_family, candidates, fit_candidate, in_loop, view
    from smec_compress.evaluation.retrieval import score_run, select_queries, to_run

    sel = select_queries(list(data.queries.ids), data.qrels).query_ids
    pos = {q: i for i, q in enumerate(data.queries.ids)}
    queries = data.queries.vectors[[pos[q] for q in sel]]
    X = data.corpus.vectors
    for budget, bc in head.codecs_.items():
        pool = candidates(X.shape[1], budget, reducer="smec", dims=head.dims_, rows=len(X))
        for blind in best_per_family(pool, bc.choice.recall):
            k = f"ablation|{name}|{label}|{seed}|{budget}|{blind.codec}"
            same = [c for c in results["cells"].values() if c["method"] == "ablation" and c["dataset"] == name
                    and c["head"] == label and c["seed"] == seed and c["blind_key"] == blind.key]
            if k in results["cells"] or same:  # a pair already scored at another budget is the same fit
                continue
            cell = {"dataset": name, "method": "ablation", "head": label, "seed": seed, "budget": budget,
                    "family": blind.codec}
            for cand, side in ((blind, "blind"), (in_loop(blind), "in_loop")):
                codec = fit_candidate(cand, X, head, seed=seed, queries=anchors)
                codes = codec.encode(view(cand, X, head))
                s, i = codec.search(codes, view(cand, queries, head), 100)
                cell[side] = score_run(to_run(sel, data.corpus.ids, s, i), data.qrels)["ndcg@10"]
                cell[f"{side}_key"], cell[f"{side}_criterion"] = cand.key, bc.choice.recall.get(in_loop(blind).key if side == "in_loop" else blind.key)
                cell["bytes"] = int(codes.shape[1])
            results["cells"][k] = cell
            save(results)
            print(k, f"blind {cell['blind']:.4f} in-loop {cell['in_loop']:.4f}", flush=True)


FRESH = """
import json, sys, faiss, pyarrow.parquet as pq, numpy as np
from smec_compress.evaluation.retrieval import score_run, to_run
from smec_compress.data.beir import read_qrels
index = faiss.read_index(sys.argv[1] + "/index.faiss")
ids = pq.read_table(sys.argv[1] + "/ids.parquet").column("id").to_pylist()
qrels = read_qrels(sys.argv[2])
q = np.load(sys.argv[3])
sel = json.loads(open(sys.argv[4]).read())
s, i = index.search(q, 100)
print(score_run(to_run(sel, ids, s, i), qrels)["ndcg@10"])
"""


def check_exports(name: str, args, results: dict) -> None:
    """Each non-sign-bit budget codec of the seed-0 heads, exported by ``index --head --budget``,
    read by ``faiss.read_index`` in a fresh process and searched with raw queries: its nDCG@10
    against the row scored through the head."""
    import subprocess
    import tempfile

    from smec_compress import SMEC
    from smec_compress.evaluation.retrieval import select_queries

    path, qrels = DATASETS[name]
    data = load_evalset(path, qrels_path=qrels, split="test", model=None, cache_dir=default_cache_dir())
    qrels_path = qrels or path / "qrels" / "test.tsv"
    sel = select_queries(list(data.queries.ids), data.qrels).query_ids
    pos = {q: i for i, q in enumerate(data.queries.ids)}
    for label, suffix in ((HEAD, ""), (HEAD_Q, "-queries")):
        folder = head_folder(args, name, args.seeds[0], bool(suffix))
        if not (folder / "codecs.json").is_file():
            continue
        head = SMEC.load(folder)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            corpus = tmp / "corpus.parquet"
            write_embeddings(corpus, data.corpus.ids, data.corpus.vectors, meta=data.corpus.meta)
            np.save(tmp / "q.npy", data.queries.vectors[[pos[q] for q in sel]])
            (tmp / "sel.json").write_text(json.dumps(sel))
            for budget, bc in head.codecs_.items():
                cell = results["cells"].get(f"{name}|{label}|{args.seeds[0]}|{budget}")
                if bc.candidate.codec.startswith("binary") or cell is None:
                    continue
                cli = [sys.executable, "-m", "smec_compress", "index", str(corpus), "--head", str(folder),
                       "--budget", str(budget), "--out", str(tmp / f"i{budget}")]
                subprocess.run(cli, check=True, capture_output=True)
                fresh = subprocess.run([sys.executable, "-c", FRESH, str(tmp / f"i{budget}"), str(qrels_path),
                                        str(tmp / "q.npy"), str(tmp / "sel.json")], check=True, capture_output=True, text=True)
                results["export_seed"] = args.seeds[0]
                results.setdefault("exports", {})[f"{name}|{label}|{budget}"] = {
                    "codec": bc.candidate.key, "eval": cell["ndcg10"], "fresh_faiss": float(fresh.stdout.strip())}
                save(results)


def summary(cells: list[dict], budgets: list[int]) -> dict:
    """Per dataset and budget: seed-mean nDCG@10 per method that fits, the best yardstick, ours."""
    out: dict = {}
    by = {}
    heads: dict = {}
    for c in cells:
        if c["method"] == "ablation":
            continue
        if c["method"] in (HEAD, HEAD_Q):
            heads.setdefault((c["dataset"], c["method"], c["budget"]), []).append(c)
            continue
        by.setdefault((c["dataset"], c["method"], c["dim"], c["bytes"]), []).append(c["ndcg10"])
    for (dataset, method, dim, size), scores in by.items():
        for budget in budgets:
            if size <= budget:
                out.setdefault(dataset, {}).setdefault(budget, []).append((method, dim, size, float(np.mean(scores)), len(scores)))
    table: dict = {}
    for dataset, per_budget in out.items():
        for budget, rows in per_budget.items():
            yard = [r for r in rows if r[0] != OURS]
            ours = [r for r in rows if r[0] == OURS and r[2] == budget]
            def mean_of(runs):
                return (float(np.mean([c["ndcg10"] for c in runs])), len(runs), sorted({c["choice"] for c in runs})) if runs else None

            head = mean_of(heads.get((dataset, HEAD, budget), []))
            head_q = mean_of(heads.get((dataset, HEAD_Q, budget), []))
            table.setdefault(dataset, {})[budget] = {"yardstick": max(yard, key=lambda r: r[3]) if yard else None,
                                                     "opq": max((r for r in yard if r[0] == "opq" and r[2] == budget),
                                                                key=lambda r: r[3], default=None),
                                                     "ours": ours[0] if ours else None, "head": head, "head_q": head_q}
    return table


def render(results: dict) -> str:
    m = results["machine"]
    budgets = results["budgets"]
    lines = ["## Quality per byte budget: the quantisers users pick, and ours", "",
             f"`{m['command']}` ({m['date']}, {m['arch']}, {m['nproc']} CPUs; "
             "other work ran on the same cores, so no times are reported).", "",
             "nDCG@10 on each dataset's test queries; bytes are stored bytes per vector, RaBitQ's correction factors "
             "included. Yardstick: the best of OPQ (full vectors, m = budget), RaBitQ over PCA (rotated or not, 1-4 "
             "bits, widest dim that fits) and PCA sign bits re-ranked against the float query, chosen per budget "
             "with the test labels. Ours: `rank-opq`, OPQ whose rotation and codebooks are then rank-distilled on "
             "corpus rows (no labels). `fit --budgets`: the codec a default SMEC fit with `--budgets 16,32,48,64` "
             "chose for that budget by its label-free criterion (recall of held-back corpus rows' neighbours) "
             "among OPQ, rank-opq, RaBitQ, re-ranked sign bits, int8 and int4 on the full vectors or a head dim, "
             "and the best head candidate of each of int8, int4, sign bits and OPQ trained in the loop (`qat-*`). "
             "`--queries`: the same fit given the training queries without their qrels (anchors of rank-opq, and "
             "half of the criterion); CISI has no training queries. "
             "Random methods are means over the seeds in brackets.", "",
             "| dataset | bytes | OPQ | best yardstick | its score | rank-opq | fit --budgets (its choice) | vs yardstick "
             "| fit --budgets --queries (its choice) | vs yardstick |",
             "|---|---:|---:|---|---:|---:|---|---:|---|---:|"]
    table = summary(list(results["cells"].values()), budgets)
    for dataset in results["datasets"]:
        for budget in budgets:
            cell = table.get(dataset, {}).get(budget)
            if not cell or not cell["yardstick"]:
                continue
            y, opq, ours = cell["yardstick"], cell["opq"], cell["ours"]
            fmt = lambda r: f"{r[3]:.4f} [{r[4]}]" if r else ""  # noqa: E731
            heads = [(f"{h[0]:.4f} [{h[1]}] ({'; '.join(h[2])})", f"{h[0] - y[3]:+.4f}") if h else ("", "")
                     for h in (cell["head"], cell["head_q"])]
            lines.append(f"| {dataset} | {budget} | {fmt(opq)} | {y[0]} {y[1]} d, {y[2]} B | {fmt(y)} | {fmt(ours)} | "
                         + " | ".join(c for h in heads for c in h) + " |")
    lines += ablation_table(results)
    done = {(c["dataset"], c["method"]) for c in results["cells"].values()}
    missing = [f"{label} on {d}" for d in results["datasets"] for label in (HEAD, HEAD_Q)
               if (d, label) not in done and (label == HEAD or (DATASETS[d][0] / "qrels" / "train.tsv").is_file())]
    if missing:
        lines += ["", f"Not measured yet (the run was stopped; re-running the command resumes): "
                  f"{'; '.join(missing)}; datasets without rows above have no cells at all."]
    if results.get("exports"):
        gaps = [abs(e["eval"] - e["fresh_faiss"]) for e in results["exports"].values()]
        lines += ["", f"Exported with `index --head H --budget B`, read by `faiss.read_index` in a fresh process and "
                  f"searched with raw full-dim queries, the {len(gaps)} non-sign-bit budget codecs of the seed-"
                  f"{results.get('export_seed', 0)} heads score within {max(gaps):.4f} nDCG@10 of their "
                  "rows above (`--check-exports`). Sign bits have no float-query FAISS index; use `SMEC.search`."]
    return "\n".join(lines) + "\n"


def ablation_table(results: dict) -> list[str]:
    """Quantisation in the loop against blind stacking, per dataset, head, budget and family."""
    cells = [c for c in results["cells"].values() if c["method"] == "ablation"]
    if not cells:
        return []
    lines = ["", "### Quantisation in the loop against the same head quantised blind", "",
             f"Seed {cells[0]['seed']}: per budget and quantiser family, the head's best blind candidate by the "
             "fit's criterion (the head's float output at that dim, then the quantiser fitted to it) and the same "
             "pair trained in the loop (`qat-*`: map, ranges / rotation + codebooks trained by rank distillation "
             "through the quantiser, codecs/qat.py), both fitted on the whole corpus, anchored as the fit was; "
             "nDCG@10 on the test queries, and each one's criterion value in the fit.", "",
             "| dataset | head | bytes | family | blind (criterion) | in the loop (criterion) | gain |",
             "|---|---|---:|---|---:|---:|---:|"]
    gains = []
    pairs: dict = {}  # the same pair chosen at several budgets is one fit: one row, its budgets listed
    for c in sorted(cells, key=lambda c: (results["datasets"].index(c["dataset"]), c["head"], c["budget"], c["family"])):
        pairs.setdefault((c["dataset"], c["head"], c["blind_key"]), []).append(c)
    for (dataset, head, key), same in pairs.items():
        c = same[0]
        crit = lambda v: "" if v is None else f" ({v:.3f})"  # noqa: E731
        gains.append(c["in_loop"] - c["blind"])
        lines.append(f"| {dataset} | {head} | {', '.join(str(x['budget']) for x in same)} | {key} | {c['blind']:.4f}"
                     f"{crit(c['blind_criterion'])} | {c['in_loop']:.4f}{crit(c['in_loop_criterion'])} | "
                     f"{gains[-1]:+.4f} |")
    lines += ["", f"In the loop beats blind in {sum(g > 0.0005 for g in gains)} of {len(gains)} distinct pairs, ties "
              f"(within 0.0005) in {sum(abs(g) <= 0.0005 for g in gains)}; mean gain {np.mean(gains):+.4f}."]
    return lines


def save(results: dict) -> None:
    save_results("budgets", results, render)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--budgets", nargs="+", type=int, default=[16, 32, 48, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--heads", type=Path, default=default_cache_dir() / f"bench-budgets-{tag()}", help="fitted heads, reused")
    ap.add_argument("--threads", type=int, default=1, help="torch and FAISS threads (1: leaves a core to other work)")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--check-exports", action="store_true", help="only check the saved heads' exported indexes")
    args = ap.parse_args()
    path = RESULTS / "budgets.json"
    results = json.loads(path.read_text()) if path.is_file() else {"cells": {}}
    if not (args.check_exports or args.render_only):
        results = fresh_if_changed(results, "budgets")
    if not (args.check_exports or args.render_only):  # those keep the measuring run's command and date
        measured = set(results.get("datasets", [])) | set(args.datasets)  # a run resumes, and adds to, earlier runs' cells
        results.update(budgets=args.budgets, datasets=[d for d in DATASETS if d in measured],
                       machine={"arch": platform.machine(), "nproc": os.cpu_count(), "date": date.today().isoformat(),
                                "command": "python bench/budgets.py " + " ".join(sys.argv[1:])})
    if args.check_exports:
        for name in args.datasets:
            check_exports(name, args, results)
    elif not args.render_only:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
        for name in args.datasets:
            run_dataset(name, args, results)
    save(results)


if __name__ == "__main__":
    main()

"""Supervision when labels are scarce (issue 16): supervised SMEC with 100%, 10% and 1% of the
training queries against unsupervised SMEC, on the test queries.

    .venv/bin/python bench/scarce_labels.py [--datasets scifact nfcorpus] [--seeds 0 1 2] [--threads 1]

For each dataset (MiniLM, the bundled model, from the embedding cache) and seed: one unsupervised
head, and one supervised head per fraction of the training queries (drawn with that seed; all of
a drawn query's judgements are kept). Every head has the default fit settings. Scored: nDCG@10 at
16 / 32 / 64 d on all test queries and on the held-out ones (test queries none of whose relevant
documents is a positive of the labels that head saw). A rival (DIVE, 2026) reports supervised
adaptors falling below the frozen baseline with few labels; this measures whether ours does.

Each (dataset, seed, fraction) cell is saved to bench/results/scarce_labels.json as it finishes,
and a re-run resumes from them; writes bench/results/scarce_labels.md (the BENCHMARKS section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import fresh_if_changed, tag  # noqa: E402
from results_file import save_results  # noqa: E402
from smec_compress.data.beir import read_qrels  # noqa: E402
from smec_compress.data.training_data import training_pairs  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.evalset import heldout_queries, load_evalset  # noqa: E402
from smec_compress.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DATASETS = ("scifact", "nfcorpus")
FRACTIONS = (1.0, 0.1, 0.01)
DIMS = (16, 32, 64)
UNSUP = "unsupervised"
# How a supervised fit treats its labels: "gated" (the default since model/gate.py: 20% of the labelled
# queries held back decide per dim between the supervised and an unsupervised map) and "trusted" (0.1.0's
# fit, supervised_validation=0: the labels at every dim). Cells saved before the gate existed are "trusted".
# "gated on dev": the gate scores the dataset's dev qrels instead (fit's validation pairs; NFCorpus only,
# the one with a dev split), and the supervised map trains on all the drawn labels.
DEV = "gated on dev"
MODES = {"gated": {}, "trusted": {"supervised_validation": 0.0}, DEV: {}}


def subset_qrels(train: dict, fraction: float, seed: int, out: Path) -> tuple[Path, dict]:
    """A qrels TSV of ``fraction`` of the training queries (at least one), drawn with ``seed``."""
    ids = sorted(train)
    n = max(1, round(fraction * len(ids)))
    picked = sorted(np.random.default_rng(seed).choice(len(ids), n, replace=False).tolist())
    sub = {ids[i]: train[ids[i]] for i in picked}
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, docs in sub.items() for d, s in docs.items()]
    out.write_text("\n".join(lines) + "\n")
    return out, sub


def score(head: SMEC, data, seen: dict | None) -> dict:
    """nDCG@10 per dim on all test queries and on those held out from the labels ``seen``."""
    held = heldout_queries(data.qrels, seen) if seen else sorted(data.qrels)
    out = {}
    for dim in DIMS:
        docs, queries = head.transform(data.corpus.vectors, dim), head.transform(data.queries.vectors, dim)
        args = (data.corpus.ids, docs, data.queries.ids, queries)
        out[str(dim)] = {"all": evaluate_retrieval(*args, data.qrels)["ndcg@10"],
                         "heldout": evaluate_retrieval(*args, {q: data.qrels[q] for q in held})["ndcg@10"],
                         "heldout_queries": len(held)}
    return out


def unsupervised_head(name: str, seed: int, data, threads: int | None) -> SMEC:
    """The seed's unsupervised head, fitted once and cached (a resumed run scores the same head)."""
    path = default_cache_dir() / f"bench-scarce-{tag()}" / f"{name}-{seed}"
    if path.exists():
        return SMEC.load(path)
    head = SMEC(seed=seed).fit(data.corpus.vectors, embedder_fingerprint=data.corpus.meta.fingerprint, threads=threads)
    head.save(path)
    return head


def run_dataset(name: str, seeds: list[int], modes: list[str], fractions: list[float], results: dict, threads: int) -> None:
    data = load_evalset(ROOT.parent / "shared" / "data" / name, qrels_path=None, split="test", model=None,
                        cache_dir=default_cache_dir())
    train = read_qrels(ROOT.parent / "shared" / "data" / name / "qrels" / "train.tsv")
    dev_path = ROOT.parent / "shared" / "data" / name / "qrels" / "dev.tsv"
    dev = training_pairs(data.corpus, data.queries, dev_path, kind="validation")[:2] if dev_path.is_file() else None
    fp = data.corpus.meta.fingerprint
    for seed in seeds:
        unsup = unsupervised_head(name, seed, data, threads)
        for fraction, mode in [(None, None)] + [(f, m) for f in fractions for m in modes]:
            key = f"{name}|{seed}|{UNSUP}" if fraction is None else f"{name}|{seed}|{fraction}|{mode}"
            if key in results["cells"] or (mode == DEV and dev is None):
                continue
            if fraction is None:
                cell = {"labelled_queries": 0, "pairs": 0, "scores": score(unsup, data, None)}
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    path, sub = subset_qrels(train, fraction, seed, Path(tmp) / "train.tsv")
                    q_vectors, positives, _ = training_pairs(data.corpus, data.queries, path)
                validation = {"validation_queries": dev[0], "validation_positives": dev[1]} if mode == DEV else {}
                head = SMEC(seed=seed, **MODES[mode]).fit(data.corpus.vectors, queries=q_vectors, positives=positives,
                                                          embedder_fingerprint=fp, threads=threads, **validation)
                cell = {"labelled_queries": len(sub), "pairs": int(len(positives)), "scores": score(head, data, sub),
                        "unsupervised": score(unsup, data, sub),  # the same seed's unsupervised head on the same queries
                        "supervision": head.supervision_}
            results["cells"][key] = cell
            print(key, json.dumps(cell["scores"]), flush=True)
            save(results)


def fmt(value: float, spec: str) -> str:
    """``value`` formatted, or "none held out" where every test query shares a relevant document
    with the labels (NFCorpus at 100%)."""
    return "none held out" if np.isnan(value) else format(value, spec)


def render(results: dict) -> str:
    m = results["machine"]
    lines = ["## Supervision with scarce labels (bench/scarce_labels.py)", "",
             f"`{m['command']}` (last run {m['date']}, {m['arch']}, {m['nproc']} CPUs; earlier cells kept from earlier runs "
             "of the same script). MiniLM; default fit settings; supervised SMEC with a fraction of the training queries "
             "(all their judgements) against unsupervised SMEC, same seed. Fit: `trusted` uses the labels at every dim "
             "(`supervised_validation=0`, the fit before model/gate.py); `gated` is the default: 20% of the labelled "
             "queries are held back and, per dim, the supervised map is kept only where it ranks their documents better, by more than chance, "
             "than an unsupervised fit does (mean paired gain minus 1.645 standard errors above zero; the column says at how many seeds each dim kept it); "
             f"`{DEV}` decides the same way on the dataset's dev qrels instead (NFCorpus's dev queries, less those equal to a drawn training query; "
             "`fit --validation-qrels`) and trains on all the drawn labels. nDCG@10 on all test "
             "queries and, in brackets, on those held out from the labels the head saw; mean over the seeds shown [n]. "
             "Gain: supervised minus the same seed's unsupervised head, on all test queries and (in brackets) on the "
             "same held-out ones.", "",
             "| dataset | labels | fit | labelled queries | " + " | ".join(f"{d} d" for d in DIMS) + " | "
             + " | ".join(f"gain {d} d" for d in DIMS) + " | supervised map kept |",
             "|---|---|---|---:|" + "---:|" * (2 * len(DIMS)) + "---|"]
    cells = results["cells"]
    for name in DATASETS:
        for label, mode in [(UNSUP, None)] + [(str(f), md) for f in FRACTIONS for md in MODES]:
            suffix = f"|{label}" if mode is None else f"|{label}|{mode}"
            found = {k: v for k, v in cells.items() if k.startswith(f"{name}|") and k.endswith(suffix)}
            if not found:
                continue
            parts = []
            for dim in map(str, DIMS):
                all_ = np.mean([v["scores"][dim]["all"] for v in found.values()])
                held = np.mean([v["scores"][dim]["heldout"] for v in found.values()])
                parts.append(f"{all_:.4f} ({fmt(held, '.4f')}) [{len(found)}]")
            gains, kept = [], ""
            for dim in map(str, DIMS):
                if mode is None:  # a supervised cell carries its seed's unsupervised scores on the same queries
                    gains.append("")
                    continue
                diff = np.mean([c["scores"][dim]["all"] - c["unsupervised"][dim]["all"] for c in found.values()])
                held = np.mean([c["scores"][dim]["heldout"] - c["unsupervised"][dim]["heldout"] for c in found.values()])
                gains.append(f"{diff:+.4f} ({fmt(held, '+.4f')})")
            if mode in ("gated", DEV):
                kept = ", ".join(f"{d} d: {sum(d in (c.get('supervision') or {}).get('supervised_dims', []) for c in found.values())}"
                                 f"/{len(found)}" for d in DIMS)
            labelled = int(np.mean([v["labelled_queries"] for v in found.values()]))
            name_label = "none" if label == UNSUP else f"{float(label):.0%}"
            lines.append(f"| {name} | {name_label} | {mode or ''} | {labelled:,} | " + " | ".join(parts) + " | "
                         + " | ".join(gains) + f" | {kept} |")
    return "\n".join(lines) + "\n"


def save(results: dict) -> None:
    save_results("scarce_labels", results, render)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=None, help="torch and FAISS threads (1: leaves a core to other work)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS), choices=list(FRACTIONS),
                    help="shares of the training queries, run in this order")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    path = RESULTS / "scarce_labels.json"
    results = json.loads(path.read_text()) if path.is_file() else {"cells": {}}
    if not args.render_only:
        results = fresh_if_changed(results, "scarce_labels")
    results["cells"] = {(k if k.endswith(f"|{UNSUP}") or k.count("|") == 3 else f"{k}|trusted"): v
                        for k, v in results["cells"].items()}  # cells from before the gate trusted their labels
    if not args.render_only:
        results["machine"] = {"arch": platform.machine(), "nproc": os.cpu_count(), "date": date.today().isoformat(),
                              "command": "python bench/scarce_labels.py " + " ".join(sys.argv[1:])}
        if args.threads:
            import faiss
            import torch

            torch.set_num_threads(args.threads)
            faiss.omp_set_num_threads(args.threads)
        for name in args.datasets:
            run_dataset(name, args.seeds, args.modes, args.fractions, results, args.threads)
    save(results)


if __name__ == "__main__":
    main()

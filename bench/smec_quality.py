"""SMEC quality benchmark on SciFact (all-MiniLM-L6-v2): PCA, plain linear head, SMEC
(several seeds), ablations, supervised SMEC, fit time and transform throughput.

    .venv/bin/python bench/smec_quality.py [--data DIR] [--seeds 0 1 2] [--ablation-seeds 0 1 2]
                                           [--workers 2] [--quick] [--synthetic-n 1000000]

SciFact is embedded once with the bundled model through the package's embedding cache
(``--cache DIR`` of .npy files is a developer shortcut). Fits run in ``--workers`` processes with
one torch thread each.

Writes bench/results/smec_quality.json and bench/results/smec_quality.md (a BENCHMARKS.md
section). Scores: test nDCG@10, exact inner-product search over the top 100.
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

from fit_defaults import current, stamped  # noqa: E402

from smec_compress.model.pca import PCA
from smec_compress.normalize import l2_normalize  # noqa: E402
from smec_compress.data.beir import read_qrels  # noqa: E402
from smec_compress.evaluation.evalset import heldout_queries  # noqa: E402
from smec_compress.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402
from smec_compress.data.io import Embeddings  # noqa: E402
from smec_compress.data.training_data import training_pairs  # noqa: E402

DIMS = (16, 32, 48, 64)


def load_embeddings(data: Path, cache: Path | None):
    """(doc_ids, docs, query_ids, queries): from a .npy cache if given, else via the package's
    embedding cache (embeds SciFact once with the bundled all-MiniLM-L6-v2)."""
    if cache and (cache / "corpus.npy").is_file():
        return (json.loads((cache / "corpus_ids.json").read_text()), np.load(cache / "corpus.npy"),
                json.loads((cache / "query_ids.json").read_text()), np.load(cache / "queries.npy"))
    from smec_compress.evaluation.cache import default_cache_dir
    from smec_compress.evaluation.evalset import load_evalset

    ev = load_evalset(data, qrels_path=None, split="test", model=None, cache_dir=default_cache_dir())
    return ev.corpus.ids, ev.corpus.vectors, ev.queries.ids, ev.queries.vectors


def plain_head(X: np.ndarray, dim: int, seed: int, epochs: int = 20, lr: float = 1e-3, t: float = 0.05):
    """The ablation baseline: one PCA-initialised linear map D->dim with bias, trained on
    mean |cos_full - cos_comp| + KL over each 512-anchor batch against the whole corpus."""
    import torch
    import torch.nn.functional as F

    from smec_compress.model import losses

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    pca = PCA().fit(X)
    x = torch.from_numpy(X)
    xn = F.normalize(x, dim=1)
    w = torch.nn.Parameter(torch.from_numpy(pca.components_[:dim].copy()))
    b = torch.nn.Parameter(torch.from_numpy(-(pca.components_[:dim] @ pca.mean_)).float())
    opt = torch.optim.Adam([w, b], lr=lr)
    bs = 512
    spe = len(x) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * spe)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(spe):
            idx = order[s * bs:(s + 1) * bs]
            z = F.normalize(x @ w.T + b, dim=1)
            full, comp = xn[idx] @ xn.T, z[idx] @ z.T
            valid = torch.ones_like(full, dtype=torch.bool)
            valid[torch.arange(len(idx)), idx] = False
            loss = losses.similarity_preservation(full, comp, valid) + losses.rank_kl(full, comp, t, valid)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    w_np, b_np = w.detach().numpy().T.copy(), b.detach().numpy()
    return lambda A: l2_normalize(A @ w_np + b_np)


def throughput(head: SMEC, X: np.ndarray, dim: int, reps: int = 5) -> dict:
    """Rows/s of head.transform vs a bare float32 numpy matmul of the same shape."""
    w = head.weights_[dim][0]

    def best(fn):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    t_mm, t_tr = best(lambda: X @ w), best(lambda: head.transform(X, dim))
    return {"dim": dim, "rows": len(X), "matmul_rows_per_s": len(X) / t_mm,
            "transform_rows_per_s": len(X) / t_tr, "ratio": t_mm / t_tr}


_DATA: dict = {}


def _init(data: Path, cache: Path | None) -> None:
    """Worker start-up: load the vectors and qrels once per process; one torch thread each."""
    import torch

    torch.set_num_threads(1)
    doc_ids, X, query_ids, Q = load_embeddings(data, cache)
    test, train = read_qrels(data / "qrels" / "test.tsv"), data / "qrels" / "train.tsv"
    unseen = {q: test[q] for q in heldout_queries(test, read_qrels(train))}
    _DATA.update(doc_ids=doc_ids, X=X, query_ids=query_ids, Q=Q, test=test, train=train, unseen=unseen)


def _score(fn, dims, qrels) -> dict:
    d = _DATA
    return {dim: evaluate_retrieval(d["doc_ids"], fn(d["X"], dim), d["query_ids"], fn(d["Q"], dim), qrels)["ndcg@10"]
            for dim in dims}


def run_job(job: tuple) -> tuple:
    """One fit and its scores: ``(name, seed) -> {"all", "unseen", "fit_seconds"}``."""
    name, kind, kwargs, seed = job
    d = _DATA
    t = time.perf_counter()
    if kind == "plain":
        heads = {dim: plain_head(d["X"], dim, seed) for dim in DIMS}
        fn, dims = (lambda A, dim: heads[dim](A)), DIMS
    else:
        fit_args = {}
        if kind == "supervised":
            q_vectors, positives, _ = training_pairs(Embeddings(d["doc_ids"], d["X"]), Embeddings(d["query_ids"], d["Q"]), d["train"])
            fit_args = {"queries": q_vectors, "positives": positives}
        head = SMEC(seed=seed, **kwargs).fit(d["X"], threads=1, **fit_args)
        fn, dims = head.transform, [dim for dim in DIMS if dim in head.dims_]
    secs = time.perf_counter() - t
    return name, seed, {"all": _score(fn, dims, d["test"]), "unseen": _score(fn, dims, d["unseen"]), "fit_seconds": secs}


def main() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    ap.add_argument("--cache", type=Path, default=None, help="directory of corpus.npy/queries.npy (+ ids json)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ablation-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--all-ablations", action="store_true", help="also no-residual and L(dim_{i-1}) rows")
    ap.add_argument("--quick", action="store_true", help="one seed, no ablations (smoke run)")
    ap.add_argument("--synthetic-n", type=int, default=0, help="also time a fit on N x 384 random vectors")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    _init(args.data, args.cache)  # embeds (once, cached) before the workers start
    d = _DATA
    results: dict = {"rows": {}, "timing": {}, "unseen_queries": len(d["unseen"])}
    full = _score(lambda A, dim: A, [384], d["test"])[384]
    results["full_384"], results["full_384_unseen"] = full, _score(lambda A, dim: A, [384], d["unseen"])[384]
    for name, center in (("PCA (uncentred, our default)", False), ("PCA (centred, scikit-learn)", True)):
        pca = PCA(center=center).fit(d["X"])
        results["rows"][name] = {"mean": _score(pca.transform, DIMS, d["test"]),
                                 "mean_unseen": _score(pca.transform, DIMS, d["unseen"]), "seeds": [], "note": ""}
    chain = {"dims": (128, 64, 48, 32, 16)}
    default = SMEC()
    jobs = [("SMEC (default)", "smec", chain, s) for s in seeds]
    notes = {"SMEC (default)": "", "plain linear head": "one PCA-init map per dim, KL vs whole corpus",
             "supervised SMEC": "train qrels, InfoNCE (weight 0.5, 8 negatives drawn from the 30 nearest) + unsupervised regulariser"}
    if not args.quick:
        ab = args.ablation_seeds
        jobs += [("plain linear head", "plain", {}, s) for s in seeds]
        jobs += [("supervised SMEC", "supervised", chain, s) for s in seeds]
        for name, change in ((f"ADS {'off' if default.ads else 'on'}", {"ads": not default.ads}),
                             ("no S-XBM (in-batch candidates)", {"memory": False}),
                             *([("no residual path (pure chain)", {"residual": False}),
                                ("sequential SMRL with L(dim_{i-1}) term", {"sequential": True, "epochs_per_stage": 20, "prev_dim_weight": 1.0})] if args.all_ablations else []),
                             (f"{'sequential SMRL' if not default.sequential else 'joint (nested)'} training, 20 epochs",
                              {"sequential": not default.sequential, "epochs_per_stage": 20})):
            jobs += [(name, "smec", {**chain, **change}, s) for s in ab]
            notes[name] = ", ".join(f"{k}={v}" for k, v in change.items())
    per: dict = {}
    # spawn, not fork: the parent already ran FAISS (OpenMP), and forked children then hang
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=spawn, initializer=_init, initargs=(args.data, args.cache)) as pool:
        for name, seed, r in pool.map(run_job, jobs):
            per.setdefault(name, []).append((seed, r))
            print(name, seed, {k: round(v, 4) for k, v in r["all"].items()}, f"{r['fit_seconds']:.0f}s", flush=True)
    for name, runs in per.items():
        mean = lambda key: {dim: float(np.mean([r[key][dim] for _, r in runs])) for dim in runs[0][1][key]}  # noqa: E731
        results["rows"][name] = {"mean": mean("all"), "mean_unseen": mean("unseen"), "seeds": [s for s, _ in runs],
                                 "per_seed": [r for _, r in runs], "note": notes.get(name, "")}
    results["timing"]["fit_seconds_scifact"] = [r["fit_seconds"] for _, r in per["SMEC (default)"]]
    head = SMEC(**chain).fit(d["X"][:2000])
    big = np.random.default_rng(0).standard_normal((200_000, 384)).astype(np.float32)
    results["timing"]["transform"] = [throughput(head, big, dim) for dim in (64, 16)]
    if args.synthetic_n:
        syn = l2_normalize(np.random.default_rng(1).standard_normal((args.synthetic_n, 384)).astype(np.float32))
        t = time.perf_counter()
        SMEC(**chain).fit(syn)
        results["timing"]["fit_seconds_synthetic"] = {"rows": args.synthetic_n, "seconds": time.perf_counter() - t}
    write(results, args, seeds)


def write(results: dict, args, seeds) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    results["machine"] = {"arch": platform.machine(), "nproc": os.cpu_count(),
                          "date": datetime.date.today().isoformat(), "seeds": seeds, "workers": args.workers,
                          "command": "python bench/smec_quality.py " + " ".join(sys.argv[1:])}
    (args.out / "smec_quality.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    m = results["machine"]
    lines = ["## SMEC quality on SciFact (all-MiniLM-L6-v2)", "",
             f"Test nDCG@10, exact inner-product search; full 384 d = {results['full_384']:.4f} on all 300 test "
             f"queries, {results['full_384_unseen']:.4f} on the {results['unseen_queries']} whose relevant documents "
             f"are not train positives. Fitted on the 5,183 corpus vectors only (supervised: plus train qrels). "
             f"Seeds per row in brackets. Machine: {m['arch']}, {m['nproc']} CPUs; {m['date']}; `{m['command']}`.", ""]
    for key, title in (("mean", "All 300 test queries"), ("mean_unseen", f"The {results['unseen_queries']} unseen-doc test queries")):
        lines += [f"**{title}**", "", "| method | " + " | ".join(f"{d} d" for d in DIMS) + " |", "|---|" + "---|" * len(DIMS)]
        for name, r in results["rows"].items():
            cells = [f"{r[key][d]:.3f}" if d in r[key] else "" for d in DIMS]
            seeds_note = f" [{len(r['seeds'])}]" if r["seeds"] else ""
            lines.append(f"| {name}{' (' + r['note'] + ')' if r['note'] else ''}{seeds_note} | " + " | ".join(cells) + " |")
        lines.append("")
    t = results["timing"]
    lines += [f"Fit time on the SciFact corpus (5,183 x 384, one torch thread, {m['workers']} fits at once on "
              f"{m['nproc']} cores while other benchmarks may run: an upper bound): "
              + ", ".join(f"{s:.0f} s" for s in t["fit_seconds_scifact"]) + "."]
    for tr in t["transform"]:
        lines.append(f"`transform` {tr['rows']:,} x 384 -> {tr['dim']}: {tr['transform_rows_per_s']:.3g} rows/s, "
                     f"{100 * tr['ratio']:.0f}% of a bare numpy matmul of the same shape.")
    if "fit_seconds_synthetic" in t:
        s = t["fit_seconds_synthetic"]
        lines.append(f"Fit on {s['rows']:,} x 384 synthetic vectors: {s['seconds']:.0f} s.")
    else:
        lines.append("Fit on a 1M-row sample of 384-d synthetic vectors: see \"Fit at scale\" (`bench/fit_scale.py`).")
    (args.out / "smec_quality.md").write_text(stamped("\n".join(lines) + "\n", current()))


if __name__ == "__main__":
    main()

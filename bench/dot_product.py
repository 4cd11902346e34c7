"""Heads for dot-product embedders (issue 17, item 9): does a head that keeps norms
(``fit --no-normalize``, ``SMEC(normalize=False)``) keep inner-product search, where a unit head
cannot?

    .venv/bin/python bench/dot_product.py [--seeds 0 1 2] [--threads 2]

Data: the shipped SciFact sample (``sample/scifact``: 1,000 abstracts, 500 claims, 300 of them
judged test queries), embedded with the bundled all-MiniLM-L6-v2 *without its final Normalize
module*: raw mean-pooled vectors whose lengths vary (the stand-in for a dot-product embedder; none
ships here). The search is by inner product throughout, as a dot-product model's is. Scored at 16 /
32 / 64 d: neighbour recall@10 (every claim's full-dim inner-product top-10 among the 1,000 abstracts,
kept by the compressed top-10) and test nDCG@10, for
- uncentred PCA, truncated without normalising (a rotation cut short: keeps norms),
- SMEC with the default unit outputs (``normalize=True``: cosine of the outputs),
- SMEC keeping norms (``normalize=False``).
Fitted on the 1,000 abstracts only, default settings otherwise, one fit per seed. Writes
``bench/results/dot_product.{json,md}`` (the BENCHMARKS section).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import current  # noqa: E402
from results_file import save_results  # noqa: E402
from smec_compress.codecs.base import exact_search  # noqa: E402
from smec_compress.codecs.budget import neighbour_recall  # noqa: E402
from smec_compress.data.beir import find_file, read_qrels, read_texts  # noqa: E402
from smec_compress.data.embed import Embedder  # noqa: E402
from smec_compress.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402
from smec_compress.model.pca import PCA  # noqa: E402
from smec_compress.normalize import l2_normalize  # noqa: E402

SAMPLE = ROOT / "sample" / "scifact"
DIMS = (16, 32, 64)
METHODS = {"pca": "PCA (uncentred), not normalised", "unit": "SMEC, unit outputs (normalize=True, the default)",
           "norms": "SMEC keeping norms (normalize=False)"}


def raw_vectors(texts: list[str]) -> np.ndarray:
    """The bundled model's vectors before its Normalize module: what a dot-product model emits."""
    from sentence_transformers import SentenceTransformer

    model = Embedder(None).model
    raw = SentenceTransformer(modules=[m for m in model if type(m).__name__ != "Normalize"], device="cpu")
    return np.asarray(raw.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=False), np.float32)


def scores(docs, queries, doc_ids, query_ids, qrels, truth, transform) -> dict:
    z, zq = transform(docs), transform(queries)
    found = exact_search(z, zq, 10)[1]
    ndcg = evaluate_retrieval(doc_ids, z, query_ids, zq, qrels)["ndcg@10"]
    return {"recall_at_10": neighbour_recall(found, truth), "ndcg_at_10": ndcg}


def render(r: dict) -> str:
    m = r["machine"]
    lines = ["## Heads for dot-product embedders (bench/dot_product.py)", "",
             f"The shipped SciFact sample ({r['docs']:,} abstracts, {r['queries']} claims, {r['judged']} judged test "
             "claims) embedded with all-MiniLM-L6-v2 *without its final Normalize module*: raw mean-pooled vectors "
             f"(norms {r['norms']['min']:.2f}-{r['norms']['max']:.2f}, coefficient of variation "
             f"{r['norms']['cv']:.3f}), the stand-in for a dot-product embedder. Search by inner product throughout; "
             f"full {r['dim']} d: nDCG@10 {r['full']['ndcg_at_10']:.4f} (the same vectors made unit, cosine: "
             f"{r['full_cosine']['ndcg_at_10']:.4f}). Recall@10: each claim's full-dim inner-product top-10 kept by "
             "the compressed top-10. Heads fitted on the abstracts only, default settings; seeds in brackets. "
             f"Machine: {m['arch']}, {m['nproc']} CPUs; {m['date']}; `{m['command']}`.", "",
             "| method | " + " | ".join(f"recall@10 {d} d" for d in DIMS) + " | "
             + " | ".join(f"nDCG@10 {d} d" for d in DIMS) + " |",
             "|---|" + "---:|" * (2 * len(DIMS))]
    for key, label in METHODS.items():
        runs = r["methods"].get(key, [])
        if not runs:
            continue
        mean = {(metric, d): np.mean([run[str(d)][metric] for run in runs]) for metric in ("recall_at_10", "ndcg_at_10")
                for d in DIMS}
        seeds = "" if key == "pca" else f" [{len(runs)}]"
        lines.append(f"| {label}{seeds} | " + " | ".join(f"{mean['recall_at_10', d]:.3f}" for d in DIMS) + " | "
                     + " | ".join(f"{mean['ndcg_at_10', d]:.4f}" for d in DIMS) + " |")
    cosine_better = r["full_cosine"]["ndcg_at_10"] > r["full"]["ndcg_at_10"]
    lines += ["", "Recall@10 of the inner-product neighbours is what a head that keeps norms is for; nDCG@10 says whether "
              "this model's norms carry relevance, and here they " + ("do not: its cosine beats its own inner product "
              "at full dim, so the unit head, which searches by cosine, ranks best by relevance. A dot-product "
              "model is trained so that its norms help." if cosine_better else "do.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    doc_ids, doc_texts = read_texts(find_file(SAMPLE, "corpus"), title=True)
    query_ids, query_texts = read_texts(find_file(SAMPLE, "queries"), title=False)
    qrels = read_qrels(SAMPLE / "qrels" / "test.tsv")
    docs, queries = raw_vectors(doc_texts), raw_vectors(query_texts)
    truth = exact_search(docs, queries, 10)[1]
    norms = np.linalg.norm(docs, axis=1)
    r = {"machine": {"arch": platform.machine(), "nproc": os.cpu_count(), "date": date.today().isoformat(),
                     "command": "python bench/dot_product.py " + " ".join(sys.argv[1:])},
         "docs": len(docs), "queries": len(queries), "judged": sum(q in qrels for q in query_ids), "dim": docs.shape[1],
         "norms": {"min": float(norms.min()), "max": float(norms.max()), "cv": float(norms.std() / norms.mean())},
         "full": scores(docs, queries, doc_ids, query_ids, qrels, truth, lambda a: a),
         "full_cosine": scores(docs, queries, doc_ids, query_ids, qrels, truth, l2_normalize), "methods": {},
         "fit_defaults": current()}
    pca = PCA().fit(docs)
    r["methods"]["pca"] = [{str(d): scores(docs, queries, doc_ids, query_ids, qrels, truth,
                                           lambda a, d=d: np.asarray(a, np.float32) @ pca.components_[:d].T)
                            for d in DIMS}]
    for key, normalize in (("unit", True), ("norms", False)):
        r["methods"][key] = []
        for seed in args.seeds:
            head = SMEC(dims=(128, *sorted(DIMS, reverse=True)), normalize=normalize, seed=seed).fit(docs, threads=args.threads)
            r["methods"][key].append({str(d): scores(docs, queries, doc_ids, query_ids, qrels, truth,
                                                     lambda a, d=d: head.transform(a, d)) for d in DIMS})
            print(key, seed, {d: round(v["recall_at_10"], 3) for d, v in r["methods"][key][-1].items()}, flush=True)
    save_results("dot_product", r, render)
    print(render(r))


if __name__ == "__main__":
    main()

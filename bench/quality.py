"""Retrieval quality per dim and per byte on BEIR SciFact: every compressor in one table.

    .venv/bin/python bench/quality.py                       # embeds via the package cache (~6 min once)
    .venv/bin/python bench/quality.py --cache /work/cache/scifact-minilm   # reuse corpus.npy / queries.npy
    .venv/bin/python bench/quality.py --mpnet               # also all-mpnet-base-v2 (768 d; slow)

Writes ``bench/results/quality.md`` (a BENCHMARKS.md section), ``quality.json`` and
``quality_scifact.png``. SMEC heads (unsupervised, and supervised on ``qrels/train.tsv``) are
fitted on the corpus vectors and kept under ``--heads`` so a re-run reuses them; delete that
folder to refit. Everything runs on one thread, so timings do not depend on the machine's load
balance and the run leaves the other cores alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import faiss
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import current, measured_at, stamped, tag  # noqa: E402

from smec_compress.data.beir import read_qrels  # noqa: E402
from smec_compress.data.io import Embeddings  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.compare import Row  # noqa: E402
from smec_compress.evaluation.evalset import EvalSet, load_evalset  # noqa: E402
from smec_compress.evaluation.plot import plot_quality  # noqa: E402
from smec_compress.evaluation.report import best_per_budget, to_markdown  # noqa: E402
from smec_compress.evaluation.run import fit_smec_heads, run_comparison  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DIMS = (16, 32, 48, 64, 96, 128)


def from_npy_cache(cache: Path, data: Path) -> EvalSet:
    """Vectors precomputed as ``corpus.npy`` / ``queries.npy`` + id lists (same model and texts)."""
    corpus = Embeddings(json.loads((cache / "corpus_ids.json").read_text()), np.load(cache / "corpus.npy"))
    queries = Embeddings(json.loads((cache / "query_ids.json").read_text()), np.load(cache / "queries.npy"))
    train = data / "qrels" / "train.tsv"
    return EvalSet(corpus, queries, read_qrels(data / "qrels" / "test.tsv"), "all-MiniLM-L6-v2", 0, read_qrels(train), train)


def heads_for(data: EvalSet, dims: tuple[int, ...], folder: Path) -> dict[str, SMEC]:
    """Load the heads saved by an earlier run with the same dims, else fit and save them."""
    want = tuple(sorted(dims, reverse=True))
    names = ["smec", "smec-sup"] if data.train_qrels_path else ["smec"]
    if all((folder / n / "config.json").is_file() for n in names):
        heads = {n: SMEC.load(folder / n) for n in names}
        if all(h.dims_ == want and h.input_dim_ == data.corpus.dim for h in heads.values()):
            return heads
    start = time.perf_counter()
    heads = fit_smec_heads(data.corpus, data.queries, data.train_qrels_path, want, threads=1)
    print(f"fitted SMEC heads {list(heads)} in {time.perf_counter() - start:.0f}s", flush=True)
    for name, head in heads.items():
        head.save(folder / name)
    return heads


def run(data: EvalSet, dims: tuple[int, ...], heads_dir: Path) -> tuple[list[Row], dict]:
    """The same comparison as ``smec-compress eval`` (``run_comparison``), with cached heads."""
    start = time.perf_counter()

    def show(row: Row) -> None:
        print(f"{row.method:>16} {row.dim:>4} {row.bytes_per_vector:>5} B  nDCG@10 {row.ndcg10:.4f}", flush=True)

    result = run_comparison(data, dims, heads=heads_for(data, dims, heads_dir), on_row=show)
    for warning in result.warnings:
        print("warning:", warning)
    info = {
        "model": data.model, "docs": len(data.corpus.ids), "dim": data.corpus.dim,
        "judged_queries": result.judged_queries,
        "heldout_queries": None if result.heldout is None else len(result.heldout), "dims": list(dims),
        "seconds": round(time.perf_counter() - start), "machine": f"{platform.machine()}, 1 thread",
        "date": date.today().isoformat(), "faiss": faiss.__version__, "torch": torch.__version__,
        "command": " ".join(["bench/quality.py", *sys.argv[1:]]),
    }
    return result.rows, info


def section(title: str, rows: list[Row], info: dict, plot_name: str) -> str:
    """A BENCHMARKS.md section: how it was made, the whole table, the best row per byte budget."""
    budgets = [4, 8, 16, 32, 48, 64, 128, 256, 512, 4 * info["dim"]]
    return f"""## Retrieval quality per byte: {title}

`{info['command']}` ({info['date']}, {info['machine']}, {info['seconds']} s; faiss {info['faiss']}, torch {info['torch']}).
{info['docs']} documents, {info['judged_queries']} judged test queries; exact search (FAISS flat index for float
vectors, the codec's own index for quantised ones: scalar-quantiser IP, Hamming on sign bits, PQ/OPQ asymmetric IP).
Every reducer, codebook and head is fitted on the corpus vectors only. `+` stacks a codec on a reducer's output:
`pca+int8` at dim 64 stores 64 bytes. PQ/OPQ on the full vectors use `m` = bytes sub-quantisers; stacked OPQ uses
`dim / 4` bytes. `(sup)`: fitted with the training qrels too; the held-out column scores every method on the
{info['heldout_queries']} test queries none of whose relevant documents appears as a training positive, which is the
fair comparison for supervised rows.

![nDCG@10 against bytes per vector]({plot_name})

Best method within each byte budget, ranked on the held-out queries (all rows, supervised included):

{best_per_budget(rows, budgets)}
All rows:

{to_markdown(rows)}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--cache", type=Path, help="folder with corpus.npy, queries.npy, corpus_ids.json, query_ids.json")
    parser.add_argument("--heads", type=Path, default=default_cache_dir() / f"bench-heads-{tag()}", help="where fitted heads are kept")
    parser.add_argument("--dims", default=",".join(map(str, DIMS)))
    parser.add_argument("--mpnet", action="store_true", help="also all-mpnet-base-v2 (needs its five PyPI part packages)")
    parser.add_argument("--render-only", action="store_true", help="rewrite quality.md and the plots from quality.json")
    args = parser.parse_args()
    if args.render_only:
        return render(json.loads((RESULTS / "quality.json").read_text()))
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    dims = tuple(int(d) for d in args.dims.split(","))
    runs = [("minilm", "SciFact, all-MiniLM-L6-v2 (384 d)", None)]
    if args.mpnet:
        from models import assemble_mpnet

        runs.append(("mpnet", "SciFact, all-mpnet-base-v2 (768 d)", assemble_mpnet(default_cache_dir() / "models" / "mpnet")))
    results = {}
    for key, title, model in runs:
        if args.cache and model is None:
            data = from_npy_cache(args.cache, args.data)
        else:
            data = load_evalset(args.data, qrels_path=None, split="test", model=model, cache_dir=default_cache_dir())
        rows, info = run(data, dims, args.heads / key)
        results[key] = {"title": title, "info": info, "rows": [asdict(r) for r in rows], "fit_defaults": current()}
    (RESULTS / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    render(results)


def render(results: dict) -> None:
    """quality.md and one plot per model from the measured rows (no re-measuring)."""
    sections = []
    for key, result in results.items():
        rows = [Row(**r) for r in result["rows"]]
        plot_name = "quality_scifact.png" if key == "minilm" else f"quality_scifact_{key}.png"
        plot_quality(rows, RESULTS / plot_name, title=result["title"])
        sections.append(section(result["title"], rows, result["info"], plot_name))
    (RESULTS / "quality.md").write_text(stamped("\n".join(sections), measured_at(next(iter(results.values())))))
    print(f"wrote {RESULTS / 'quality.md'}, quality.json and the plot(s)")


if __name__ == "__main__":
    main()

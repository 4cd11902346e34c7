"""Evidence beyond one dataset (issue 16): every method `eval` knows, on every dataset x embedder
we have, with paired-bootstrap intervals, in one resumable run.

    .venv/bin/python bench/matrix.py [--cells minilm/cisi minilm/nfcorpus ...] [--threads 2]
                                     [--resamples 1000] [--render-only]

Cells (dataset x embedder): MiniLM (the bundled model) on SciFact, NFCorpus and CISI; mpnet
(all-mpnet-base-v2, 768 d) on SciFact (``../shared/embeddings``) and NFCorpus (embedded once
through the package's embedding cache, ~30 minutes on 2 cores; ``bench/models.py`` assembles the
model). In each cell, scored on the test qrels with `eval`'s own comparison (``run_comparison``):
full vectors, truncation, uncentred and centred PCA, random projection, Matryoshka-Adaptor and
the SMEC heads at 16 / 32 / 48 / 64 d, and every codec (int8, binary, PQ/OPQ, RaBitQ, re-ranked
sign bits, alone and stacked) plus each head's own codec at 16 / 32 / 48 / 64 bytes. Heads, all with
the default fit settings and seed 0: ``smec`` (unsupervised), and where training qrels exist
``smec-anchored`` (the same head, its budget codecs anchored on the training queries as a query
log, ``SMEC.fit_codecs``) and ``smec-sup`` (supervised on the training qrels). Heads are cached
under ``--heads``, so a resumed run scores the same ones.

Each cell's rows and per-query nDCG@10 are saved to ``bench/results/matrix.json`` as soon as it
finishes, and a re-run skips finished cells; a run can span sessions. Intervals are computed at
render time from the saved per-query scores (1,000 resamples, seed 0): a win / loss is an interval
above / below zero, a tie one that straddles it. Writes ``matrix.md`` and one plot per embedder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import fresh_if_changed, tag  # noqa: E402
from results_file import RESULTS, save_results  # noqa: E402
from smec_compress.evaluation import bootstrap  # noqa: E402
from smec_compress.evaluation.bootstrap import SIMPLE_REDUCERS, paired_bootstrap, strongest_simple  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.compare import Row, row_key  # noqa: E402
from smec_compress.evaluation.run import REDUCERS  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
EMBEDDINGS = ROOT.parent / "shared" / "embeddings"
DIMS = (16, 32, 48, 64)
BUDGETS = (16, 32, 48, 64)
HEADS = ("smec", "smec-anchored", "smec-sup")
# Float methods shown per dim, in table order (the heads' stacks and codecs are per-byte rows).
FLOAT_METHODS = ("truncation", "pca", "pca-centred", "random", "mat-adaptor", "smec", "smec-sup")
EMBEDDERS = {"minilm": "all-MiniLM-L6-v2 (384 d)", "mpnet": "all-mpnet-base-v2 (768 d)"}
TITLES = {"scifact": "SciFact", "nfcorpus": "NFCorpus", "cisi": "CISI"}


@dataclass(frozen=True)
class Cell:
    embedder: str
    dataset: str

    @property
    def key(self) -> str:
        return f"{self.embedder}/{self.dataset}"


CELLS = [Cell("minilm", "scifact"), Cell("minilm", "nfcorpus"), Cell("minilm", "cisi"),
         Cell("mpnet", "scifact"), Cell("mpnet", "nfcorpus")]


def load(cell: Cell):
    """The cell's vectors and qrels: MiniLM and mpnet-NFCorpus through the embedding cache,
    mpnet-SciFact from ``../shared/embeddings``."""
    from smec_compress.evaluation.evalset import load_evalset

    data, cache = DATA / cell.dataset, default_cache_dir()
    if cell.embedder == "minilm":
        return load_evalset(data, qrels_path=None, split="test", model=None, cache_dir=cache)
    if cell.dataset == "scifact":
        return load_evalset(EMBEDDINGS / "scifact.mpnet.parquet", qrels_path=data / "qrels" / "test.tsv", split="test",
                            model=None, cache_dir=cache, train_qrels_path=data / "qrels" / "train.tsv")
    from models import assemble_mpnet

    print(f"{cell.key}: embedding with mpnet through the cache (about 30 minutes the first time)", flush=True)
    return load_evalset(data, qrels_path=None, split="test", model=assemble_mpnet(cache / "models" / "mpnet"), cache_dir=cache)


def anchor_queries(data) -> tuple[np.ndarray, list[str]]:
    """The training queries' vectors and ids: a query log that never contains a test query."""
    position = {q: i for i, q in enumerate(data.queries.ids)}
    ids = sorted(q for q in data.train_qrels if q in position and q not in data.qrels)
    return data.queries.vectors[[position[q] for q in ids]], ids


def fit_heads(data, folder: Path, threads: int) -> dict:
    """The cell's heads; each is saved as soon as it is fitted and loaded from ``folder`` when an
    earlier run saved it (a fit with byte budgets takes tens of minutes)."""
    from smec_compress import SMEC
    from smec_compress.data.training_data import training_pairs

    X, fp = data.corpus.vectors, data.corpus.meta.fingerprint

    def smec():
        return SMEC(seed=0).fit(X, budgets=BUDGETS, embedder_fingerprint=fp, threads=threads)

    def anchored():  # the unsupervised head's float maps, its codecs anchored on the training queries
        anchors, ids = anchor_queries(data)
        return SMEC.load(folder / "smec").fit_codecs(X, BUDGETS, anchor_queries=anchors, anchor_ids=ids, threads=threads)

    def supervised():
        q_vectors, positives, _ = training_pairs(data.corpus, data.queries, data.train_qrels_path)
        return SMEC(seed=0).fit(X, queries=q_vectors, positives=positives, budgets=BUDGETS, embedder_fingerprint=fp,
                                threads=threads)

    recipes = {"smec": smec, "smec-anchored": anchored, "smec-sup": supervised}
    heads = {}
    for name in HEADS if data.train_qrels_path else HEADS[:1]:
        if not (folder / name / "config.json").is_file():
            start = time.perf_counter()
            recipes[name]().save(folder / name)
            print(f"fitted {name} in {time.perf_counter() - start:.0f} s", flush=True)
        heads[name] = SMEC.load(folder / name)
    return heads


def run_cell(cell: Cell, heads_dir: Path, threads: int) -> dict:
    """Score every method in ``cell``; what is saved: rows, per-query nDCG@10, query ids."""
    from smec_compress.evaluation.retrieval import select_queries
    from smec_compress.evaluation.run import run_comparison

    data = load(cell)
    start = time.perf_counter()
    heads = fit_heads(data, heads_dir / cell.embedder / cell.dataset, threads)
    fitted = time.perf_counter() - start
    result = run_comparison(data, DIMS, budgets=BUDGETS, heads=heads, seed=0,
                            on_row=lambda r: print(f"{cell.key} {r.method:>34} {r.dim:>4} {r.bytes_per_vector:>5} B "
                                                   f"{r.ndcg10:.4f}", flush=True))
    queries = select_queries(list(data.queries.ids), data.qrels).query_ids
    return {"date": date.today().isoformat(), "docs": len(data.corpus.ids), "dim": data.corpus.dim, "model": data.model, "queries": queries,
            "heldout": result.heldout, "warnings": result.warnings, "fit_seconds": round(fitted),
            "seconds": round(time.perf_counter() - start), "rows": [asdict(r) for r in result.rows],
            "per_query": {"|".join(map(str, row_key(r))): np.round(result.per_query[row_key(r)], 5).tolist()
                          for r in result.rows}}


# ------------------------------------------------------------------ what the saved cells say
def rows_of(cell: dict) -> list[Row]:
    return [Row(**r) for r in cell["rows"] if r["rescored"] is None]


def scores(cell: dict, row: Row) -> np.ndarray:
    return np.asarray(cell["per_query"]["|".join(map(str, row_key(row)))])


def best_quantiser(rows: list[Row], budget: int) -> Row | None:
    """The best off-the-shelf codec that fits ``budget`` (``eval --bootstrap``'s yardstick)."""
    return bootstrap.best_quantiser(rows, budget, heads=HEADS, float_methods=[*REDUCERS, *HEADS])


def head_codec(rows: list[Row], head: str, budget: int) -> Row | None:
    """The head's own codec for ``budget`` (the one ``fit --budgets`` chose)."""
    return next((r for r in rows if r.method.startswith(f"{head} {budget}B:")), None)


def best_ours(rows: list[Row], head: str, budget: int) -> Row | None:
    """Best row built on ``head`` that fits ``budget``: its float dims, stacks and own codecs."""
    fitting = [r for r in rows if (r.method == head or r.method.startswith((f"{head}+", f"{head} "))) and r.bytes_per_vector <= budget]
    return max(fitting, key=lambda r: r.ndcg10) if fitting else None


def interval(cell: dict, ours: Row, theirs: Row, resamples: int) -> tuple[float, float, float]:
    return paired_bootstrap(scores(cell, ours), scores(cell, theirs), resamples=resamples, seed=0)


def verdict(low: float, high: float) -> str:
    return "win" if low > 0 else "loss" if high < 0 else "tie"


def fmt_interval(diff: float, low: float, high: float) -> str:
    return f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"


def cell_tables(key: str, cell: dict, resamples: int) -> list[str]:
    rows = rows_of(cell)
    full = next(r for r in rows if r.method == "full")
    embedder, dataset = key.split("/")
    held = cell["heldout"]
    lines = [f"### {TITLES[dataset]}, {EMBEDDERS[embedder]}", "",
             f"{cell['docs']:,} documents, {len(cell['queries'])} judged test queries"
             + (f" ({len(held)} held out from the training qrels)" if held is not None else ", no training qrels")
             + f"; full {cell['dim']} d: {full.ndcg10:.4f}. Measured {cell['date']}, scored in {cell['seconds'] - cell['fit_seconds']} s "
             "(heads fitted, or loaded when an earlier run had fitted them, before that).",
             "", "nDCG@10 per dim (**bold**: the strongest simple reducer at that dim):", "",
             "| method | " + " | ".join(f"{d} d" for d in DIMS) + " |", "|---|" + "---:|" * len(DIMS)]
    strongest = {d: strongest_simple(rows, d) for d in DIMS}
    for method in FLOAT_METHODS:
        found = {r.dim: r for r in rows if r.method == method}
        if not found:
            continue
        cells = [(f"**{found[d].ndcg10:.4f}**" if strongest[d] is found[d] else f"{found[d].ndcg10:.4f}") if d in found else ""
                 for d in DIMS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Paired bootstrap, nDCG@10 of the head minus the strongest simple reducer at each dim (95% interval):", "",
              "| head | " + " | ".join(f"{d} d" for d in DIMS) + " |", "|---|" + "---:|" * len(DIMS)]
    for head in ("smec", "smec-sup"):
        found = {r.dim: r for r in rows if r.method == head}
        if found:
            lines.append(f"| {head} | " + " | ".join(fmt_interval(*interval(cell, found[d], strongest[d], resamples))
                                                     + f" vs {strongest[d].method}" for d in DIMS) + " |")
    lines += ["", "Per byte: the best off-the-shelf quantiser that fits, each head's own codec (`fit --budgets`), "
              "and the head's codec minus that quantiser (95% interval):", "",
              "| bytes <= | best quantiser | nDCG@10 | " + " | ".join(f"{h} codec | {h} minus quantiser" for h in HEADS) + " |",
              "|---:|---|---:|" + "---|---:|" * len(HEADS)]
    for budget in BUDGETS:
        rival = best_quantiser(rows, budget)
        if rival is None:
            continue
        parts = []
        for head in HEADS:
            ours = head_codec(rows, head, budget)
            parts += (["", ""] if ours is None else
                      [f"{ours.method.split(': ', 1)[1]} {ours.ndcg10:.4f}", fmt_interval(*interval(cell, ours, rival, resamples))])
        lines.append(f"| {budget} | {rival.method} ({rival.bytes_per_vector} B) | {rival.ndcg10:.4f} | " + " | ".join(parts) + " |")
    return lines + [""]


def summary(results: dict, resamples: int) -> list[str]:
    """Per method: mean nDCG@10 over the cells that have it and wins / ties / losses by interval."""
    cells = results["cells"]
    lines = ["### Summary over every cell", "",
             f"Mean nDCG@10 over the cells that have the method [cells], and wins / ties / losses (paired bootstrap, "
             f"{resamples} resamples) against the strongest simple reducer at each dim:", "",
             "| method | " + " | ".join(f"{d} d" for d in DIMS) + " |", "|---|" + "---|" * len(DIMS)]
    for method in FLOAT_METHODS:
        parts = []
        for dim in DIMS:
            found = [(c, r) for c in cells.values() for r in rows_of(c) if r.method == method and r.dim == dim]
            if not found:
                parts.append("")
                continue
            tally = {"win": 0, "tie": 0, "loss": 0}
            for c, r in found:
                rival = strongest_simple(rows_of(c), dim)
                if method in SIMPLE_REDUCERS and r is rival:
                    tally["tie"] += 1  # the yardstick itself
                    continue
                _, low, high = interval(c, r, rival, resamples)
                tally[verdict(low, high)] += 1
            mean = np.mean([r.ndcg10 for _, r in found])
            parts.append(f"{mean:.4f} [{len(found)}] {tally['win']}/{tally['tie']}/{tally['loss']}")
        lines.append(f"| {method} | " + " | ".join(parts) + " |")
    lines += ["", "Per byte budget: mean nDCG@10 of the best quantiser that fits, of each head's own codec and of the best "
              "row built on the head (its float dims, stacks and codecs), and the own codec's wins / ties / losses "
              "against the best quantiser:", "",
              "| bytes <= | best quantiser | " + " | ".join(f"{h} codec | best on {h}" for h in HEADS) + " |",
              "|---:|---:|" + "---|---:|" * len(HEADS)]
    for budget in BUDGETS:
        rivals = {k: best_quantiser(rows_of(c), budget) for k, c in cells.items()}
        rivals = {k: r for k, r in rivals.items() if r is not None}
        if not rivals:
            continue
        parts = []
        for head in HEADS:
            own = [(k, head_codec(rows_of(cells[k]), head, budget)) for k in rivals]
            own = [(k, r) for k, r in own if r is not None]
            tally = {"win": 0, "tie": 0, "loss": 0}
            for k, r in own:
                tally[verdict(*interval(cells[k], r, rivals[k], resamples)[1:])] += 1
            best = [best_ours(rows_of(cells[k]), head, budget) for k in rivals]
            best = [r.ndcg10 for r in best if r is not None]
            parts += [f"{np.mean([r.ndcg10 for _, r in own]):.4f} [{len(own)}] {tally['win']}/{tally['tie']}/{tally['loss']}"
                      if own else "", f"{np.mean(best):.4f}" if best else ""]
        mean_rival = np.mean([r.ndcg10 for r in rivals.values()])
        lines.append(f"| {budget} | {mean_rival:.4f} [{len(rivals)}] | " + " | ".join(parts) + " |")
    return lines + [""]


def plot(results: dict) -> list[str]:
    """One figure per embedder: nDCG@10 against dim, one panel per dataset; returns the image links."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = []
    for embedder, title in EMBEDDERS.items():
        keys = [k for k in results["cells"] if k.startswith(f"{embedder}/")]
        if not keys:
            continue
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
        for ax, key in zip(axes[0], keys):
            rows = rows_of(results["cells"][key])
            for method in FLOAT_METHODS:
                found = sorted((r.dim, r.ndcg10) for r in rows if r.method == method and r.dim in DIMS)
                if found:
                    ax.plot(*zip(*found), marker="o", label=method, linewidth=2.2 if method.startswith("smec") else 1.2)
            full = next(r.ndcg10 for r in rows if r.method == "full")
            ax.axhline(full, color="grey", linestyle="--", linewidth=1, label="full")
            ax.set_title(TITLES[key.split("/")[1]])
            ax.set_xlabel("dim")
            ax.set_xticks(DIMS)
        axes[0][0].set_ylabel("nDCG@10")
        axes[0][-1].legend(fontsize=7, loc="lower right")
        fig.suptitle(title)
        fig.tight_layout()
        name = f"matrix_{embedder}.png"
        fig.savefig(RESULTS / name, dpi=110)
        plt.close(fig)
        links.append(f"![nDCG@10 per dim, {title}]({name})")
    return links


def render(results: dict) -> str:
    m, resamples = results["machine"], results["resamples"]
    cells = results["cells"]
    done = [c.key for c in CELLS if c.key in cells]
    missing = [c.key for c in CELLS if c.key not in cells]
    lines = ["## Evidence matrix: datasets x embedders (bench/matrix.py)", "",
             f"`{m['command']}` ({m['date']}, {m['arch']}, {m['nproc']} CPUs). Cells measured: {', '.join(done) or 'none'}"
             + (f"; not yet measured: {', '.join(missing)}." if missing else "."),
             "Default fit settings, seed 0, one fit per head: the intervals are over test queries (paired bootstrap of "
             "per-query nDCG@10), not over seeds. Win / loss: the 95% interval of the difference is above / below zero; "
             "tie: it straddles zero. `smec-sup` scores on all test queries here (its training queries are never test "
             "queries; the held-out share of each dataset is in the per-cell header).", ""]
    if cells:
        lines += summary(results, resamples)
        lines += [*plot(results), ""]
        for key in done:
            lines += cell_tables(key, cells[key], resamples)
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=[c.key for c in CELLS], choices=[c.key for c in CELLS])
    ap.add_argument("--threads", type=int, default=2, help="torch and FAISS threads")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--heads", type=Path, default=default_cache_dir() / f"bench-matrix-{tag()}", help="where fitted heads are kept")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    import json

    path = RESULTS / "matrix.json"
    results = json.loads(path.read_text()) if path.is_file() else {"cells": {}}
    if not args.render_only:
        results = fresh_if_changed(results, "matrix")
    results["resamples"] = args.resamples
    if not args.render_only:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
        results["machine"] = {"arch": platform.machine(), "nproc": os.cpu_count(), "date": date.today().isoformat(),
                              "command": "python bench/matrix.py " + " ".join(sys.argv[1:])}
        for cell in (next(c for c in CELLS if c.key == key) for key in args.cells):  # in the order asked
            if cell.key in results["cells"]:
                continue
            results["cells"][cell.key] = run_cell(cell, args.heads, args.threads)
            save_results("matrix", results, render)
    save_results("matrix", results, render)


if __name__ == "__main__":
    main()

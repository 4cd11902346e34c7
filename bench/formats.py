"""On-disk formats: file size and compress rate from each, against a bare matmul (issue 7).

    .venv/bin/python bench/formats.py [--rows 1000000] [--dim 384] [--reps 3] [--workdir /tmp/smec-formats]

Writes the same N x D unit vectors (random directions: like real embeddings, float noise that does
not compress) four ways: Parquet with pyarrow's defaults (snappy, dictionary: what most tools
write), Parquet with zstd + dictionary (this library before BYTE_STREAM_SPLIT), Parquet as this
library writes it now (zstd, BYTE_STREAM_SPLIT, no dictionary), and Arrow IPC (uncompressed). Then,
in this process with the files in the page cache, runs ``compress_file`` from each to 64 d into a
fresh ``.arrow`` file ``--reps`` times, and times a bare numpy matmul of the same shape on the same
vectors in memory. Results go to ``bench/results/formats.{md,json}``.
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
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress.model.head import SMEC  # noqa: E402
from smec_compress.data.schema import META_KEY, EmbeddingMeta
from smec_compress.data.writer import EmbeddingWriter  # noqa: E402
from smec_compress.engines.local import compress_file  # noqa: E402

FORMATS = {
    "parquet-pyarrow-defaults": "Parquet, pyarrow defaults (snappy, dictionary)",
    "parquet-zstd-dictionary": "Parquet, zstd + dictionary (before)",
    "parquet": "Parquet as written here (zstd, BYTE_STREAM_SPLIT)",
    "arrow": "Arrow IPC, uncompressed (memory-mapped)",
}


def vectors(rows: int, dim: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def write_all(work: Path, x: np.ndarray, meta: EmbeddingMeta) -> dict[str, Path]:
    """The four files; the first two through pyarrow directly, with this library's schema."""
    ids = [str(i) for i in range(len(x))]
    paths = {name: work / f"{name}.{'arrow' if name == 'arrow' else 'parquet'}" for name in FORMATS}
    for name in ("parquet", "arrow"):
        with EmbeddingWriter(paths[name], x.shape[1], meta) as writer:
            for s in range(0, len(x), 65_536):
                writer.write(ids[s : s + 65_536], x[s : s + 65_536])
    table = pa.table({"id": ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])})
    table = table.replace_schema_metadata({META_KEY: meta.to_bytes()})
    pq.write_table(table, paths["parquet-pyarrow-defaults"], row_group_size=65_536)
    pq.write_table(table, paths["parquet-zstd-dictionary"], row_group_size=65_536, compression="zstd")
    return paths


def best_and_median(fn, reps: int) -> tuple[float, float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/smec-formats"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    x = vectors(args.rows, args.dim)
    meta = EmbeddingMeta(model="synthetic", normalized=True, fingerprint="synthetic")
    head = SMEC(dims=(64,), max_steps_per_stage=50, min_steps_per_stage=0, seed=0)
    head.fit(x[:20_000], embedder_fingerprint="synthetic")  # the rate does not depend on how well it is trained
    paths = write_all(args.workdir, x, meta)
    out = args.workdir / "out.arrow"

    def run(path: Path):
        def once():
            out.unlink(missing_ok=True)
            compress_file(head, path, out, dim=64)
        return once

    w = head.weights_[64][0]
    rows = {}
    for name, path in paths.items():
        best, median = best_and_median(run(path), args.reps)
        rows[name] = {"bytes": path.stat().st_size, "best_secs": best, "median_secs": median}
    mm_best, mm_median = best_and_median(lambda: x @ w, max(args.reps, 5))
    result = {
        "rows": args.rows, "dim": args.dim, "reps": args.reps, "formats": rows,
        "matmul": {"best_secs": mm_best, "median_secs": mm_median},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": date.today().isoformat(),
        "command": "python bench/formats.py " + " ".join(sys.argv[1:]),
    }
    results = ROOT / "bench" / "results"
    (results / "formats.json").write_text(json.dumps(result, indent=2))
    (results / "formats.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    n, mm = r["rows"], r["matmul"]
    lines = []
    for name, v in r["formats"].items():
        rate, median = n / v["best_secs"], n / v["median_secs"]
        lines.append(f"| {FORMATS[name]} | {v['bytes'] / 2**30:.2f} GiB | {rate:,.0f} ({100 * mm['best_secs'] / v['best_secs']:.0f}%) "
                     f"| {median:,.0f} ({100 * mm['median_secs'] / v['median_secs']:.0f}%) |")
    return (
        "## On-disk formats: size and compress rate\n\n"
        f"`{r['command']}` on {r['machine']}, {r['date']}. {n:,} x {r['dim']} unit vectors (random directions), "
        f"`compress_file` to 64 d into a fresh `.arrow` file, input in the page cache, in one process; best and "
        f"median of {r['reps']} runs, as % of a bare numpy `x @ w` of the same shape in memory "
        f"({n / mm['best_secs']:,.0f} vectors/s best, {n / mm['median_secs']:,.0f} median).\n\n"
        "| input file | size | vectors/s best (% of matmul) | median (% of matmul) |\n|---|---|---|---|\n"
        + "\n".join(lines) + "\n\n"
        "Parquet stores a list column with per-value repetition levels, and decoding them, not the matmul, sets\n"
        "the rate; BYTE_STREAM_SPLIT also makes float values compress under zstd. Arrow IPC is read by mapping the\n"
        "file: batches are views of the page cache, so what remains is the matmul and writing the output.\n"
    )


if __name__ == "__main__":
    main()

"""Peak memory of reading a large Parquet embedding file (issue 2's streaming claim).

    .venv/bin/python bench/io_memory.py [--rows 1000000] [--dim 384] [--workdir /tmp/smec-io-bench]

Writes N x D random float32 vectors with ``EmbeddingWriter`` (row groups of 65,536), then reads
them back with ``read_embeddings`` in a fresh process and reports that process's peak RSS above
its RSS after imports, against the size of the resulting array. Results go to
``bench/results/io_memory.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress import EmbeddingMeta, EmbeddingWriter  # noqa: E402

CHILD = r"""
import json, sys, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from smec_compress import read_embeddings
base = status("VmRSS:")
t = time.perf_counter()
emb = read_embeddings(sys.argv[1])
secs = time.perf_counter() - t
print(json.dumps({"base": base, "peak": status("VmHWM:"), "array": emb.vectors.nbytes, "rows": len(emb.ids), "secs": secs}))
"""


def write_file(path: Path, rows: int, dim: int) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with EmbeddingWriter(path, dim, EmbeddingMeta(model="synthetic", normalized=False)) as writer:
        for first in range(0, rows, 65_536):
            n = min(65_536, rows - first)
            writer.write([str(i) for i in range(first, first + n)], rng.standard_normal((n, dim), dtype=np.float32))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/smec-io-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"synthetic-{args.rows}x{args.dim}.parquet"
    write_secs = write_file(path, args.rows, args.dim)
    child = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True, cwd=ROOT)
    r = json.loads(child.stdout)
    extra = r["peak"] - r["base"]
    result = {
        "rows": r["rows"], "dim": args.dim, "file_bytes": path.stat().st_size, "array_bytes": r["array"],
        "peak_above_imports_bytes": extra, "ratio_to_array": extra / r["array"], "read_secs": r["secs"],
        "write_secs": write_secs, "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores", "date": date.today().isoformat(),
        "command": f"python bench/io_memory.py --rows {args.rows} --dim {args.dim}",
    }
    gib = 2**30
    md = (
        "## Reading Parquet embeddings: peak memory\n\n"
        f"`{result['command']}` on {result['machine']}, {result['date']}.\n\n"
        "| rows x dim | file | array (float32) | peak RSS above imports | ratio | read time | write time |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {r['rows']:,} x {args.dim} | {result['file_bytes'] / gib:.2f} GiB | {r['array'] / gib:.2f} GiB | "
        f"{extra / gib:.2f} GiB | {result['ratio_to_array']:.2f}x | {r['secs']:.1f} s | {write_secs:.1f} s |\n\n"
        "`read_embeddings` preallocates the (N, D) array from the Parquet row counts and fills it one record\n"
        "batch (65,536 rows) at a time, so the peak is the array, the ids and one batch.\n"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "io_memory.json").write_text(json.dumps(result, indent=2))
    (out / "io_memory.md").write_text(md)
    path.unlink()
    print(md)


if __name__ == "__main__":
    main()

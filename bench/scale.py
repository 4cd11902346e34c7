"""Scale: compress and fit on synthetic corpora on disk, local engine vs Ray Data, Parquet vs Arrow IPC (issue 7).

    .venv/bin/python bench/scale.py [--rows 10000000] [--dim 384] [--workdir /tmp/smec-scale]
                                    [--fit-memory 8G] [--sample-rows 1000000] [--max-steps 500] [--skip-ray]

1. Writes ROWS x DIM clustered synthetic unit vectors twice, as the same vectors in 1M-row files:
   ``corpus/`` (Parquet, the library's default encoding) and ``corpus-arrow/`` (Arrow IPC).
2. ``fit`` (default dims, ``--max-steps`` batches per stage; the CLI default is 2,000) under an
   address-space limit (``prlimit --as``) smaller than the dataset: it streams a uniform sample
   (``--sample-rows``, the CLI's default 1M) instead of loading everything. This is also the
   "fit on 1M x 384 synthetic vectors" timing; fit time grows linearly with the steps.
3. ``compress`` to 64 d: Parquet -> Parquet with the local engine and with ``--engine ray``; then
   Arrow IPC -> Arrow IPC with the local engine three times: first with the OS page cache dropped
   (when run as root; the input comes from disk), then twice with the input already cached. Each
   row gives the wall time of the whole command (Python start-up included), the rate the
   command itself reports (rows / seconds of its compress loop), and peak RSS of the process tree,
   plus anonymous RSS (RssAnon): memory-mapped input pages count in RSS but are page cache the
   kernel can drop, not memory the process allocated.
4. The same compute with no I/O: ``head.transform`` against a bare numpy matmul of the same shape,
   measured right after the compress runs (issue 7's yardstick: compress >= 80% of the matmul).
5. The output write alone, through the page cache and with O_DIRECT (what ``compress`` uses): wall
   and CPU seconds, since CPU spent writing is taken from the matmul on the same cores.
Results go to ``bench/results/scale.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smec_compress.model.head import SMEC  # noqa: E402
from smec_compress.resources import parse_bytes  # noqa: E402
from smec_compress import EmbeddingMeta, EmbeddingWriter  # noqa: E402
from smec_compress.data.io import iter_batches  # noqa: E402
from smec_quality import throughput  # noqa: E402  (bench/ is on sys.path when run as a script)

CLI = [sys.executable, "-m", "smec_compress"]
GIB = 2**30


LAYOUT = "v2: parquet byte_stream_split+zstd, arrow ipc uncompressed"  # regenerate when the writers change


def synthesize(root: Path, rows: int, dim: int, seed: int = 0) -> None:
    """Clustered unit vectors (200 Gaussian clusters), 1M rows a file, 65,536-row batches, written
    to ``root/corpus`` (Parquet) and ``root/corpus-arrow`` (Arrow IPC): the same vectors twice."""
    stamp = root / "corpus" / ".layout"
    if stamp.exists() and stamp.read_text() == f"{LAYOUT}; {rows} x {dim}":
        return
    for name in ("corpus", "corpus-arrow"):
        shutil.rmtree(root / name, ignore_errors=True)
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((200, dim)).astype(np.float32)
    meta = EmbeddingMeta(model="synthetic", normalized=True, fingerprint="synthetic")
    for part, first in enumerate(range(0, rows, 1_000_000)):
        n_file = min(1_000_000, rows - first)
        with EmbeddingWriter(root / "corpus" / f"part-{part:04d}.parquet", dim, meta) as parquet, \
                EmbeddingWriter(root / "corpus-arrow" / f"part-{part:04d}.arrow", dim, meta) as arrow:
            for start in range(0, n_file, 65_536):
                n = min(65_536, n_file - start)
                x = centers[rng.integers(0, 200, n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
                x /= np.linalg.norm(x, axis=1, keepdims=True)
                ids = [str(first + start + i) for i in range(n)]
                parquet.write(ids, x)
                arrow.write(ids, x)
    stamp.write_text(f"{LAYOUT}; {rows} x {dim}")


def drop_page_cache() -> bool:
    """Empty the OS page cache so the next read comes from disk; False where not permitted."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def disk_read_rate(path: Path) -> float:
    """Bytes/s reading one file sequentially in 4 MiB blocks (from disk, if the cache was just dropped)."""
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(4 << 20):
            pass
    return path.stat().st_size / (time.perf_counter() - start)


def disk_write_rate(path: Path, size: int = 2 << 30) -> float:
    """Bytes/s writing ``size`` bytes in 4 MiB blocks and fsyncing: what a long output write settles at."""
    block = np.random.default_rng(0).bytes(4 << 20)
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for _ in range(size // len(block)):
            f.write(block)
        os.fsync(f.fileno())
    secs = time.perf_counter() - start
    path.unlink()
    return size / secs


def mapped_transform_rate(head: SMEC, data: Path, dim: int = 64) -> float:
    """Vectors/s of ``transform`` over the memory-mapped Arrow batches with nothing written:
    compress's loop without its output."""
    buffer = np.empty((65_536, dim), np.float32)
    rows, start = 0, time.perf_counter()
    for batch in iter_batches(data, check_finite=False):
        head.transform(batch.vectors, dim, out=buffer[: len(batch.vectors)])
        rows += len(batch.vectors)
    return rows / (time.perf_counter() - start)


def output_write_cost(data: Path, out: Path, dim: int = 64) -> dict:
    """Writing compress's output alone, through the page cache and with O_DIRECT: wall and CPU seconds.

    The rows of ``data`` (ids from the mapped input, vectors from one reused buffer) go through
    ``EmbeddingWriter`` as ``compress`` writes them, in the main thread, with the input in the page
    cache: the CPU column is what a write takes from the matmul on the same cores.
    """
    buffer = np.zeros((65_536, dim), np.float32)
    result = {}
    for name, direct in (("page cache", False), ("O_DIRECT", True)):
        wall, cpu = time.perf_counter(), time.process_time()
        with EmbeddingWriter(out, dim, EmbeddingMeta(), direct=direct) as writer:
            for batch in iter_batches(data, check_finite=False):
                writer.write(batch.id_array, buffer[: len(batch.vectors)], batch.rest)
        result[name] = {"secs": time.perf_counter() - wall, "cpu_secs": time.process_time() - cpu}
        out.unlink()
    return result


def rss_anon(proc: psutil.Process) -> int:
    """Anonymous resident memory (bytes): what the process allocated, without mapped file pages."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def run_measured(cmd: list[str], *, prefix: list[str] | None = None, keep_output: bool = False) -> dict:
    """Run a command; wall time and peak RSS summed over its whole process tree (and its whole
    output, stdout and stderr together, under "output" with ``keep_output``)."""
    proc = psutil.Popen((prefix or []) + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = peak_anon = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_anon
        while not done.is_set():
            try:
                tree = [p for p in [proc] + proc.children(recursive=True) if p.is_running()]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
                peak_anon = max(peak_anon, sum(rss_anon(p) for p in tree))
            except (psutil.Error, OSError):
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    output, _ = proc.communicate()
    secs = time.perf_counter() - start
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    tail = output.strip().splitlines()[-1:]
    reported = re.search(r"in ([0-9.]+)s \(([0-9,]+) vectors/s\)", " ".join(output.split()))  # rich may wrap it
    own = {"own_secs": float(reported[1]), "own_vectors_per_s": float(reported[2].replace(",", ""))} if reported else {}
    kept = {"output": output} if keep_output else {}
    return {"secs": secs, "peak_rss": peak, "peak_rss_anon": peak_anon, "tail": tail, **own, **kept}


def compute_only(head: SMEC, dim: int, rows: int = 1_000_000) -> dict:
    """transform vs a bare matmul of the same shape, on data already in memory (vectors/s)."""
    x = np.random.default_rng(1).standard_normal((rows, head.input_dim_), dtype=np.float32)
    r = throughput(head, x, dim)
    return {"matmul": r["matmul_rows_per_s"], "transform": r["transform_rows_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/smec-scale"))
    parser.add_argument("--fit-memory", default="8G", help="address-space limit for the fit run")
    parser.add_argument("--max-steps", type=int, default=500, help="training batches per stage")
    parser.add_argument("--sample-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite scale.md from scale.json")
    args = parser.parse_args()
    results = ROOT / "bench" / "results"
    if args.render_only:
        (results / "scale.md").write_text(render(json.loads((results / "scale.json").read_text())))
        return print(f"wrote {results / 'scale.md'}")
    work = args.workdir
    data, arrow_data = work / "corpus", work / "corpus-arrow"
    t = time.perf_counter()
    synthesize(work, args.rows, args.dim)
    gen_secs = time.perf_counter() - t
    data_bytes = args.rows * args.dim * 4
    limit = parse_bytes(args.fit_memory)

    fit = run_measured(
        CLI + ["fit", str(data), "--sample-rows", str(args.sample_rows), "--max-steps", str(args.max_steps),
               "--out", str(work / "head")],
        prefix=["prlimit", f"--as={limit}"],
    )
    head = SMEC.load(work / "head")
    runs = {"parquet, local": compress(work, data, "local-64.parquet")}
    if not args.skip_ray:
        runs["parquet, Ray Data"] = compress(work, data, "ray-64", "--engine", "ray")
    disk = disk_read_rate(next(arrow_data.glob("*.arrow"))) if drop_page_cache() else None
    dropped = drop_page_cache()
    runs["arrow, local, " + ("page cache dropped" if dropped else "first run")] = compress(work, arrow_data, "local-64.arrow")
    for n in (1, 2):
        runs[f"arrow, local, input cached ({n})"] = compress(work, arrow_data, "local-64.arrow")
    mapped = mapped_transform_rate(head, arrow_data)  # the input is in the page cache after the runs above
    compute = compute_only(head, 64)
    write_rate = disk_write_rate(work / "write-test.bin")
    write_cost = output_write_cost(arrow_data, work / "write-cost.arrow")
    result = {
        "rows": args.rows, "dim": args.dim, "data_bytes": data_bytes, "generate_secs": gen_secs,
        "fit": {**fit, "address_space_limit": limit, "sample_rows": args.sample_rows, "max_steps": args.max_steps},
        "compress": {k: {**v, "vectors_per_s": args.rows / v["secs"]} for k, v in runs.items()},
        "compute_vectors_per_s": compute,
        "cold_disk_read_bytes_per_s": disk,
        "disk_write_bytes_per_s": write_rate,
        "output_write": write_cost,
        "mapped_transform_vectors_per_s": mapped,
        "input_bytes": {name: sum(f.stat().st_size for f in d.iterdir() if not f.name.startswith("."))
                        for name, d in (("parquet", data), ("arrow", arrow_data))},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.0f} GiB RAM",
        "date": date.today().isoformat(),
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
    }
    (ROOT / "bench" / "results" / "scale.json").write_text(json.dumps(result, indent=2))
    (ROOT / "bench" / "results" / "scale.md").write_text(render(result))
    print(render(result))


def disk_text(r: dict) -> str:
    rate = r.get("cold_disk_read_bytes_per_s")
    if not rate:
        return "not measured: dropping the page cache needs root"
    return (f"one input file read cold here at {rate / 1e9:.2f} GB/s, i.e. {rate / (4 * r['dim']):,.0f} vectors of "
            f"{r['dim']} floats per second")


def write_text(r: dict) -> str:
    w = r.get("output_write")
    if not w:
        return ""
    cells = "; ".join(f"{name} {v['secs']:.1f} s wall, {v['cpu_secs']:.1f} s CPU" for name, v in w.items())
    return (f"Writing that output alone (ids and vectors as `compress` writes them, input cached): {cells}. "
            "`compress` writes with O_DIRECT from a background thread.")


def compress(work: Path, data: Path, out_name: str, *extra: str) -> dict:
    """One measured ``compress`` to 64 d into a fresh output (an existing one is removed first)."""
    out = work / out_name
    shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    return run_measured(CLI + ["compress", str(work / "head"), str(data), "--dim", "64", "--out", str(out), *extra])


def render(r: dict) -> str:
    c = r["compute_vectors_per_s"]
    rows = []
    for name, v in r["compress"].items():
        own = v.get("own_vectors_per_s")
        own_cell = f"{own:,.0f} ({100 * own / c['matmul']:.0f}%)" if own else "-"
        rows.append(
            f"| compress to 64 d: {name} | {v['secs']:.0f} s | {v['vectors_per_s']:,.0f} | {own_cell} | "
            f"{v['peak_rss'] / GIB:.2f} GiB | {v['peak_rss_anon'] / GIB:.2f} GiB |"
        )
    fit = r["fit"]
    last = list(r["compress"].values())[-1]
    startup = last["secs"] - last.get("own_secs", last["secs"])
    size = {k: v / GIB for k, v in r["input_bytes"].items()}
    return (
        "## Scale: corpora larger than memory\n\n"
        f"`{r['command']}` on {r['machine']}, {r['date']}. Synthetic clustered unit vectors, "
        f"{r['rows']:,} x {r['dim']} ({r['data_bytes'] / GIB:.1f} GiB as float32), in 1M-row files, stored twice: "
        f"Parquet ({size['parquet']:.1f} GiB) and Arrow IPC ({size['arrow']:.1f} GiB).\n\n"
        "| job | wall time | vectors/s (wall) | vectors/s (compress loop, % of matmul) | peak RSS (process tree) | of it anonymous |\n"
        "|---|---|---|---|---|---|\n"
        f"| fit (dims 128,64,48,32,16, {fit['max_steps']:,} steps of 256 rows per stage) on a {fit['sample_rows']:,}-row "
        f"streamed sample of the Parquet files, under `prlimit --as={fit['address_space_limit'] / GIB:.0f}G` | "
        f"{fit['secs']:.0f} s | - | - | {fit['peak_rss'] / GIB:.2f} GiB | {fit['peak_rss_anon'] / GIB:.2f} GiB |\n"
        + "\n".join(rows) + "\n\n"
        f"Yardstick, 1M x {r['dim']} in memory, measured after the compress runs: a bare numpy `x @ w` to 64 d "
        f"{c['matmul']:,.0f} vectors/s; `head.transform(x, 64)` {c['transform']:,.0f} vectors/s "
        f"({100 * c['transform'] / c['matmul']:.0f}%); `transform` over the memory-mapped Arrow batches of the whole "
        f"corpus, input cached, nothing written: {r['mapped_transform_vectors_per_s']:,.0f} vectors/s "
        f"({100 * r['mapped_transform_vectors_per_s'] / c['matmul']:.0f}%). Writing 2 GiB to this disk with fsync: "
        f"{r['disk_write_bytes_per_s'] / 1e9:.2f} GB/s; the 64-d output of {r['rows']:,} rows is "
        f"{r['rows'] * 64 * 4 / 1e9:.1f} GB. {write_text(r)}\n"
        "\"Compress loop\" is the rate `compress` prints: rows over the seconds from opening the input to closing the\n"
        f"output, without Python start-up and head loading ({startup:.1f} s in the last run), which the wall\n"
        "column includes. Parquet input is bound by decoding its list column; Arrow IPC is memory-mapped, so from\n"
        "the page cache compress is bound by the matmul and the output write, and from disk by the disk's read\n"
        f"rate ({disk_text(r)}).\n"
        "RSS counts the mapped input's page-cache pages, which the kernel can drop at will;\n"
        "the anonymous column is what the process allocated. The Ray row sums RSS over the driver, raylet,\n"
        "object store and workers; object-store pages mapped by several processes count once per process, so it\n"
        "overstates what Ray really holds.\n"
    )


if __name__ == "__main__":
    main()

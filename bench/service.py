"""Service overhead: HTTP search and /compress against the same work done in-process.

For each corpus size (synthetic: i.i.d. Gaussian 384-d vectors, L2-normalised; a head fitted
for one short epoch on 4,096 of them: quality is not measured here, only speed), the store is
built in-process, then served by ``smec-compress serve`` in a child process on 127.0.0.1, and:

* search at dim 64, one query per request, k=10, over one keep-alive connection (JSON body),
  against ``head.transform`` + ``IndexIDMap2(IndexFlatIP)`` search of the same vectors in-process;
* ``/compress`` at batch 1,024 (``application/x-npy`` in and out, and JSON for reference) against
  ``head.transform`` in-process.

Client and server share this machine's cores (and whatever else runs on it), so HTTP numbers
include the client's cost. Writes ``bench/results/service.md`` and ``.json``.

    python bench/service.py [--sizes 100000,1000000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.store import Store  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402

D, DIM, K, BATCH = 384, 64, 10, 1024


def unit_rows(rng, n):
    x = rng.standard_normal((n, D), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(lat):
    a = np.array(lat) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def post(conn, path, body, ctype, accept="application/json"):
    conn.request("POST", path, body=body, headers={"Content-Type": ctype, "Accept": accept})
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:300])
    return data


def bench_size(n, head, head_dir, n_queries, work):
    rng = np.random.default_rng(n)
    t = time.perf_counter()
    x = unit_rows(rng, n)
    data_dir = work / f"data-{n}"
    store = Store.open(data_dir, head, dims=(DIM,), fsync=False, snapshot_every=10**9)
    ids = [str(i) for i in range(n)]
    for s in range(0, n, 100_000):
        store.upsert(ids[s : s + 100_000], x[s : s + 100_000])
    store.close()
    build_s = time.perf_counter() - t

    z = head.transform(x, DIM)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    index.add_with_ids(z, np.arange(n, dtype=np.int64))
    del z
    queries = unit_rows(np.random.default_rng(7), n_queries)

    # in-process: the same head matmul + FAISS search, one query at a time
    lat = []
    t0 = time.perf_counter()
    for q in queries:
        s = time.perf_counter()
        index.search(head.transform(q[None], DIM), K)
        lat.append(time.perf_counter() - s)
    inproc = {"qps": n_queries / (time.perf_counter() - t0), **percentiles(lat)}
    reps = 50
    batch = unit_rows(np.random.default_rng(8), BATCH)
    t0 = time.perf_counter()
    for _ in range(reps):
        head.transform(batch, DIM)
    inproc_compress = reps * BATCH / (time.perf_counter() - t0)
    del index

    port = free_port()
    env = {**os.environ, "SMEC_DIMS": f"[{DIM}]", "SMEC_LOG_LEVEL": "warning", "SMEC_MAX_BATCH": "4096", "SMEC_FAISS_THREADS": "1"}
    cmd = [sys.executable, "-m", "smec_compress", "serve", "--head", str(head_dir), "--data-dir", str(data_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        t = time.perf_counter()
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.perf_counter() - t < 600, "server did not become ready"
            time.sleep(0.25)
        start_s = time.perf_counter() - t
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        bodies = [json.dumps({"vector": q.tolist(), "k": K}).encode() for q in queries]
        for b in bodies[:20]:  # warm-up
            post(conn, f"/search?dim={DIM}", b, "application/json")
        lat = []
        t0 = time.perf_counter()
        for b in bodies:
            s = time.perf_counter()
            post(conn, f"/search?dim={DIM}", b, "application/json")
            lat.append(time.perf_counter() - s)
        http_search = {"qps": n_queries / (time.perf_counter() - t0), **percentiles(lat)}

        body = npy_bytes(batch)
        post(conn, f"/compress?dim={DIM}", body, "application/x-npy", "application/x-npy")
        t0 = time.perf_counter()
        for _ in range(reps):
            out = post(conn, f"/compress?dim={DIM}", body, "application/x-npy", "application/x-npy")
        http_npy = reps * BATCH / (time.perf_counter() - t0)
        assert np.load(io.BytesIO(out)).shape == (BATCH, DIM)
        jbody = json.dumps({"vectors": batch.tolist()}).encode()
        jreps = 10
        t0 = time.perf_counter()
        for _ in range(jreps):
            post(conn, f"/compress?dim={DIM}", jbody, "application/json")
        http_json = jreps * BATCH / (time.perf_counter() - t0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    return {
        "documents": n,
        "store_build_s": build_s,
        "server_ready_s": start_s,
        "search_in_process": inproc,
        "search_http": http_search,
        "search_ratio": http_search["qps"] / inproc["qps"],
        "compress_in_process_vps": inproc_compress,
        "compress_http_npy_vps": http_npy,
        "compress_http_json_vps": http_json,
        "compress_ratio_npy": http_npy / inproc_compress,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=2000)
    args = ap.parse_args()
    t_all = time.perf_counter()
    faiss.omp_set_num_threads(1)  # the server's default (SMEC_FAISS_THREADS=1): same FAISS work on both sides
    fit_x = unit_rows(np.random.default_rng(0), 4096)
    head = SMEC(dims=(128, 64), seed=0, epochs_per_stage=1).fit(fit_x)
    rows = []
    with tempfile.TemporaryDirectory(prefix="smec-bench-") as tmp:
        work = Path(tmp)
        head_dir = head.save(work / "head")
        for n in [int(s) for s in args.sizes.split(",")]:
            q = args.queries if n <= 200_000 else max(200, args.queries // 5)
            rows.append(bench_size(n, head, head_dir, q, work))
            print(json.dumps(rows[-1]), flush=True)
    info = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)", "faiss_threads": faiss.omp_get_max_threads(),
            "python": platform.python_version(), "total_s": time.perf_counter() - t_all, "data": "synthetic Gaussian 384-d, L2-normalised"}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "service.json").write_text(json.dumps({"info": info, "results": rows}, indent=2) + "\n")
    lines = [
        "## Service overhead (bench/service.py)",
        "",
        f"{info['data']}; head 384 -> 64 (Flat inner-product index); {info['machine']}; client and server on the same machine.",
        "Search: one query per request, k=10, JSON, one keep-alive connection. Compress: batch 1,024, `.npy` in and out.",
        "",
        "| docs | in-process QPS | HTTP QPS | HTTP/in-proc | in-proc p50 / p99 ms | HTTP p50 / p99 ms | compress in-proc vec/s | HTTP npy vec/s | HTTP/in-proc | HTTP JSON vec/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        a, h = r["search_in_process"], r["search_http"]
        lines.append(
            f"| {r['documents']:,} | {a['qps']:.0f} | {h['qps']:.0f} | {r['search_ratio']:.0%} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} "
            f"| {h['p50_ms']:.2f} / {h['p99_ms']:.2f} | {r['compress_in_process_vps']:,.0f} | {r['compress_http_npy_vps']:,.0f} "
            f"| {r['compress_ratio_npy']:.0%} | {r['compress_http_json_vps']:,.0f} |"
        )
    lines += ["", f"Whole run: {info['total_s']:.0f} s. Targets: search >= 70% of in-process QPS, compress >= 50%."]
    (out / "service.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

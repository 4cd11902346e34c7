"""Service overhead and two-stage search: HTTP against the same ``Store.search`` in-process.

Overhead, for each corpus size (1,000 documents, where a search takes microseconds, so the
difference of the p50 latencies is what a request costs the server and the network; 100k and 1M,
the sizes the 70% target is set at; synthetic: i.i.d. Gaussian 384-d vectors, L2-normalised; a head
fitted for one short epoch on 4,096 of them: speed only, not quality). The store is built
in-process, searched in-process through ``Store.search`` (dim 64, k=10, one query per call), closed,
then served by ``smec-compress serve`` in a child process on 127.0.0.1 and searched with the same
queries, one per request, over one keep-alive connection:

* the lean client: one socket, each JSON request encoded before the clock starts, responses read by
  Content-Length (what the server adds, with little of the client's own cost);
* ``http.client`` (the standard library's client), for reference;
* rescoring on: dim 64 with its top 100 rescored by the full vectors (``?rescore=100``), and the
  server's anonymous memory (``RssAnon``) afterwards against the full vectors' N x D x 4 bytes: the
  full vectors are memory-mapped files, so RAM holds the indexes only;
* in-process again with the process asleep 0.2 ms before each call (not timed): a server idles
  between requests, and on this machine FAISS' scan then runs slower than back to back (cold
  caches or a core waking from idle: not pinned down), so this row separates that from what the
  HTTP code adds;
* ``/compress`` at batch 1,024 (``.npy`` in and out, and JSON) against ``head.transform``.

Two-stage search on SciFact (all-MiniLM-L6-v2 from the embedding cache; a default SMEC head fitted
on the corpus, cached): nDCG@10, in-process QPS, RAM and disk bytes of dim 64 alone, dim 64 with
its top 100 rescored, and a full-dim Flat index.

Client and server share this machine's cores. Writes ``bench/results/service.md`` and ``.json``.

    python bench/service.py [--sizes 1000,100000,1000000] [--queries 2000] [--no-scifact]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_defaults import current, stamped, tag  # noqa: E402

from service.store import Store  # noqa: E402
from smec_compress.evaluation.cache import default_cache_dir  # noqa: E402
from smec_compress.evaluation.evalset import load_evalset  # noqa: E402
from smec_compress.evaluation.retrieval import score_run, select_queries, to_run  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402

D, DIM, K, BATCH, RESCORE = 384, 64, 10, 1024, 100
RESULTS = ROOT / "bench" / "results"


def unit_rows(rng, n, d=D):
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ROUNDS = 5  # in-process and HTTP measured in turns, so drift on a shared machine hits both alike
IDLE_WAY, IDLE_S = "in-process, idle", 0.0002  # the in-process calls with the process asleep this long before each


def latencies(calls, idle: float = 0.0) -> list[float]:
    """Seconds of each call, run in turn; with ``idle``, the process sleeps that long before each
    call (not timed), as a server idles between requests."""
    out = []
    for call in calls:
        if idle:
            time.sleep(idle)
        s = time.perf_counter()
        call()
        out.append(time.perf_counter() - s)
    return out


def summary(rounds: list[list[float]]) -> dict:
    """QPS (every round's calls over their total time) and p50 / p99 latency in ms."""
    a = np.concatenate(rounds) * 1e3
    return {"qps": len(a) / (a.sum() / 1e3), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def ratio(rounds: dict, way: str, baseline: str) -> float:
    """Median over rounds of QPS(way) / QPS(baseline) (the same number of calls in each round)."""
    return float(np.median([sum(b) / sum(w) for w, b in zip(rounds[way], rounds[baseline])]))


def timed(calls) -> dict:
    """QPS and p50 / p99 latency (ms) of running each zero-argument call in turn."""
    return summary([latencies(calls)])


class LeanClient:
    """Keep-alive HTTP/1.1 over one socket: pre-encoded requests, Content-Length responses. Like
    any keep-alive client it reconnects (once, resending) when the server has closed the idle
    connection: uvicorn does after 5 s, and at 1M documents the other ways' turns take longer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def encode(self, path: str, body: bytes, ctype: str = "application/json") -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError(f"the server on port {self.port} closed the connection")
        return chunk

    def send(self, raw: bytes) -> bytes:
        try:
            self.sock.sendall(raw)
            self.buf += self._recv()
        except (ConnectionError, BrokenPipeError):  # closed while idle: nothing of this response came
            self.sock.close()
            self._connect()
            self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0].split(b" ")[1] == b"200", head
        length = next(int(v.split(b":")[1]) for v in lines[1:] if v.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return rest[:length]


def post(conn, path, body, ctype, accept="application/json"):
    headers = {"Content-Type": ctype, "Accept": accept}
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
    except (http.client.RemoteDisconnected, ConnectionError):  # the server closed the idle connection
        conn.close()  # the next request opens a new one
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:300])
    return data


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def memory_of(pid: int) -> dict:
    """Resident anonymous and file-backed memory of a process, bytes (/proc/PID/status)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


class Server:
    """``smec-compress serve`` on a free port in a child process, stopped with SIGTERM."""

    def __init__(self, head_dir: Path, data_dir: Path, env: dict) -> None:
        self.port = free_port()
        env = {**os.environ, "SMEC_LOG_LEVEL": "warning", "SMEC_FAISS_THREADS": "1", **env}
        cmd = [sys.executable, "-m", "smec_compress", "serve", "--head", str(head_dir), "--data-dir", str(data_dir),
               "--port", str(self.port)]
        t = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        while not self._ready():
            assert self.proc.poll() is None and time.perf_counter() - t < 900, "server did not become ready"
            time.sleep(0.25)
        self.ready_s = time.perf_counter() - t

    def _ready(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/readyz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(300)


def searched(port: int) -> tuple[float, float]:
    """(seconds, searches) the server's ``smec_search_duration_seconds`` holds for dim ``DIM`` so
    far: the part of its /search requests spent in ``Store.search``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("smec_search_duration_seconds_"))
    label = f'{{dim="{DIM}"}}'
    return tuple(float(values.get(f"smec_search_duration_seconds_{part}{label}", 0.0)) for part in ("sum", "count"))


def json_bodies(queries: np.ndarray) -> list[bytes]:
    return [json.dumps({"vector": q.tolist(), "k": K}).encode() for q in queries]


def overhead(n: int, head, head_dir: Path, n_queries: int, work: Path) -> dict:
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
    del x
    queries = unit_rows(np.random.default_rng(7), n_queries)
    batch = unit_rows(np.random.default_rng(8), BATCH)
    for copy in ("inproc", "pool"):  # one data dir per process: a store is opened by one process at a time
        shutil.copytree(data_dir, work / f"{copy}-{n}")

    store = Store.open(work / f"inproc-{n}", head, dims=(DIM,), fsync=False, snapshot_every=10**9, search_threads=1)
    server = Server(head_dir, data_dir, {"SMEC_DIMS": f"[{DIM}]", "SMEC_MAX_BATCH": "4096"})
    pool = Server(head_dir, work / f"pool-{n}", {"SMEC_DIMS": f"[{DIM}]", "SMEC_INLINE_SEARCH_SCORES": "0"})
    try:
        lean, lean_pool = LeanClient(server.port), LeanClient(pool.port)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        bodies = json_bodies(queries)
        plain = [lean.encode(f"/search?dim={DIM}", b) for b in bodies]
        rescored = [lean.encode(f"/search?dim={DIM}&rescore={RESCORE}", b) for b in bodies]
        ways = {
            "in-process": [lambda q=q: store.search(q[None], DIM, K) for q in queries],
            IDLE_WAY: [lambda q=q: store.search(q[None], DIM, K) for q in queries],
            "HTTP": [lambda r=r: lean.send(r) for r in plain],
            "HTTP, pool": [lambda r=r: lean_pool.send(r) for r in plain],
            "http.client": [lambda b=b: post(conn, f"/search?dim={DIM}", b, "application/json") for b in bodies],
            "rescore in-process": [lambda q=q: store.search(q[None], DIM, K, rescore=RESCORE) for q in queries],
            "rescore HTTP": [lambda r=r: lean.send(r) for r in rescored],
        }
        for calls in ways.values():  # warm-up
            latencies(calls[:20])
        per = len(queries) // ROUNDS
        rounds = {name: [] for name in ways}
        in_server = {"HTTP": [0.0, 0.0], "rescore HTTP": [0.0, 0.0]}  # `server`'s metrics, scraped around their turns
        for r in range(ROUNDS):
            for name, calls in ways.items():
                before = searched(server.port) if name in in_server else None
                rounds[name].append(latencies(calls[r * per : (r + 1) * per], IDLE_S if name == IDLE_WAY else 0.0))
                if before is not None:
                    in_server[name] = [t + a - b for t, a, b in zip(in_server[name], searched(server.port), before)]
        memory = memory_of(server.proc.pid)

        reps = 50
        t0 = time.perf_counter()
        for _ in range(reps):
            head.transform(batch, DIM)
        inproc_compress = reps * BATCH / (time.perf_counter() - t0)
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
        server.stop()
        pool.stop()
        store.close()
    return {
        "documents": n, "store_build_s": build_s, "server_ready_s": server.ready_s, "rounds": ROUNDS,
        "search": {name: summary(r) for name, r in rounds.items()},
        "server_search_ms": {name: 1e3 * seconds / count for name, (seconds, count) in in_server.items() if count},
        "search_ratio": ratio(rounds, "HTTP", "in-process"), "search_ratio_pool": ratio(rounds, "HTTP, pool", "in-process"),
        "search_ratio_stdlib": ratio(rounds, "http.client", "in-process"),
        "search_ratio_idle": ratio(rounds, "HTTP", IDLE_WAY),
        "rescore_ratio": ratio(rounds, "rescore HTTP", "rescore in-process"),
        "server_memory": memory, "full_vectors_bytes": n * D * 4,
        "compress_in_process_vps": inproc_compress, "compress_http_npy_vps": http_npy,
        "compress_http_json_vps": http_json, "compress_ratio_npy": http_npy / inproc_compress,
    }


def scifact_head(corpus: np.ndarray, cache: Path) -> SMEC:
    """A default SMEC head on the SciFact corpus (seed 0), fitted once and cached."""
    path = cache / f"bench-service-{tag()}" / "scifact-head"  # a head of other defaults is not reused
    if path.exists():
        return SMEC.load(path)
    head = SMEC(seed=0).fit(corpus)
    head.save(path)
    return head


def two_stage(n_queries_cap: int, work: Path) -> dict:
    """dim 64 alone, dim 64 + rescore 100, and full-dim Flat on SciFact: quality, speed, bytes."""
    cache = default_cache_dir()
    data = load_evalset(ROOT.parent / "shared" / "data" / "scifact", qrels_path=None, split="test", model=None, cache_dir=cache)
    corpus, queries = data.corpus, data.queries
    head = scifact_head(corpus.vectors, cache)
    keep = select_queries(list(queries.ids), data.qrels).query_ids
    pos = {q: i for i, q in enumerate(queries.ids)}
    q = queries.vectors[[pos[i] for i in keep]]
    store = Store.open(work / "scifact", head, dims=(DIM,), fsync=False, snapshot_every=10**9, search_threads=1)
    store.upsert(list(corpus.ids), corpus.vectors)
    store.snapshot()
    flat = faiss.IndexFlatIP(corpus.vectors.shape[1])
    flat.add(np.ascontiguousarray(corpus.vectors, dtype=np.float32))
    doc_ids = list(corpus.ids)
    storage = store.storage()
    rows = {}
    for name, rescore in (("dim 64", 0), (f"dim 64 + rescore {RESCORE}", RESCORE)):
        hits = store.search(q, DIM, 100, rescore=rescore)  # the top 100 to score, rescored when asked
        run = {qid: dict(row) for qid, row in zip(keep, hits)}
        speed = timed([lambda v=v: store.search(v[None], DIM, K, rescore=rescore) for v in q[:n_queries_cap]])
        rows[name] = {"ndcg10": score_run(run, data.qrels)["ndcg@10"], "qps": speed["qps"], "p50_ms": speed["p50_ms"],
                      "ram_bytes": storage["ram_bytes"], "disk_bytes": storage["disk_bytes"]}
    scores, idx = flat.search(q, 100)
    speed = timed([lambda v=v: flat.search(v[None], K) for v in q[:n_queries_cap]])
    rows["full-dim Flat (384 d)"] = {"ndcg10": score_run(to_run(keep, doc_ids, scores, idx), data.qrels)["ndcg@10"],
                                     "qps": speed["qps"], "p50_ms": speed["p50_ms"],
                                     "ram_bytes": len(doc_ids) * corpus.vectors.shape[1] * 4 + 16 * len(doc_ids),
                                     "disk_bytes": len(doc_ids) * corpus.vectors.shape[1] * 4}
    store.close()
    return {"documents": len(doc_ids), "queries": len(keep), "rows": rows}


def render(info: dict, rows: list[dict], scifact: dict | None) -> str:
    lines = [
        "## Service overhead (bench/service.py)", "",
        f"`{info['command']}` ({info['date']}; {info['machine']}; Python {info['python']}; uvicorn with {info['uvicorn']}). "
        f"{info['data']}; head 384 -> 64, Flat inner-product index, FAISS threads 1 on both sides; client and server share the cores. "
        "In-process: `Store.search` on a copy of the same store, one query per call. Each way is measured in "
        f"{ROUNDS} turns, interleaved with the others (drift on a shared machine hits all alike); ratios are the median "
        "over turns of QPS over in-process QPS. HTTP: one query per request (JSON), k=10, one "
        "keep-alive connection; the lean client sends pre-encoded requests (what the server adds), `http.client` is the "
        "standard library's client; \"every search in the pool\": the server with `SMEC_INLINE_SEARCH_SCORES=0` (a "
        "thread-pool hop per search, as before); \"in-proc after 0.2 ms idle\": the in-process calls with the process "
        "asleep 0.2 ms before each (untimed), as a server idles between requests: FAISS' scan runs slower then than back "
        "to back, a cost any server pays that its HTTP code does not add. \"Store.search in the server\": the mean of "
        "its `smec_search_duration_seconds` over the HTTP turns (the same call, timed inside the server), against the "
        "mean in-process call: what is left of an HTTP request's time is HTTP, parsing and JSON. Rescore: `?rescore=100`, the top 100 of dim 64 rescored by the memory-mapped full vectors.",
        "",
        "| docs | in-process QPS (p50 / p99 ms) | HTTP QPS (p50 / p99 ms) | HTTP / in-proc | HTTP adds (p50 ms) | Store.search in the server / in-proc (mean ms) | in-proc after 0.2 ms idle (HTTP / it) | every search in the pool | http.client QPS | rescore in-proc QPS | rescore HTTP QPS | server RssAnon | full vectors N x D x 4 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        w = r["search"]
        a, h = w["in-process"], w["HTTP"]
        i = w.get(IDLE_WAY)  # results from before this row existed have none
        idle = f"{i['qps']:.0f} ({r['search_ratio_idle']:.0%})" if i else "-"
        inside = r.get("server_search_ms", {}).get("HTTP")  # results from before this column existed have none
        inside = f"{inside:.2f} / {1e3 / a['qps']:.2f}" if inside else "-"
        lines.append(
            f"| {r['documents']:,} | {a['qps']:.0f} ({a['p50_ms']:.2f} / {a['p99_ms']:.2f}) | {h['qps']:.0f} ({h['p50_ms']:.2f} / "
            f"{h['p99_ms']:.2f}) | {r['search_ratio']:.0%} | {h['p50_ms'] - a['p50_ms']:.2f} | {inside} | {idle} | {w['HTTP, pool']['qps']:.0f} ({r['search_ratio_pool']:.0%}) | "
            f"{w['http.client']['qps']:.0f} ({r['search_ratio_stdlib']:.0%}) | {w['rescore in-process']['qps']:.0f} | "
            f"{w['rescore HTTP']['qps']:.0f} ({r['rescore_ratio']:.0%}) | "
            f"{r['server_memory']['RssAnon'] / 2**20:,.0f} MiB | {r['full_vectors_bytes'] / 2**20:,.0f} MiB |")
    lines += ["", "| docs | compress in-proc vec/s | HTTP npy vec/s | HTTP / in-proc | HTTP JSON vec/s | store build s | server ready s |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['documents']:,} | {r['compress_in_process_vps']:,.0f} | {r['compress_http_npy_vps']:,.0f} | "
                     f"{r['compress_ratio_npy']:.0%} | {r['compress_http_json_vps']:,.0f} | {r['store_build_s']:.0f} | "
                     f"{r['server_ready_s']:.1f} |")
    if scifact:
        lines += ["", f"Two-stage search on SciFact ({scifact['documents']:,} documents, {scifact['queries']} test queries, "
                  "all-MiniLM-L6-v2, a default SMEC head fitted on the corpus, seed 0), in-process, one query per call, k=10. "
                  "RAM: what the process holds for search (the store's indexes; the Flat index's vectors); disk: the data "
                  "directory (the full vectors' files, index snapshots, log).", "",
                  "| search | nDCG@10 | QPS | p50 ms | RAM bytes | disk bytes |", "|---|---:|---:|---:|---:|---:|"]
        for name, v in scifact["rows"].items():
            lines.append(f"| {name} | {v['ndcg10']:.4f} | {v['qps']:.0f} | {v['p50_ms']:.2f} | {v['ram_bytes']:,} | {v['disk_bytes']:,} |")
    lines += ["", f"Whole run: {info['total_s']:.0f} s. Targets: search over HTTP >= 70% of in-process QPS; with rescoring "
              "on, the server's anonymous memory below the full vectors' size."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--no-scifact", action="store_true", help="skip the SciFact two-stage rows")
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
            rows.append(overhead(n, head, head_dir, q, work))
            print(json.dumps(rows[-1]), flush=True)
        scifact = None if args.no_scifact else two_stage(args.queries, work)
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
        loops = "uvloop + httptools"
    except ImportError:
        loops = "asyncio + h11 (uvicorn[standard] not installed)"
    info = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)", "python": platform.python_version(),
            "uvicorn": loops, "total_s": time.perf_counter() - t_all, "data": "synthetic Gaussian 384-d, L2-normalised",
            "date": date.today().isoformat(), "command": "python bench/service.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps({"info": info, "results": rows, "scifact": scifact,
                                                      "fit_defaults": current()}, indent=2) + "\n")
    text = render(info, rows, scifact)
    (RESULTS / "service.md").write_text(stamped(text, current()))
    print(text)


if __name__ == "__main__":
    main()

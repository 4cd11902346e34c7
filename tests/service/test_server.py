"""Real servers on 127.0.0.1 in child processes: crash recovery after ``kill -9``, and both ways
of starting (``smec-compress serve`` and ``uvicorn service.app:app``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import free_port, unit

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # real servers in child processes


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_ready(proc: subprocess.Popen, base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{proc.stdout.read().decode()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server not ready after {timeout}s:\n{proc.stdout.read().decode()}")


def serve_cli(head_dir: Path, data_dir: Path, port: int) -> subprocess.Popen:
    return start([sys.executable, "-m", "smec_compress", "serve", "--head", str(head_dir), "--data-dir", str(data_dir),
                  "--host", "127.0.0.1", "--port", str(port)], env={"SMEC_SNAPSHOT_EVERY": "7"})


def searches(http: httpx.Client, queries: dict) -> dict:
    """Every served dim and byte budget's hits, and the largest dim's with rescoring."""
    info = http.get("/indexes").json()
    out = {f"dim={d}": http.post(f"/search?dim={d}", json=queries).json() for d in info["served_dims"]}
    out |= {f"budget={b}": http.post(f"/search?budget={b}", json=queries).json() for b in info["served_budgets"]}
    out["rescore"] = http.post(f"/search?dim={max(info['served_dims'])}&rescore=30", json=queries).json()
    return out


@pytest.mark.parametrize("heads", ["head_dir", "budget_head_dir"])
def test_acknowledged_writes_survive_kill_9(heads, request, tmp_path):
    """N documents in many small acknowledged writes (so some are in snapshots and some only in
    the log), a delete, SIGKILL, restart: all N are there and the same searches give the same hits,
    in every dim, every byte budget (a head fitted with budgets) and with rescoring."""
    head_dir = request.getfixturevalue(heads)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    x = unit(np.random.default_rng(0), 120)
    ids = [f"doc-{i}" for i in range(120)]
    proc = serve_cli(head_dir, tmp_path / "data", port)
    try:
        wait_ready(proc, base)
        with httpx.Client(base_url=base, timeout=30) as http:
            for start_row in range(0, 120, 10):
                r = http.post("/documents", json={"ids": ids[start_row : start_row + 10], "vectors": x[start_row : start_row + 10].tolist()})
                assert r.status_code == 200
            assert http.delete("/documents/doc-5").status_code == 200
            queries = {"vectors": (x[:20] + 0.05).tolist(), "k": 10}
            before = searches(http, queries)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert list((tmp_path / "data").glob("wal-*.log"))  # the tail lives only in the log

    proc = serve_cli(head_dir, tmp_path / "data", port)
    try:
        wait_ready(proc, base)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/indexes").json()["documents"] == 119
            for i in (0, 6, 63, 119):
                np.testing.assert_array_equal(np.float32(http.get(f"/documents/doc-{i}").json()["vector"]), x[i])  # exact float32 round trip
            assert http.get("/documents/doc-5").status_code == 404
            after = searches(http, queries)
    finally:
        proc.terminate()
        proc.wait(30)
    assert after == before
    assert proc.returncode == 0, "a SIGTERM'd server stops normally"
    assert "server stopped; every acknowledged write is in its data directory" in proc.stdout.read().decode()
    # SIGTERM is a graceful stop: the lifespan's final snapshot leaves an empty log behind
    assert [w.stat().st_size for w in (tmp_path / "data").glob("wal-*.log")] == [0]


def test_uvicorn_module_app_builds_itself_from_env(head_dir, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"SMEC_HEAD_DIR": str(head_dir), "SMEC_DATA_DIR": str(tmp_path / "data"), "SMEC_API_KEY": "k", "SMEC_DIMS": "[16]"}
    proc = start([sys.executable, "-m", "uvicorn", "service.app:app", "--host", "127.0.0.1", "--port", str(port)], env=env)
    try:
        wait_ready(proc, base)
        with httpx.Client(base_url=base, timeout=30) as http:
            doc = {"ids": ["a"], "vectors": [[0.5] * 48]}
            assert http.post("/documents", json=doc).status_code == 401
            assert http.post("/documents", json=doc, headers={"Authorization": "Bearer k"}).status_code == 200
            info = http.get("/indexes").json()
            assert info["served_dims"] == [16] and info["documents"] == 1
            assert http.post("/search", json={"vector": [0.5] * 48, "k": 1}).json()["results"][0][0]["id"] == "a"
    finally:
        proc.terminate()
        proc.wait(30)


def test_protected_mode_refuses_anonymous_writes_beyond_loopback(head_dir, tmp_path):
    """Bound to 0.0.0.0 without SMEC_API_KEY, writes get 403 naming the three ways out, reads still
    work; SMEC_ALLOW_ANONYMOUS_WRITES=true opts out, and a key lifts it."""
    x = unit(np.random.default_rng(3), 4)
    body = {"ids": [f"d{i}" for i in range(4)], "vectors": x.tolist()}
    for env, expect in (({}, 403), ({"SMEC_ALLOW_ANONYMOUS_WRITES": "true"}, 200), ({"SMEC_API_KEY": "s3cret"}, 401)):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([sys.executable, "-m", "smec_compress", "serve", "--head", str(head_dir), "--data-dir",
                      str(tmp_path / f"data-{port}"), "--host", "0.0.0.0", "--port", str(port)], env=env)
        try:
            wait_ready(proc, base)
            with httpx.Client(base_url=base, timeout=30) as http:
                r = http.post("/documents", json=body)
                assert r.status_code == expect, r.text
                if expect == 403:
                    detail = r.json()["detail"]
                    assert all(s in detail for s in ("SMEC_API_KEY", "127.0.0.1", "SMEC_ALLOW_ANONYMOUS_WRITES=true"))
                    assert http.post("/search", json={"vectors": x[:1].tolist(), "k": 1}).status_code == 200
                if expect == 401:
                    ok = http.post("/documents", json=body, headers={"Authorization": "Bearer s3cret"})
                    assert ok.status_code == 200
        finally:
            proc.terminate()
            out = proc.communicate(timeout=30)[0].decode()
        assert ("protected mode" in out) == (expect == 403)  # the warning at start, when it applies

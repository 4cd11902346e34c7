"""Shared fixtures: synthetic vectors for units, the shipped sample and ../shared SciFact for integration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample" / "scifact"
SAMPLE_EMBEDDINGS = SAMPLE / "embeddings" / "scifact-sample.parquet"
SHARED_SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``smec-compress`` as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "smec_compress", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n=300, d=24, clusters=8, seed=0) -> np.ndarray:
    """Unit vectors around a few Gaussian centres: neighbourhoods worth preserving."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d))
    x = centers[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

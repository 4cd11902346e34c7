"""Fixtures: a real SMEC head fitted in seconds on synthetic vectors, and app/clients over it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from smec_compress.codecs.budget import Candidate, Choice, fit_candidate
from smec_compress.codecs.distil import RankTraining
from smec_compress.model.budgets import BudgetCodec
from smec_compress.model.head import SMEC

INPUT_DIM = 48
DIMS = (32, 16)


def unit(rng: np.random.Generator, n: int, d: int = INPUT_DIM) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fit_head(seed: int, input_dim: int = INPUT_DIM, dims: tuple[int, ...] = DIMS) -> SMEC:
    """A real head, trained for one short epoch per stage: enough to be a distinct affine map."""
    x = unit(np.random.default_rng(100 + seed), 256, input_dim)
    return SMEC(dims=dims, seed=seed, epochs_per_stage=1, min_steps_per_stage=0, batch_size=64, memory_size=256, hard_negatives=16).fit(
        x, threads=1)


@pytest.fixture(scope="session")
def head() -> SMEC:
    return fit_head(0)


@pytest.fixture(scope="session")
def head_dir(head: SMEC, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return head.save(tmp_path_factory.mktemp("head") / "head")


@pytest.fixture(scope="session")
def other_head_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_head(1).save(tmp_path_factory.mktemp("head1") / "head")


BUDGET_CODECS = {
    16: Candidate("int8", 16, "smec"),  # behind the head
    8: Candidate("opq", INPUT_DIM, None, m=8),  # on the full vectors: PQ, whose FAISS search takes no id selector
    6: Candidate("qat-int4", 12, "smec"),  # trained in the loop
    2: Candidate("binary-rerank", 16, "smec"),  # sign bits: no FAISS index, so not served
}


@pytest.fixture(scope="session")
def budget_head_dir(tmp_path_factory) -> Path:
    """A head at dims 32 / 16 / 12 with a codec per budget: int8 behind the head, OPQ on the full
    vectors, int4 trained in the loop, and sign bits (which the store cannot serve)."""
    head = fit_head(0, dims=(32, 16, 12))
    x = unit(np.random.default_rng(7), 600)
    training = RankTraining(steps=5, lr=1e-3)
    head.codecs_ = {b: BudgetCodec(Choice(b, c, {}), fit_candidate(c, x, head, training=training)) for b, c in BUDGET_CODECS.items()}
    return head.save(tmp_path_factory.mktemp("bhead") / "head")



@pytest.fixture
def make_client(head_dir: Path, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)``: a started TestClient (lifespan run, store loaded) per call."""
    clients: list[TestClient] = []

    def make(**overrides) -> TestClient:
        values = {"head_dir": head_dir, "data_dir": tmp_path / "data", "background_load": False, **overrides}
        client = TestClient(create_app(Settings(**values)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""Byte budgets over HTTP: /search?budget=B searches the head's learned codec for B bytes (raw
queries in), skips deleted documents, survives a restart, and refuses budgets it does not serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from .conftest import INPUT_DIM, unit

def client_for(head_dir: Path, data_dir: Path, **overrides) -> TestClient:
    client = TestClient(create_app(Settings(head_dir=head_dir, data_dir=data_dir, background_load=False, **overrides)))
    client.__enter__()
    return client


def test_budget_search_is_the_heads_codec_search_and_skips_deleted(budget_head_dir, tmp_path):
    from smec_compress import SMEC

    head = SMEC.load(budget_head_dir)
    client = client_for(budget_head_dir, tmp_path / "data")
    x = unit(np.random.default_rng(1), 90)
    ids = [f"d{i}" for i in range(90)]
    for start in range(0, 90, 10):  # many small writes: several segments, merged as they go
        assert client.post("/documents", json={"ids": ids[start : start + 10], "vectors": x[start : start + 10].tolist()}).status_code == 200
    info = client.get("/indexes").json()
    assert info["served_budgets"] == [6, 8, 16]
    assert [(s["bytes_per_vector"], s["dim"]) for s in info["budgets"]] == [(6, 12), (8, INPUT_DIM), (16, 16)]
    q = x[:5] + 0.05
    for budget in (6, 8, 16):
        r = client.post(f"/search?budget={budget}", json={"vectors": q.tolist(), "k": 7}).json()
        assert r["budget"] == budget and r["dim"] is None
        scores, rows = head.search(head.encode(x, budget=budget), q, 7, budget=budget)
        assert [[h["id"] for h in row] for row in r["results"]] == [[ids[i] for i in row] for row in rows]
        np.testing.assert_allclose([[h["score"] for h in row] for row in r["results"]], scores, rtol=1e-4, atol=1e-5)
    first = client.post("/search?budget=8", json={"vector": q[0].tolist(), "k": 5}).json()["results"][0]
    gone = [h["id"] for h in first[:3]]
    assert all(client.delete(f"/documents/{doc}").status_code == 200 for doc in gone)
    after = client.post("/search?budget=8", json={"vector": q[0].tolist(), "k": 5}).json()["results"][0]
    assert len(after) == 5 and not set(gone) & {h["id"] for h in after}
    assert [h["id"] for h in after][:2] == [h["id"] for h in first[3:5]]
    rescored = client.post("/search?budget=8&rescore=20", json={"vector": q[0].tolist(), "k": 5}).json()["results"][0]
    np.testing.assert_allclose([h["score"] for h in rescored], [float(x[ids.index(h["id"])] @ q[0]) for h in rescored], rtol=1e-5)
    client.__exit__(None, None, None)
    again = client_for(budget_head_dir, tmp_path / "data")  # read back from the snapshot and log
    assert again.post("/search?budget=8", json={"vector": q[0].tolist(), "k": 5}).json()["results"][0] == after
    again.__exit__(None, None, None)


def test_budgets_not_served_are_a_422_that_lists_the_served_ones(budget_head_dir, tmp_path):
    client = client_for(budget_head_dir, tmp_path / "data")
    for query, message in (("budget=2", "served byte budgets: 6, 8, 16"), ("budget=16&dim=16", "not both")):
        r = client.post(f"/search?{query}", json={"vector": [0.1] * INPUT_DIM})
        assert r.status_code == 422 and message in r.json()["detail"]
    huge = client.post("/search?budget=8", json={"vector": [3e38] * INPUT_DIM})
    assert huge.status_code == 422 and "overflow float32" in huge.json()["detail"]
    client.__exit__(None, None, None)
    with pytest.raises(Exception, match="sign-bit codecs have none"):
        client_for(budget_head_dir, tmp_path / "d2", budgets=[2])


def test_budget_searches_are_timed_under_their_budget_not_the_default_dim(budget_head_dir, tmp_path):
    client = client_for(budget_head_dir, tmp_path / "data")
    x = unit(np.random.default_rng(2), 20)
    assert client.post("/documents", json={"ids": [f"d{i}" for i in range(20)], "vectors": x.tolist()}).status_code == 200
    for budget in (8, 8, 16, 99):
        client.post(f"/search?budget={budget}", json={"vector": x[0].tolist(), "k": 3})
    text = client.get("/metrics").text
    assert 'smec_search_duration_seconds_count{dim="budget-8"} 2.0' in text
    assert 'smec_request_duration_seconds_count{dim="budget-16",route="/search"} 1.0' in text
    assert 'smec_request_duration_seconds_count{dim="invalid",route="/search"} 1.0' in text  # 99 is not served

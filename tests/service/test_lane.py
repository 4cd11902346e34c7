"""service.lane: POST /search answered past FastAPI's router must answer exactly as the router
would (the same endpoint, handlers, limits and metrics), and leave every other request alone."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.lane import SearchLane
from service.settings import Settings

from .conftest import INPUT_DIM
from .test_app import NPY, add_docs, npy

GOOD = [0.1] * INPUT_DIM


def start(head_dir, data_dir, *, lane: bool, **settings) -> TestClient:
    app = create_app(Settings(head_dir=head_dir, data_dir=data_dir, background_load=False, **settings))
    if not lane:  # the same app with /search routed as any other route
        app.user_middleware = [m for m in app.user_middleware if m.cls is not SearchLane]
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    return client


def streamed(data: bytes):  # no Content-Length: the body limit applies while reading
    for i in range(0, len(data), 4096):
        yield data[i : i + 4096]


REQUESTS = [
    ("hits", "/search?dim=16&rescore=20", {"json": {"vector": GOOD, "k": 3}}, {}),
    ("npy body", "/search?k=2", {"content": npy(np.ones((2, INPUT_DIM), np.float32)), "headers": {"content-type": NPY}}, {}),
    ("unserved dim: SmecError", "/search?dim=7", {"json": {"vector": GOOD}}, {}),
    ("bad query parameter", "/search?k=zero", {"json": {"vector": GOOD}}, {}),
    ("bad body: validation", "/search", {"json": {"vector": "nope"}}, {}),
    ("broken JSON", "/search", {"content": b"{", "headers": {"content-type": "application/json"}}, {}),
    ("wrong content type", "/search", {"content": b"x", "headers": {"content-type": "text/plain"}}, {}),
    ("body over the limit", "/search", {"stream": npy(np.zeros((300, INPUT_DIM), np.float32)),
                                        "headers": {"content-type": NPY}}, {"max_body_bytes": 16_384}),
    ("no key for a protected read", "/search", {"json": {"vector": GOOD}}, {"api_key": "k", "auth_reads": True}),
]


@pytest.mark.parametrize(("case", "path", "request_kwargs", "settings"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_the_lane_answers_search_as_the_router_does(head_dir, tmp_path, case, path, request_kwargs, settings):
    answers = []
    for lane in (True, False):
        client = start(head_dir, tmp_path / f"data-{lane}", lane=lane, **settings)
        try:
            if "api_key" not in settings:
                add_docs(client, 8)
            kwargs = dict(request_kwargs)
            if "stream" in kwargs:
                kwargs["content"] = streamed(kwargs.pop("stream"))
            r = client.post(path, **kwargs)
            metrics = client.get("/metrics").text if "api_key" not in settings else ""
            answers.append((r.status_code, r.json(), dict(h for h in r.headers.items() if h[0] != "content-length"),
                            [line for line in metrics.splitlines() if line.startswith("http_requests_total{handler=\"/search\"")]))
        finally:
            client.__exit__(None, None, None)
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 if case in ("hits", "npy body") else answers[0][0] >= 400


def test_other_requests_pass_through(head_dir, tmp_path):
    client = start(head_dir, tmp_path / "data", lane=True)
    try:
        assert client.get("/search").status_code == 405  # the router's answer: /search takes POST
        assert client.post("/search/", json={"vector": GOOD}, follow_redirects=False).status_code == 307  # the router redirects
        assert client.get("/healthz").status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_an_unexpected_error_in_the_lane_is_a_500_and_is_counted(head_dir, tmp_path, monkeypatch):
    from service.store import Store

    client = start(head_dir, tmp_path / "data", lane=True)
    try:
        monkeypatch.setattr(Store, "search", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
        r = client.post("/search", json={"vector": GOOD})
        assert r.status_code == 500 and "boom" not in r.text
        text = client.get("/metrics").text
        assert 'http_requests_total{handler="/search",method="POST",status="500"} 1.0' in text
    finally:
        client.__exit__(None, None, None)

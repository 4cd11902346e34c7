"""The README's "Use with your vector store" recipes, run: a compressed Parquet file loads as is
into LanceDB and into Qdrant (local mode, no server), queries go through the exported encoder,
and both return the same top 3 as our exact search over the same compressed vectors."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from smec_compress import SMEC, read_embeddings
from smec_compress.engines.local import compress_file
from smec_compress.export.sentence_transformers import save_with_head

from ..conftest import SAMPLE_EMBEDDINGS

pytestmark = pytest.mark.slow  # loads the bundled model
QUERIES = ["vitamin D deficiency and bone density", "gene expression in cancer cells", "antibiotic resistance"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """The sample corpus compressed to 64 d, the encoder that emits 64-d queries, and our exact top 3."""
    from sentence_transformers import SentenceTransformer

    tmp = tmp_path_factory.mktemp("stores")
    corpus = read_embeddings(SAMPLE_EMBEDDINGS)
    head = SMEC(dims=(64,), epochs_per_stage=1, min_steps_per_stage=0).fit(
        corpus.vectors, embedder_fingerprint=corpus.meta.fingerprint, threads=1)
    compress_file(head, SAMPLE_EMBEDDINGS, tmp / "c64.parquet", dim=64)
    save_with_head(head, 64, tmp / "encoder")
    q = SentenceTransformer(str(tmp / "encoder"), device="cpu").encode(QUERIES, convert_to_numpy=True)
    z = head.transform(corpus.vectors, 64)
    top3 = [[corpus.ids[i] for i in np.argsort(-(z @ row), kind="stable")[:3]] for row in q]
    return tmp / "c64.parquet", q, top3


def test_lancedb_takes_the_parquet_as_is(compressed, tmp_path):
    import lancedb

    path, q, top3 = compressed
    table = lancedb.connect(tmp_path / "lance").create_table("docs", data=pq.read_table(path))
    for row, want in zip(q, top3):
        hits = table.search(row, vector_column_name="embedding").metric("dot").limit(3).to_list()
        assert [h["id"] for h in hits] == want


def test_qdrant_takes_the_compressed_vectors_as_points(compressed):
    from qdrant_client import QdrantClient
    from qdrant_client.models import Distance, PointStruct, VectorParams

    path, q, top3 = compressed
    table = pq.read_table(path)
    ids = table.column("id").to_pylist()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config=VectorParams(size=vectors.shape[1], distance=Distance.DOT))
    client.upsert("docs", points=[PointStruct(id=i, vector=v.tolist(), payload={"doc_id": d})
                                  for i, (d, v) in enumerate(zip(ids, vectors))])
    for row, want in zip(q, top3):
        hits = client.query_points("docs", query=row.tolist(), limit=3).points
        assert [h.payload["doc_id"] for h in hits] == want

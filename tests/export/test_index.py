"""index: the memory-budget cascade, and built indexes that search like brute force."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.errors import SmecError
from smec_compress.export.index import build_index, choose_factory, load_index, pq_bytes
from smec_compress.resources import parse_bytes
from smec_compress import EmbeddingMeta, write_embeddings

from ..conftest import run_cli, unit_rows


def test_parse_bytes():
    assert parse_bytes("4G") == 4 * 2**30 and parse_bytes("512m") == 512 * 2**20 and parse_bytes("100") == 100
    assert parse_bytes("1.5T") == int(1.5 * 2**40)
    with pytest.raises(SmecError, match="expected a size"):
        parse_bytes("lots")


def test_cascade_follows_size_and_budget():
    assert choose_factory(100_000, 64, parse_bytes("4G")) == "Flat"
    assert choose_factory(5_000_000, 64, parse_bytes("4G")) == "HNSW32,Flat"  # 1.2 GB raw + 1.3 GB links
    ivf = choose_factory(50_000_000, 64, parse_bytes("4G"))
    assert ivf.startswith("IVF") and ivf.endswith(",PQ32np")
    assert choose_factory(1_000_000_000, 64, parse_bytes("32G")).endswith(",PQ16np")
    assert pq_bytes(48, 100) == 24 and pq_bytes(64, 10) == 8


def test_flat_index_returns_exact_neighbours_and_ids(tmp_path, rng):
    x = unit_rows(rng, 2000, 16)
    meta = EmbeddingMeta(head_fingerprint="h1", fingerprint="e1")
    write_embeddings(tmp_path / "c.parquet", [f"d{i}" for i in range(2000)], x, meta, batch_rows=300)
    stats = build_index(tmp_path / "c.parquet", tmp_path / "idx", batch_rows=256)
    assert (stats.index_type, stats.count, stats.dim, stats.bytes_per_vector, stats.memory_bytes) == ("Flat", 2000, 16, 64, 2000 * 64)
    index, ids, loaded, provenance = load_index(tmp_path / "idx")
    _, got = index.search(x[:5], 3)
    expected = np.argsort(-(x[:5] @ x.T), axis=1)[:, :3]
    np.testing.assert_array_equal(got, expected)
    assert ids[got[0, 0]] == "d0" and loaded == stats
    assert (provenance.head_fingerprint, provenance.fingerprint) == ("h1", "e1")


def test_an_index_written_by_0_1_0_still_loads(tmp_path, rng):
    """0.1.0 wrote index.json as {factory, dim, count, metric, fingerprints}: the stats are rebuilt."""
    import json

    x = unit_rows(rng, 500, 8)
    write_embeddings(tmp_path / "c.parquet", [str(i) for i in range(500)], x, EmbeddingMeta(head_fingerprint="h"))
    build_index(tmp_path / "c.parquet", tmp_path / "idx")
    old = {"factory": "Flat", "dim": 8, "count": 500, "metric": "inner_product", "head_fingerprint": "h",
           "embedder_fingerprint": None}
    (tmp_path / "idx" / "index.json").write_text(json.dumps(old))
    _, _, stats, provenance = load_index(tmp_path / "idx")
    assert (stats.index_type, stats.count, stats.bytes_per_vector) == ("Flat", 500, 32) and provenance.head_fingerprint == "h"


def test_ivfpq_index_from_factory_has_m_byte_codes(tmp_path, rng):
    x = unit_rows(rng, 3000, 16)
    write_embeddings(tmp_path / "c.parquet", [str(i) for i in range(3000)], x)
    stats = build_index(tmp_path / "c.parquet", tmp_path / "idx", factory="IVF16,PQ8np")
    index, _, _, _ = load_index(tmp_path / "idx")
    assert stats.index_type == "IVF16,PQ8np" and index.ntotal == 3000 and stats.bytes_per_vector == 8
    import faiss

    assert faiss.extract_index_ivf(index).code_size == 8
    with pytest.raises(SmecError, match="not valid"):
        build_index(tmp_path / "c.parquet", tmp_path / "bad", factory="Nonsense99")
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_cli_index(tmp_path, rng):
    write_embeddings(tmp_path / "c.parquet", [str(i) for i in range(500)], unit_rows(rng, 500, 8))
    result = run_cli("index", tmp_path / "c.parquet", "--out", tmp_path / "idx", "--max-memory", "1G")
    assert result.returncode == 0, result.stderr
    assert "Flat" in result.stdout and (tmp_path / "idx" / "index.faiss").is_file()
    bad = run_cli("index", tmp_path / "c.parquet", "--out", tmp_path / "idx2", "--max-memory", "x")
    assert bad.returncode == 2 and "expected a size" in bad.stderr

"""Codecs store what they claim (bytes per vector) and search what they store."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.errors import SmecError
from smec_compress.evaluation.retrieval import search
from smec_compress.codecs import OPQ, PQ, Binary, BinaryRerank, Int8, RaBitQ, RaBitQUnrotated, make_codec
from smec_compress.codecs.rabitq import code_size

from ..conftest import unit_rows


@pytest.fixture
def data(rng):
    return unit_rows(rng, 1200, 32), unit_rows(rng, 50, 32)


def _top1_agreement(codec, docs, queries) -> float:
    codec.fit(docs)
    _, got = codec.search(codec.encode(docs), queries, 1)
    _, exact = search(docs, queries, 1)
    return float((got[:, 0] == exact[:, 0]).mean())


@pytest.mark.parametrize("make", [lambda: PQ(8), lambda: OPQ(8, niter=3)], ids=["pq", "opq"])
def test_pq_codes_are_m_bytes(make, data):
    docs, _ = data
    codec = make().fit(docs)
    codes = codec.encode(docs)
    assert codes.shape == (len(docs), 8) and codes.dtype == np.uint8 and codec.code_size_ == 8


def test_binary_codes_are_dim_over_8_bytes_and_hamming_ranks_the_copy_first(data):
    docs, _ = data
    codec = Binary().fit(docs)
    codes = codec.encode(docs)
    assert codes.shape == (len(docs), 4) and codec.code_size_ == 4
    scores, idx = codec.search(codes, docs[:20], 5)
    assert (scores[:, 0] == 0).all()  # Hamming distance 0 to itself
    assert np.array_equal(codes[idx[:, 0]], codes[:20])


def test_binary_bits_are_signs():
    x = np.array([[0.5, -0.1, 0.0, 2.0, -3.0, 1.0, -1.0, 0.2]], dtype=np.float32)
    assert Binary().fit(x).encode(x)[0, 0] == 0b10010101


def test_int8_is_one_byte_per_dim_and_nearly_exact(data):
    docs, queries = data
    codec = Int8().fit(docs)
    assert codec.encode(docs).shape == (len(docs), 32)
    assert _top1_agreement(Int8(), docs, queries) >= 0.9


def test_more_bytes_search_better(data):
    docs, queries = data
    assert _top1_agreement(PQ(16), docs, queries) > _top1_agreement(PQ(2), docs, queries)


def test_rerank_keeps_the_code_size_and_orders_better_than_hamming(data):
    docs, queries = data
    codec = BinaryRerank(candidates=50).fit(docs)
    assert codec.encode(docs).shape == (len(docs), 4)
    scores, _ = codec.search(codec.encode(docs), queries, 10)
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    assert _top1_agreement(BinaryRerank(candidates=50), docs, queries) > _top1_agreement(Binary(), docs, queries)


def test_rerank_scores_are_the_query_against_the_signs():
    docs = np.array([[1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0], [-1.0] * 8], dtype=np.float32)
    query = np.linspace(-1, 1, 8, dtype=np.float32)[None]
    codec = BinaryRerank().fit(docs)
    scores, idx = codec.search(codec.encode(docs), query, 2)
    assert np.allclose(scores[0], (np.sign(docs) @ query[0])[idx[0]])


@pytest.mark.parametrize("cls", [RaBitQ, RaBitQUnrotated])
def test_rabitq_counts_its_correction_factors_and_more_bits_search_better(cls, data):
    docs, queries = data
    one, four = cls(1).fit(docs), cls(4).fit(docs)
    assert one.encode(docs).shape == (len(docs), 32 // 8 + 8) and one.code_size_ == code_size(32, 1) == 12
    assert four.code_size_ == code_size(32, 4) == 4 * 32 // 8 + 20
    assert _top1_agreement(cls(4), docs, queries) > _top1_agreement(cls(1), docs, queries) > 0.05  # chance: 1/1200


def test_rabitq_rotation_follows_the_seed(data):
    docs, _ = data
    assert np.array_equal(RaBitQ(1, seed=3).fit(docs).encode(docs), RaBitQ(1, seed=3).fit(docs).encode(docs))
    assert not np.array_equal(RaBitQ(1, seed=3).fit(docs).encode(docs), RaBitQ(1, seed=4).fit(docs).encode(docs))


def test_bad_parameters_are_refused(data):
    docs, _ = data
    with pytest.raises(SmecError, match="must divide"):
        PQ(5).fit(docs)
    with pytest.raises(SmecError, match="needs m"):
        make_codec("opq")
    with pytest.raises(SmecError, match="unknown codec"):
        make_codec("lzma")
    with pytest.raises(SmecError, match="not fitted"):
        Int8().encode(docs)
    with pytest.raises(SmecError, match="bits=5 must be one of"):
        RaBitQ(5).fit(docs)
    with pytest.raises(SmecError, match="int8 takes no m"):
        make_codec("int8", m=4)
    with pytest.raises(SmecError, match="pq takes no bits"):
        make_codec("pq", m=4, bits=2)
    assert make_codec("rabitq", bits=2).bits == 2 and make_codec("rabitq").bits == 1


def test_csr_stores_k_latents_in_4k_bytes_and_searches_what_it_stores(data):
    from smec_compress.codecs import TopKSparse

    docs, queries = data
    codec = TopKSparse(4, epochs=5).fit(docs)
    codes = codec.encode(docs)
    assert codes.shape == (len(docs), 16) and codec.code_size_ == 16
    idx = codes[:, :8].copy().view("<u2").astype(int)
    vals = codes[:, 8:].copy().view(np.float16).astype(np.float32)
    dense = np.zeros((len(docs), codec.latents_), np.float32)
    np.put_along_axis(dense, idx, vals, 1)
    scores, ids = codec.search(codes, queries, 5)
    assert np.allclose(scores, np.take_along_axis(codec.latent(queries) @ dense.T, ids, 1), atol=1e-4)
    assert (np.diff(scores, axis=1) <= 0).all()
    latents = codec.latent(docs)
    assert (np.sort(latents, 1)[:, -4:] >= 0).all() and np.allclose(np.sort(vals, 1), np.sort(latents, 1)[:, -4:], atol=1e-2)
    back = TopKSparse(1).restore(codec.state(), 32)
    assert np.array_equal(back.encode(docs), codes)
    assert _top1_agreement(TopKSparse(8, epochs=5), docs, queries) > _top1_agreement(TopKSparse(1, epochs=5), docs, queries)


def test_csr_fit_depends_on_its_seed_only(data):
    """No draw from torch's global generator: the same seed gives the same codes whatever ran before."""
    import torch

    from smec_compress.codecs import TopKSparse

    docs, _ = data
    torch.manual_seed(1)
    a = TopKSparse(4, epochs=1).fit(docs).encode(docs)
    torch.manual_seed(2)
    b = TopKSparse(4, epochs=1).fit(docs).encode(docs)
    assert np.array_equal(a, b)

"""Codecs store what they claim (bytes per vector) and search what they store."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.errors import SmecError
from smec_compress.evaluation.retrieval import search
from smec_compress.codecs import OPQ, PQ, Binary, Int8, make_codec

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

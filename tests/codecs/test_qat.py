"""Quantisation in the loop: each in-loop codec starts as the blind stack, its ranges are tables
(not batch statistics), training moves the map and the quantiser's tables and lowers the ranking
loss, and what it serves survives a save and load."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from smec_compress.codecs import CODECS, make_codec
from smec_compress.codecs.base import f32
from smec_compress.codecs.distil import RankTraining
from smec_compress.codecs.qat import QATSign
from smec_compress.errors import SmecError
from smec_compress.model import losses
from smec_compress.normalize import l2_normalize

from ..conftest import unit_rows

DIM = 16
FAISS_BACKED = ("qat-int8", "qat-int4", "qat-opq")


@pytest.fixture
def docs(rng):
    centres = unit_rows(rng, 12, 48)
    x = centres[rng.integers(0, 12, 700)] + 0.3 * rng.standard_normal((700, 48)).astype(np.float32)
    return l2_normalize(x.astype(np.float32))


@pytest.fixture
def init(rng):
    """A head's map at DIM: some random affine map (the codec must not care where it came from)."""
    return (rng.standard_normal((48, DIM)) / 7).astype(np.float32), (0.05 * rng.standard_normal(DIM)).astype(np.float32)


def _codec(name, training, seed=0):
    return make_codec(name, m=8 if name == "qat-opq" else None, seed=seed, training=training)


def _mapped(x, init):
    return l2_normalize(x @ init[0] + init[1])


def _loss(codec, x):
    """The training loss over all rows as queries against all rows (self excluded), from what
    FAISS serves: the queries through the index's transforms, against the decoded codes."""
    inner = faiss.downcast_index(codec.index_.index)
    q = f32(x)
    for i in range(codec.index_.chain.size()):
        q = faiss.downcast_VectorTransform(codec.index_.chain.at(i)).apply(q)
    decoded = inner.sa_decode(inner.sa_encode(q))
    comp, full = torch.from_numpy(q @ decoded.T), torch.from_numpy(x @ x.T)
    return float(losses.rank_kl(full, comp, 0.05, ~torch.eye(len(x), dtype=torch.bool)))


@pytest.mark.parametrize("name,blind", [("qat-int8", "int8"), ("qat-int4", "int4"), ("qat-opq", "opq"),
                                        ("qat-binary", "binary-rerank")])
def test_without_steps_it_is_the_blind_stack(docs, init, name, blind):
    """Same tables, and the same codes but for the few components a last-bit difference between
    FAISS' matmul (the served map) and numpy's (the head's transform) puts across a boundary."""
    qat = _codec(name, RankTraining(steps=0)).fit(docs, init=init)
    plain = make_codec(blind, m=8 if blind == "opq" else None).fit(_mapped(docs, init))
    assert np.mean(qat.encode(docs) == plain.encode(_mapped(docs, init))) > 0.999
    assert qat.code_size_ == plain.code_size_ and qat.dim_ == DIM and qat.input_dim_ == 48
    _, a = qat.search(qat.encode(docs), docs[:30], 10)
    _, b = plain.search(plain.encode(_mapped(docs, init)), _mapped(docs[:30], init), 10)
    assert np.mean(a == b) > 0.98


@pytest.mark.parametrize("name", ["qat-int8", "qat-int4", "int8", "int4"])
def test_a_row_alone_encodes_as_inside_a_batch(docs, init, name):
    """The ranges are calibrated on the training rows and stored: never taken from the batch."""
    if name.startswith("qat"):
        codec, rows = _codec(name, RankTraining(steps=5, lr=1e-3, pool=300)).fit(docs, init=init), docs
    else:
        codec, rows = make_codec(name).fit(_mapped(docs, init)), _mapped(docs, init)
    batch = codec.encode(rows[:200])
    alone = np.concatenate([codec.encode(rows[i:i + 1]) for i in range(200)])
    assert np.array_equal(batch, alone)
    assert codec.code_size_ == (DIM if name.endswith("8") else DIM // 2)


@pytest.mark.parametrize("name", FAISS_BACKED)
def test_training_moves_the_map_and_the_tables_and_lowers_the_ranking_loss(docs, init, name):
    training = RankTraining(steps=80, lr=1e-3, pool=400)
    start = _codec(name, RankTraining(steps=0)).fit(docs, init=init)
    trained = _codec(name, training).fit(docs, init=init)

    def tables(codec):
        chain = [faiss.downcast_VectorTransform(codec.index_.chain.at(i)) for i in range(codec.index_.chain.size())]
        inner = faiss.downcast_index(codec.index_.index)
        table = inner.sq.trained if name != "qat-opq" else inner.pq.centroids
        return [faiss.vector_to_array(chain[0].A), faiss.vector_to_array(chain[0].b)] + \
               [faiss.vector_to_array(t.A) for t in chain[2:]] + [faiss.vector_to_array(table)]

    for before, after in zip(tables(start), tables(trained)):  # the map, bias, rotation, ranges or codebooks
        assert not np.allclose(before, after)
    assert _loss(trained, docs) < 0.95 * _loss(start, docs)


def test_sign_bits_training_moves_the_map(docs, init):
    start = _codec("qat-binary", RankTraining(steps=0)).fit(docs, init=init)
    trained = _codec("qat-binary", RankTraining(steps=40, lr=1e-3, pool=400)).fit(docs, init=init)
    assert not np.allclose(start.w_, trained.w_) and not np.allclose(start.b_, trained.b_)
    assert not np.array_equal(start.encode(docs), trained.encode(docs))


@pytest.mark.parametrize("name", [*FAISS_BACKED, "qat-binary"])
def test_state_restores_the_same_codes_and_search(docs, init, name):
    codec = _codec(name, RankTraining(steps=5, lr=1e-3, pool=300)).fit(docs, init=init)
    again = make_codec(name, m=8 if name == "qat-opq" else None).restore(codec.state(), 48)
    codes = codec.encode(docs)
    assert np.array_equal(codes, again.encode(docs)) and (again.input_dim_, again.dim_) == (48, DIM)
    s1, i1 = codec.search(codes, docs[:20], 5)
    s2, i2 = again.search(codes, docs[:20], 5)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2)


def test_query_anchors_are_the_queries_of_the_loss(docs, init, rng):
    queries = l2_normalize((docs[:100] + 0.4 * rng.standard_normal((100, 48))).astype(np.float32))
    training = RankTraining(steps=10, lr=1e-3, pool=300)
    a = _codec("qat-int8", training).fit(docs, init=init)
    b = _codec("qat-int8", training).fit(docs, init=init, queries=queries)
    assert not np.array_equal(a.encode(docs), b.encode(docs))


def test_an_in_loop_codec_needs_the_heads_map(docs):
    for name in (n for n in CODECS if n.startswith("qat")):
        with pytest.raises(SmecError, match="linear_map"):
            _codec(name, None).fit(docs)
    with pytest.raises(SmecError, match="takes no training"):
        make_codec("int8", training=RankTraining())
    assert isinstance(make_codec("qat-binary"), QATSign)


@pytest.mark.parametrize("name,blind", [("qat-int8", "int8"), ("qat-int4", "int4"), ("qat-opq", "opq")])
def test_started_from_the_fitted_blind_codec_it_trains_as_if_it_had_fitted_it_and_leaves_it_alone(docs, init,
                                                                                                    name, blind):
    training = RankTraining(steps=5, lr=1e-3, pool=300)
    plain = make_codec(blind, m=8 if blind == "opq" else None).fit(_mapped(docs, init))
    before = plain.state()
    started = _codec(name, training).fit(docs, init=init, start=plain)
    fitted = _codec(name, training).fit(docs, init=init)
    assert started.state() == fitted.state()
    assert plain.state() == before  # copied, never changed: the choice may still keep the blind codec
    wrong = {"int8": ("int4", None), "int4": ("int8", None), "opq": ("opq", 4)}[blind]  # another type, or m
    other = make_codec(wrong[0], m=wrong[1]).fit(_mapped(docs, init))
    with pytest.raises(SmecError, match="starts from a fitted"):
        _codec(name, training).fit(docs, init=init, start=other)

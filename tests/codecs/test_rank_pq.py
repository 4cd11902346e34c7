"""RankOPQ: starts as OPQ, training moves both tables toward the full-dim ranking, and the index
it leaves is a plain FAISS index that searches the same after a save and load."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from smec_compress.codecs import OPQ, RankOPQ, make_codec
from smec_compress.codecs.rank_pq import RankTraining, finetune
from smec_compress.errors import SmecError
from smec_compress.model import losses

from ..conftest import unit_rows


@pytest.fixture
def docs(rng):
    centres = unit_rows(rng, 12, 32)
    x = centres[rng.integers(0, 12, 800)] + 0.3 * rng.standard_normal((800, 32)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _tables(codec):
    opq = faiss.downcast_VectorTransform(codec.index_.chain.at(0))
    pq = faiss.downcast_index(codec.index_.index).pq
    return (faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in),
            faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub))


def _rank_kl(x, rotation, codebooks):
    """The training loss over all rows as queries against all rows (self excluded)."""
    from smec_compress.codecs.rank_pq import _assign, _decode

    x = torch.from_numpy(x)
    R, C = torch.from_numpy(rotation), torch.from_numpy(codebooks)
    comp = (x @ R.T) @ _decode(_assign(x @ R.T, C), C).T
    return float(losses.rank_kl(x @ x.T, comp, 0.05, ~torch.eye(len(x), dtype=torch.bool)))


def test_without_steps_it_is_opq(docs):
    plain = OPQ(8, niter=3).fit(docs)
    ranked = RankOPQ(8, niter=3, training=RankTraining(steps=0)).fit(docs)
    assert np.array_equal(plain.encode(docs), ranked.encode(docs)) and ranked.code_size_ == 8


def test_training_moves_both_tables_and_lowers_the_ranking_loss(docs):
    start = _tables(OPQ(8, niter=3).fit(docs))
    rotation, codebooks = finetune(docs, *start, RankTraining(steps=60, lr=1e-3, pool=400), seed=0)
    assert not np.allclose(rotation, start[0]) and not np.allclose(codebooks, start[1])  # gradients reach both
    assert _rank_kl(docs, rotation, codebooks) < 0.9 * _rank_kl(docs, *start)


def test_query_anchors_train_for_the_queries_ranking(docs, rng):
    """Anchored on queries away from the rows, the loss that falls is the queries' own."""
    queries = (docs[:200] + 0.4 * rng.standard_normal((200, 32))).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    start = _tables(OPQ(8, niter=3).fit(docs))
    rotation, codebooks = finetune(docs, *start, RankTraining(steps=60, lr=1e-3, pool=400), seed=0, queries=queries)
    assert _query_kl(queries, docs, rotation, codebooks) < 0.9 * _query_kl(queries, docs, *start)


def _query_kl(queries, docs, rotation, codebooks):
    from smec_compress.codecs.rank_pq import _assign, _decode

    q, x = torch.from_numpy(queries), torch.from_numpy(docs)
    R, C = torch.from_numpy(rotation), torch.from_numpy(codebooks)
    return float(losses.rank_kl(q @ x.T, (q @ R.T) @ _decode(_assign(x @ R.T, C), C).T, 0.05))


def test_the_trained_index_is_plain_faiss_and_searches_the_same_after_a_round_trip(docs):
    codec = RankOPQ(8, niter=3, training=RankTraining(steps=20, lr=1e-3, pool=400)).fit(docs)
    codes = codec.encode(docs)
    rotation, codebooks = _tables(codec)
    index = faiss.deserialize_index(faiss.serialize_index(codec.index_))
    assert np.array_equal(index.sa_encode(docs), codes)
    index.add(docs)
    got, want = index.search(docs[:30], 5), codec.search(codes, docs[:30], 5)
    assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], atol=1e-5)
    decoded = codebooks[np.arange(8)[None, :], codes].reshape(len(docs), -1)  # FAISS scores = query rotated . decoded
    assert np.allclose(want[0][:, 0], np.max((docs[:30] @ rotation.T) @ decoded.T, axis=1), atol=1e-4)


def test_bad_training_parameters_are_refused():
    with pytest.raises(SmecError, match="lr=0"):
        RankTraining(lr=0)
    with pytest.raises(SmecError, match="pool=1"):
        RankTraining(pool=1)
    assert make_codec("rank-opq", m=16).m == 16


def test_started_from_a_fitted_opq_it_trains_as_if_it_had_fitted_it(docs):
    training = RankTraining(steps=5, lr=1e-3, pool=400)
    opq = OPQ(8, niter=3).fit(docs)
    before = opq.state()
    assert RankOPQ(8, niter=3, training=training).fit(docs, start=opq).state() == \
        RankOPQ(8, niter=3, training=training).fit(docs).state()
    assert opq.state() == before
    with pytest.raises(SmecError, match="m=4"):
        RankOPQ(4, training=training).fit(docs, start=opq)


def test_each_sub_vector_is_assigned_its_nearest_centroid_and_decoded_to_it(rng):
    from smec_compress.codecs.rank_pq import _assign, _decode

    m, dsub = 4, 6
    y, codebooks = rng.standard_normal((300, m * dsub)).astype(np.float32), rng.standard_normal((m, 256, dsub)).astype(np.float32)
    codes = _assign(torch.from_numpy(y), torch.from_numpy(codebooks)).numpy()
    sub = y.reshape(300, m, 1, dsub)
    assert np.array_equal(codes, ((sub - codebooks[None]) ** 2).sum(-1).argmin(-1))
    decoded = _decode(torch.from_numpy(codes), torch.from_numpy(codebooks)).numpy()
    assert np.array_equal(decoded, codebooks[np.arange(m), codes].reshape(300, -1))

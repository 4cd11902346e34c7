"""OPQ on torch kernels: the same algorithm as FAISS' OPQMatrix, in the same served index."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from smec_compress.codecs import OPQ, PQ, make_codec
from smec_compress.codecs.opq_fit import lloyd, train_opq
from smec_compress.codecs.rank_pq import _assign, _decode
from smec_compress.errors import SmecError

from ..conftest import clustered


def _distortion(codec, X) -> float:
    """Mean squared error of the codes' reconstruction, in the input space."""
    back = codec.index_.sa_decode(codec.encode(X))
    return float(((back - X) ** 2).sum(1).mean())


@pytest.fixture
def skewed():
    """Clustered rows whose variance sits in the first dims: a PQ split needs a rotation."""
    x = clustered(n=1500, d=32, clusters=40, seed=3) * np.geomspace(4.0, 0.1, 32).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def test_rotation_is_orthogonal_and_codebooks_have_the_pq_shape(skewed):
    rotation, codebooks = train_opq(skewed, 8, niter=3)
    assert rotation.shape == (32, 32) and codebooks.shape == (8, 256, 4)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(32), atol=1e-4)


def test_the_rotation_lowers_distortion_as_faiss_opq_does(skewed):
    pq = _distortion(PQ(8).fit(skewed), skewed)
    ours = _distortion(OPQ(8, niter=10, trainer="torch").fit(skewed), skewed)
    theirs = _distortion(OPQ(8, niter=10).fit(skewed), skewed)
    assert ours < pq and theirs < pq  # the rotation spreads the variance over the sub-quantisers
    assert ours < 1.25 * theirs  # the same algorithm: not far from FAISS' own fit


def test_lloyd_never_raises_distortion_and_restarts_empty_centroids():
    import torch

    y = torch.from_numpy(np.repeat(clustered(n=100, d=8, seed=1), 3, axis=0))  # 100 distinct rows, 256 centroids
    start = y[:256].reshape(256, 2, 4).transpose(0, 1).contiguous()
    gen = torch.Generator().manual_seed(0)
    errors = []
    for _ in range(4):
        start = lloyd(y, start, 1, gen)
        errors.append(float(((_decode(_assign(y, start), start) - y) ** 2).sum()))
        assert torch.isfinite(start).all() and (start.abs().sum(-1) > 0).all()  # an empty centroid would be 0
    assert all(b <= a + 1e-5 for a, b in zip(errors, errors[1:]))


def test_same_seed_same_codes_and_the_index_is_plain_faiss(skewed, tmp_path):
    a = OPQ(8, niter=3, seed=5, trainer="torch").fit(skewed)
    b = OPQ(8, niter=3, seed=5, trainer="torch").fit(skewed)
    assert np.array_equal(a.encode(skewed), b.encode(skewed))
    faiss.write_index(a.index_, str(tmp_path / "opq.faiss"))  # what index / a server load
    loaded = faiss.read_index(str(tmp_path / "opq.faiss"))
    assert np.array_equal(loaded.sa_encode(skewed), a.encode(skewed)) and loaded.sa_code_size() == 8


def test_bad_trainer_and_too_few_rows_are_refused(skewed):
    with pytest.raises(SmecError, match="trainer 'sklearn'"):
        OPQ(8, trainer="sklearn")
    with pytest.raises(SmecError, match="needs at least 256 rows"):
        OPQ(8, trainer="torch").fit(skewed[:255])
    with pytest.raises(SmecError, match="int8 takes no OPQ trainer"):
        make_codec("int8", trainer="torch")
    assert make_codec("rank-opq", m=8, trainer="torch").trainer == "torch"

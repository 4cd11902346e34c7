"""Baseline invariants: full-dim reductions equal the full vectors; the adaptor learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smec_compress.evaluation.baselines import PCA, MatryoshkaAdaptor, RandomProjection, Truncation, _neighbours
from smec_compress.errors import SmecError

from ..conftest import unit_rows


def _correlated(rng, n=400, d=32, *, spectrum=(2.0, 0.1)):
    """Unit vectors with a decaying spectrum and a common offset, like real embeddings."""
    x = rng.standard_normal((n, d)) * np.linspace(*spectrum, d) + 0.5
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_pca_and_truncation_at_full_dim_equal_full(rng):
    x = _correlated(rng)
    for reducer in (PCA().fit(x), Truncation().fit(x)):
        z = reducer.transform(x, 32)
        np.testing.assert_allclose(z @ z.T, x @ x.T, atol=1e-5)


def test_pca_axes_are_orthonormal_and_sorted(rng):
    pca = PCA().fit(_correlated(rng))
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(32), atol=1e-5)
    assert (np.diff(pca.explained_variance_) <= 1e-12).all()


def test_pca_partial_fit_matches_fit(rng):
    x = _correlated(rng)
    whole = PCA().fit(x)
    parts = PCA().partial_fit(x[:150]).partial_fit(x[150:])
    np.testing.assert_allclose(np.abs(parts.components_[:4]), np.abs(whole.components_[:4]), atol=1e-4)


def test_random_projection_is_deterministic_per_seed(rng):
    x = _correlated(rng)
    a, b = RandomProjection(seed=1).fit(x), RandomProjection(seed=2).fit(x)
    assert np.array_equal(a.transform(x, 8), a.transform(x, 8))
    assert not np.allclose(a.transform(x, 8), b.transform(x, 8))


def test_dim_outside_range_is_refused(rng):
    with pytest.raises(SmecError, match="outside 1..32"):
        Truncation().fit(_correlated(rng)).transform(_correlated(rng), 33)


def test_neighbours_exclude_self(rng):
    x = unit_rows(rng, 50, 8)
    nb = _neighbours(x, 3)
    assert nb.shape == (50, 3) and not (nb == np.arange(50)[:, None]).any()
    assert (nb[:, 0] == np.argsort(-(x @ x.T) + 10 * np.eye(50), axis=1)[:, 0]).all()


def _pair_error(x: np.ndarray, z: np.ndarray) -> float:
    return float(np.abs(x @ x.T - z @ z.T).mean())


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_adaptor_starts_as_truncation_and_learns_to_keep_similarities(rng, one_thread):
    x = _correlated(rng, spectrum=(0.1, 2.0))  # the first coordinates carry the least: truncation is poor
    untrained = MatryoshkaAdaptor(dims=(8, 4), epochs=0).fit(x)
    np.testing.assert_allclose(untrained.transform(x, 8), Truncation().fit(x).transform(x, 8), atol=1e-6)
    trained = MatryoshkaAdaptor(dims=(8, 4), hidden=64, epochs=20, batch_size=100).fit(x)
    assert _pair_error(x, trained.transform(x, 8)) < 0.8 * _pair_error(x, untrained.transform(x, 8))


def test_adaptor_refuses_use_before_fit_and_bad_dims(rng):
    with pytest.raises(SmecError, match="not fitted"):
        MatryoshkaAdaptor().transform(np.zeros((2, 4), np.float32), 2)
    with pytest.raises(SmecError, match="dims"):
        MatryoshkaAdaptor(dims=(64,)).fit(_correlated(rng))


def test_centred_pca_subtracts_the_mean_and_uncentred_does_not():
    x = np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32) + 3.0
    centred, plain = PCA(center=True).fit(x), PCA().fit(x)
    raw = lambda p, c: (x - (p.mean_ if c else 0)) @ p.components_[:3].T  # noqa: E731
    z = raw(centred, True)
    np.testing.assert_allclose(centred.transform(x, 3), z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-5)
    z = raw(plain, False)
    np.testing.assert_allclose(plain.transform(x, 3), z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-5)


def test_pca_streams_moments_in_chunks():
    """Chunked float64 moments equal the one-shot covariance (no float64 copy of the data)."""
    from ..conftest import clustered

    X = clustered(n=301)
    chunked = PCA().partial_fit(X, chunk=7)
    cov = np.cov(X.astype(np.float64), rowvar=False, bias=True)
    eigvals = np.sort(np.linalg.eigvalsh(cov))[::-1]
    h = X.astype(np.float64) @ chunked.components64_.T
    assert np.allclose(h.var(axis=0), eigvals, atol=1e-6)
    assert np.allclose(chunked.mean64_, X.astype(np.float64).mean(axis=0), atol=1e-7)
    assert np.allclose(np.abs(chunked.components_), np.abs(PCA().fit(X).components_), atol=1e-4)

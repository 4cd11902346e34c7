"""Reducers a user would try before SMEC, behind the same ``fit(X)`` / ``transform(X, dim)`` API.

Every reducer returns L2-normalised float32 vectors, so inner product search is cosine search
and the comparison with SMEC is like for like.
"""

from __future__ import annotations

import numpy as np

from .errors import SmecError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def check_dim(dim: int, input_dim: int) -> None:
    """Refuse a target dim outside 1..input_dim with a message naming both."""
    if not 1 <= dim <= input_dim:
        raise SmecError(f"dim={dim} is outside 1..{input_dim} (the input dimension)")


class PCA:
    """PCA by streaming moments: ``partial_fit`` accumulates sums in float64, so a corpus
    larger than memory can be fitted batch by batch, and ``fit`` is one ``partial_fit``."""

    def __init__(self) -> None:
        self._n = 0
        self._sum: np.ndarray | None = None
        self._gram: np.ndarray | None = None

    def partial_fit(self, X: np.ndarray) -> "PCA":
        X = np.asarray(X, dtype=np.float64)
        if self._sum is None:
            self._sum = np.zeros(X.shape[1])
            self._gram = np.zeros((X.shape[1], X.shape[1]))
        self._n += len(X)
        self._sum += X.sum(axis=0)
        self._gram += X.T @ X
        self._solve()
        return self

    def fit(self, X: np.ndarray) -> "PCA":
        self.__init__()
        return self.partial_fit(X)

    def _solve(self) -> None:
        mean = self._sum / self._n
        cov = self._gram / self._n - np.outer(mean, mean)
        eigvals, eigvecs = np.linalg.eigh(cov)
        order = np.argsort(eigvals)[::-1]
        self.mean_ = mean.astype(np.float32)
        self.explained_variance_ = np.maximum(eigvals[order], 0.0)
        self.components_ = eigvecs[:, order].T.astype(np.float32)  # (D, D), rows = axes
        self.input_dim_ = len(mean)

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        check_dim(dim, self.input_dim_)
        return l2_normalize((np.asarray(X, dtype=np.float32) - self.mean_) @ self.components_[:dim].T)


class Truncation:
    """Keep the first ``dim`` coordinates (what Matryoshka-trained models expect)."""

    def fit(self, X: np.ndarray) -> "Truncation":
        self.input_dim_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        check_dim(dim, self.input_dim_)
        return l2_normalize(np.asarray(X, dtype=np.float32)[:, :dim])


class RandomProjection:
    """Gaussian random projection (Johnson-Lindenstrauss); one fixed matrix per dim and seed."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray) -> "RandomProjection":
        self.input_dim_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        check_dim(dim, self.input_dim_)
        rng = np.random.default_rng(self.seed)
        proj = rng.standard_normal((self.input_dim_, dim)).astype(np.float32)
        return l2_normalize(np.asarray(X, dtype=np.float32) @ proj)

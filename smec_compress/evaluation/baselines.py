"""Reducers a user would try before SMEC, behind the same ``fit(X)`` / ``transform(X, dim)`` API.

Every reducer returns L2-normalised float32 vectors, so inner product search is cosine search
and the comparison with SMEC is like for like. PCA lives in ``model.pca`` (it is SMEC's
initialisation) and is re-exported here with the other rivals.
"""

from __future__ import annotations

import numpy as np

from ..errors import SmecError
from ..model.pca import PCA
from ..normalize import l2_normalize
from ..validation import check_dim, check_fitted

__all__ = ["PCA", "MatryoshkaAdaptor", "RandomProjection", "Truncation"]


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


class MatryoshkaAdaptor:
    """Matryoshka-Adaptor (Yoon et al., 2024), unsupervised: a residual MLP ``e = x + f(x)``
    trained so that the first ``m`` coordinates of ``e`` keep the full vectors' similarities.

    Loss, summed over the nested ``dims`` (each ``m``): ``L_topk`` (mean |cos(x_i, x_j) -
    cos(e_i[:m], e_j[:m])| over each vector's ``k`` nearest neighbours in the full space),
    ``pair_weight * L_pair`` (the same over all pairs in the batch), plus ``rec_weight * L_rec``
    (the L1 change ``|e - x|`` averaged over coordinates, which keeps the adapted vectors close to
    the originals; summed over coordinates instead it outweighs the similarity terms ~D-fold and
    the adaptor barely moves from truncation).
    ``f``'s output layer starts at zero, so training starts from plain truncation. Adam, lr 1e-3.
    """

    def __init__(
        self,
        *,
        dims: tuple[int, ...] = (128, 96, 64, 48, 32, 16),
        hidden: int = 512,
        k: int = 10,
        epochs: int = 20,
        batch_size: int = 256,
        lr: float = 1e-3,
        pair_weight: float = 1.0,
        rec_weight: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.dims, self.hidden, self.k, self.epochs = dims, hidden, k, epochs
        self.batch_size, self.lr, self.pair_weight, self.rec_weight, self.seed = batch_size, lr, pair_weight, rec_weight, seed

    def fit(self, X: np.ndarray) -> "MatryoshkaAdaptor":
        import torch

        X = l2_normalize(np.asarray(X, dtype=np.float32))
        if not self.dims or not all(1 <= m <= X.shape[1] for m in self.dims):
            raise SmecError(f"dims={list(self.dims)} must be non-empty and within 1..{X.shape[1]}")
        if len(X) <= self.k:
            raise SmecError(f"X has {len(X)} rows; the top-k loss needs more than k={self.k}")
        torch.manual_seed(self.seed)
        f = torch.nn.Sequential(torch.nn.Linear(X.shape[1], self.hidden), torch.nn.ReLU(), torch.nn.Linear(self.hidden, X.shape[1]))
        torch.nn.init.zeros_(f[2].weight)
        torch.nn.init.zeros_(f[2].bias)
        x_all, knn = torch.from_numpy(X), torch.from_numpy(_neighbours(X, self.k))
        opt = torch.optim.Adam(f.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            for idx in torch.randperm(len(X), generator=gen).split(self.batch_size):
                loss = self._loss(f, x_all[idx], x_all[knn[idx]])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.weights_ = [p.detach().numpy().copy() for p in (f[0].weight, f[0].bias, f[2].weight, f[2].bias)]
        self.input_dim_ = X.shape[1]
        return self

    def _loss(self, f, x, nb):
        """x: (B, D) anchors; nb: (B, k, D) their full-space neighbours."""
        import torch.nn.functional as F

        e, e_nb = x + f(x), nb + f(nb)
        cos_pair = x @ x.T  # (B, B); inputs are unit vectors
        cos_topk = (x[:, None, :] * nb).sum(-1)  # (B, k)
        loss = self.rec_weight * (e - x).abs().mean()
        for m in self.dims:
            em, em_nb = F.normalize(e[:, :m], dim=-1), F.normalize(e_nb[..., :m], dim=-1)
            loss = loss + ((em[:, None, :] * em_nb).sum(-1) - cos_topk).abs().mean()
            loss = loss + self.pair_weight * (em @ em.T - cos_pair).abs().mean()
        return loss

    def adapt(self, X: np.ndarray) -> np.ndarray:
        """``x + f(x)`` in numpy: applying the adaptor needs no torch."""
        check_fitted(self, "weights_")
        w1, b1, w2, b2 = self.weights_
        X = l2_normalize(np.asarray(X, dtype=np.float32))
        return X + np.maximum(X @ w1.T + b1, 0.0) @ w2.T + b2

    def transform(self, X: np.ndarray, dim: int) -> np.ndarray:
        check_fitted(self, "weights_")
        check_dim(dim, self.input_dim_)
        return l2_normalize(self.adapt(X)[:, :dim])


def _neighbours(X: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows by inner product, ``(N, k)`` int64 (exact FAISS)."""
    import faiss

    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    _, idx = index.search(X, k + 1)
    is_self = idx == np.arange(len(X))[:, None]
    keep = np.where(is_self.any(axis=1, keepdims=True), ~is_self, np.arange(k + 1) < k)  # drop self, else the last
    return idx[keep].reshape(len(X), k)


"""A CSR-style sparse code: a TopK sparse autoencoder over the frozen vectors (``TopKSparse``).

"Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation" (CSR, ICML 2025)
compresses an embedding into a few non-zero activations of a wide sparse autoencoder. Each stored
vector keeps its ``k`` largest latents as a 2-byte index and a 2-byte (float16) value, so ``4 k``
bytes: k = 4 / 8 / 12 / 16 at 16 / 32 / 48 / 64 bytes. The autoencoder (``latents`` = 4 x the input
dim, TopK activation, tied pre-bias) is trained to reconstruct the corpus vectors. Search is
asymmetric, as for our other codecs: the float query's dense ReLU latents against each document's
k stored latents.
"""

from __future__ import annotations

import numpy as np

from ..errors import SmecError
from ..validation import check_fitted
from .base import f32

BYTES_PER_LATENT = 4  # uint16 index + float16 value


class TopKSparse:
    """``k`` non-zeros of a TopK sparse autoencoder: ``4 k`` bytes a vector."""

    name = "csr"

    def __init__(self, k: int, *, seed: int = 0, latents: int | None = None, epochs: int = 30, batch: int = 256,
                 lr: float = 1e-3) -> None:
        self.k, self.latents, self.epochs, self.batch, self.lr, self.seed = k, latents, epochs, batch, lr, seed

    def fit(self, X: np.ndarray) -> "TopKSparse":
        import torch

        X = f32(X)
        latents = self.latents or 4 * X.shape[1]
        if not 1 <= self.k <= latents or latents > 2**16:
            raise SmecError(f"csr: k={self.k} must be in 1..{latents} latents (at most 65,536: 2-byte indices)")
        gen = torch.Generator().manual_seed(self.seed)
        x = torch.from_numpy(X)
        enc = torch.nn.Linear(X.shape[1], latents)
        torch.nn.init.normal_(enc.weight, std=X.shape[1] ** -0.5, generator=gen)
        bound = X.shape[1] ** -0.5  # nn.Linear's default bias range, drawn from our generator: one seed, one fit
        torch.nn.init.uniform_(enc.bias, -bound, bound, generator=gen)
        dec = torch.nn.Parameter(enc.weight.detach().T.clone())  # (D, latents), initialised tied
        pre = torch.nn.Parameter(x.mean(0).clone())
        opt = torch.optim.Adam([*enc.parameters(), dec, pre], lr=self.lr)
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x), generator=gen).split(self.batch):
                z = self._topk(torch.relu(enc(x[idx] - pre)))
                loss = (z @ dec.T + pre - x[idx]).pow(2).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.encoder_ = (enc.weight.detach().numpy().T.copy(), (enc.bias - pre @ enc.weight.T).detach().numpy())
        self.input_dim_, self.latents_ = X.shape[1], latents
        self.code_size_ = BYTES_PER_LATENT * self.k
        return self

    def _topk(self, a):
        import torch

        top = torch.topk(a, self.k, dim=1)
        return torch.zeros_like(a).scatter(1, top.indices, top.values)

    def latent(self, X: np.ndarray) -> np.ndarray:
        """Dense ReLU latents ``(N, latents)``: what a float query is scored with."""
        check_fitted(self, "encoder_")
        w, b = self.encoder_
        return np.maximum(f32(X) @ w + b, 0)

    def encode(self, X: np.ndarray) -> np.ndarray:
        """``(N, 4 k)`` uint8: per vector ``k`` uint16 indices, then ``k`` float16 values."""
        a = self.latent(X)
        idx = np.argpartition(-a, self.k - 1, axis=1)[:, : self.k]
        vals = np.take_along_axis(a, idx, 1).astype(np.float16)
        return np.concatenate([idx.astype("<u2").view(np.uint8), vals.view(np.uint8)], axis=1)

    def state(self) -> bytes:
        check_fitted(self, "encoder_")
        w, b = self.encoder_
        return np.concatenate([np.array([self.k, self.latents_, self.input_dim_], np.float32), w.ravel(), b]).tobytes()

    def restore(self, state: bytes, input_dim: int) -> "TopKSparse":
        a = np.frombuffer(state, dtype=np.float32)
        self.k, self.latents_, self.input_dim_ = (int(v) for v in a[:3])
        w = a[3 : 3 + input_dim * self.latents_].reshape(input_dim, self.latents_).copy()
        self.encoder_ = (w, a[3 + input_dim * self.latents_ :].copy())
        self.code_size_ = BYTES_PER_LATENT * self.k
        return self

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int, *, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by the query's dense latents against each document's stored latents."""
        codes = np.ascontiguousarray(codes)
        n = self.k * 2
        idx = codes[:, :n].copy().view("<u2").astype(np.int64)
        vals = codes[:, n:].copy().view(np.float16).astype(np.float32)
        q = self.latent(queries)
        scores = np.empty((len(q), len(codes)), dtype=np.float32)
        for start in range(0, len(codes), chunk):
            sl = slice(start, start + chunk)
            scores[:, sl] = np.einsum("qnk,nk->qn", q[:, idx[sl]], vals[sl])
        k = min(k, len(codes))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
        ids = np.take_along_axis(top, order, 1)
        return np.take_along_axis(scores, ids, 1), ids

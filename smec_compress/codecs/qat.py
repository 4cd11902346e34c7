"""Quantisation in the loop: a head's map at one dim, trained through the quantiser that stores it.

Stacking a quantiser on a head fits the quantiser to the head's float output; neither ever sees
the ranking the codes must keep. These codecs start from the head's affine map at one dim
(``SMEC.linear_map``, then L2 normalisation) and the quantiser FAISS fits on its output, then
train the map and the quantiser's tables together by rank distillation (``distil.distil``): float
queries through the map, scored against *quantised* documents as the served index scores them,
the full-dim cosine ranking as the teacher. Straight-through gradients cross the rounding. At
zero steps each is exactly the blind stack (the same head at that dim with the same quantiser),
so ``bench/budgets.py``'s ablation measures what training in the loop adds.

- ``QATScalar`` (``qat-int8``, ``qat-int4``): per-dimension ranges (FAISS' QT_8bit / QT_4bit
  table: a minimum and a width per dim) start from FAISS' calibration on the training rows and are
  trained with the map. They are tables of the codec, never of the batch being encoded: one
  vector alone encodes exactly as inside a batch.
- ``QATOPQ`` (``qat-opq``): map, OPQ rotation and PQ codebooks; the codebooks learn through the
  decoded documents, the map and rotation through the queries and a straight-through residual.
- ``QATSign`` (``qat-binary``): sign bits of the map's output, searched as ``BinaryRerank``
  (Hamming top-100 re-ranked by the float query against the +-1 code).

The first two are one plain FAISS index each (map as ``LinearTransform`` + ``NormalizationTransform``
in front of the scalar or PQ index), which is what is searched, saved and exported. All take
the full-dim rows (made unit, ``budget.view``) and keep the head's dim as ``dim_``.
"""

from __future__ import annotations

import io

import faiss
import numpy as np

from ..errors import SmecError
from ..normalize import l2_normalize
from .base import FaissCodec, affine_transforms, copy_index, f32, with_transforms
from .binary import BinaryRerank
from .distil import RankTraining, distil
from .pq import OPQ
from .rank_pq import _assign, _decode
from .scalar import Int4, Int8

MIN_WIDTH = 1e-6  # of a trained range: the width divides


def _map_params(init):
    """Trainable ``(W (D, d), b (d,))`` from the head's map ``init``."""
    import torch

    if init is None:
        raise SmecError("a codec trained in the loop starts from a head's map: fit(X, init=head.linear_map(dim))")
    w, b = init
    return torch.nn.Parameter(torch.from_numpy(f32(w).copy())), torch.nn.Parameter(torch.from_numpy(f32(b).copy()))


def _mapped(x, W, b):
    import torch

    return torch.nn.functional.normalize(x @ W + b, dim=1)


def _np_mapped(X: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return l2_normalize(f32(X) @ f32(w) + f32(b))


def _blind_index(blind: FaissCodec, X: np.ndarray, init, start: FaissCodec | None) -> faiss.Index:
    """A copy of the trained index of ``start`` (the blind codec, already fitted on the map's
    output) or of ``blind`` fitted here: the in-loop phase starts exactly at the blind stack."""
    if start is None:
        return blind.fit(_np_mapped(X, *init)).index_
    if type(start) is not type(blind) or start.input_dim_ != init[0].shape[1] or \
            getattr(start, "m", None) != getattr(blind, "m", None):
        raise SmecError(f"an in-loop codec starts from a fitted {blind.name} on the map's {init[0].shape[1]} dims")
    return copy_index(start.index_)


class _InLoop:
    """What the FAISS-backed ones share: the map's dim, the training, the served chain."""

    def _setup(self, seed: int, training: RankTraining | None) -> None:
        self.seed = seed
        self.training = training or RankTraining()

    def _serve(self, W, b, index: faiss.Index) -> None:
        """``index`` (over the map's output) with the trained map in front: what is searched."""
        w, bias = W.detach().numpy(), b.detach().numpy()
        self.index_ = with_transforms(index, affine_transforms(w, bias))
        self.input_dim_, self.dim_ = w.shape
        self.code_size_ = int(self.index_.sa_code_size())

    def restore(self, state: bytes, input_dim: int) -> "_InLoop":
        FaissCodec.restore(self, state, input_dim)
        self.input_dim_, self.dim_ = int(self.index_.d), int(faiss.downcast_VectorTransform(self.index_.chain.at(0)).d_out)
        return self


class QATScalar(_InLoop, FaissCodec):
    """The head's map at one dim and int8 / int4 scalar codes, trained together (see the module)."""

    blind = Int8

    def __init__(self, *, seed: int = 0, training: RankTraining | None = None) -> None:
        self._setup(seed, training)

    def fit(self, X: np.ndarray, *, init=None, queries: np.ndarray | None = None, start=None) -> "QATScalar":
        """Train on unit full-dim rows ``X`` from the head's map ``init = (w, b)``, anchored on
        unlabelled ``queries`` when given, else on rows of ``X``; ``start`` is the blind codec
        already fitted on the map's output (fitted here when None; copied, never changed)."""
        import torch

        W, b = _map_params(init)
        sq = _blind_index(self.blind(), X, init, start)  # FAISS' own calibration: the blind codec
        levels = float(2 ** sq.sq.bits - 1)
        table = faiss.vector_to_array(sq.sq.trained).reshape(2, -1)  # per dim: minimum, width
        vmin = torch.nn.Parameter(torch.from_numpy(table[0].copy()))
        width = torch.nn.Parameter(torch.from_numpy(table[1].copy()))

        def quantised(z):
            u = ((z - vmin) / width.clamp(min=MIN_WIDTH)).clamp(0, 1) * levels
            code = u + (u.floor() - u).detach()  # straight through the rounding, as FAISS' (int)(levels * u)
            return vmin + (code + 0.5) / levels * width

        def student(query, docs):
            return _mapped(query, W, b) @ quantised(_mapped(docs, W, b)).T

        distil(X, [W, b, vmin, width], student, self.training, seed=self.seed, queries=queries)
        with torch.no_grad():
            width.clamp_(min=MIN_WIDTH)  # a range is never empty
        trained = np.concatenate([vmin.detach().numpy(), width.detach().numpy()])
        faiss.copy_array_to_vector(f32(trained), sq.sq.trained)
        self._serve(W, b, sq)
        return self


class QATInt8(QATScalar):
    name = "qat-int8"


class QATInt4(QATScalar):
    name = "qat-int4"
    blind = Int4


class QATOPQ(_InLoop, FaissCodec):
    """The head's map at one dim, OPQ's rotation and ``m`` PQ codebooks, trained together."""

    name = "qat-opq"

    def __init__(self, m: int, *, seed: int = 0, trainer: str = "faiss", training: RankTraining | None = None) -> None:
        self.m = m
        self.trainer = trainer  # of the blind OPQ it starts from when given no ``start``
        self._setup(seed, training)

    def fit(self, X: np.ndarray, *, init=None, queries: np.ndarray | None = None, start=None) -> "QATOPQ":
        """As ``QATScalar.fit``, starting from OPQ fitted on the head's output."""
        import torch

        W, b = _map_params(init)
        blind = _blind_index(OPQ(self.m, seed=self.seed, trainer=self.trainer), X, init, start)
        opq = faiss.downcast_VectorTransform(blind.chain.at(0))
        pq = faiss.downcast_index(blind.index)
        R = torch.nn.Parameter(torch.from_numpy(faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in)))
        C = torch.nn.Parameter(torch.from_numpy(
            faiss.vector_to_array(pq.pq.centroids).reshape(pq.pq.M, pq.pq.ksub, pq.pq.dsub)))

        def student(query, docs):
            y = _mapped(docs, W, b) @ R.T
            with torch.no_grad():
                codes = _assign(y, C)
            decoded = _decode(codes, C) + (y - y.detach())  # codebooks through the decode, map + rotation straight through
            return (_mapped(query, W, b) @ R.T) @ decoded.T

        distil(X, [W, b, R, C], student, self.training, seed=self.seed, queries=queries)
        rotation = faiss.LinearTransform(opq.d_in, opq.d_out, False)
        faiss.copy_array_to_vector(f32(R.detach().numpy()).ravel(), rotation.A)
        rotation.is_trained = True
        faiss.copy_array_to_vector(f32(C.detach().numpy()).ravel(), pq.pq.centroids)
        self._serve(W, b, with_transforms(pq, [rotation]))
        return self


class QATSign(BinaryRerank):
    """The head's map at one dim trained for its sign bits, searched as ``BinaryRerank``: the
    documents' +-1 codes (straight-through sign) against the float query through the map."""

    name = "qat-binary"

    def __init__(self, *, seed: int = 0, training: RankTraining | None = None, candidates: int = 100) -> None:
        super().__init__(candidates=candidates)
        self.seed = seed
        self.training = training or RankTraining()

    def fit(self, X: np.ndarray, *, init=None, queries: np.ndarray | None = None) -> "QATSign":
        """As ``QATScalar.fit``, for sign bits of the map's output."""
        W, b = _map_params(init)

        scale = W.shape[1] ** -0.5  # +-1 / sqrt(d): unit codes, so the loss sees cosine-sized scores

        def student(query, docs):
            z = _mapped(docs, W, b)
            signs = z + (z.sign() * scale - z).detach()  # straight through the sign
            return _mapped(query, W, b) @ signs.T

        distil(X, [W, b], student, self.training, seed=self.seed, queries=queries)
        return self._set(W.detach().numpy(), b.detach().numpy())

    def _set(self, w: np.ndarray, b: np.ndarray) -> "QATSign":
        self.w_, self.b_ = f32(w), f32(b)
        self.input_dim_, self.dim_ = self.w_.shape  # input_dim_: what encode takes; dim_: the bits
        self.code_size_ = -(-self.dim_ // 8)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        return self._bits(f32(X) @ self.w_ + self.b_)  # the sign needs no normalisation

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._rerank(codes, _np_mapped(queries, self.w_, self.b_), k)

    def state(self) -> bytes:
        """The trained map (``.npz``): all a sign code needs."""
        buf = io.BytesIO()
        np.savez(buf, w=self.w_, b=self.b_)
        return buf.getvalue()

    def restore(self, state: bytes, input_dim: int) -> "QATSign":
        with np.load(io.BytesIO(state), allow_pickle=False) as f:
            return self._set(f["w"], f["b"])

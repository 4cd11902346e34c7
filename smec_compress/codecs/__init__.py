"""Quantisers: store each vector in a few bytes instead of ``4 * dim``.

Every codec has the same small API: ``fit(X)`` learns its tables from the corpus, ``encode(X)``
returns the stored codes (``(N, code_size_)`` uint8, so the byte count in the tables is the byte
count on disk), and ``search(codes, queries, k)`` ranks the codes for float queries with the index
FAISS would serve them from:

- ``Int8``: per-dimension min/max scalar quantisation (``IndexScalarQuantizer``, QT_8bit), inner
  product of the float query with the decoded vector: ``dim`` bytes.
- ``Binary``: one sign bit per dimension, Hamming distance between the query's and the document's
  bits (``IndexBinaryFlat``): ``dim / 8`` bytes. Threshold 0, not the corpus mean: on SciFact with
  all-MiniLM-L6-v2 raw signs keep 0.586 nDCG@10, mean-thresholded 0.568, centred PCA signs 0.497.
- ``BinaryRerank``: the same bits, Hamming top-100 re-ranked by the float query against each
  candidate's +-1 code: ``dim / 8`` bytes.
- ``RaBitQ``: random rotation, then ``bits`` per dimension plus per-vector correction factors
  (``IndexRaBitQ``): ``bits * dim / 8`` bytes plus 8 (1 bit) or 20 (2-4 bits);
  ``RaBitQUnrotated`` is FAISS' plain "RaBitQ" without the rotation.
- ``TopKSparse`` ("csr"): the ``m`` largest latents of a TopK sparse autoencoder, 2-byte index and
  2-byte value each: ``4 m`` bytes (CSR, ICML 2025).
- ``Int4``: the same at 4 bits, two dimensions a byte: ``dim / 2`` bytes.
- ``QATInt8`` / ``QATInt4`` / ``QATOPQ`` / ``QATSign`` (``qat-*``): a head's map at one dim and
  its quantiser trained together by the ranking (quantisation in the loop, ``qat.py``); they take
  full-dim rows and start from ``fit(X, init=head.linear_map(dim))``.
- ``RankOPQ``: OPQ whose rotation and codebooks are then fine-tuned by distilling the full-dim
  ranking (corpus rows as queries): ``m`` bytes, exported as the same FAISS index type as OPQ.
- ``PQ``: product quantisation with ``m`` sub-quantisers of 256 centroids (``IndexPQ``), asymmetric
  inner product: ``m`` bytes.
- ``OPQ``: PQ after a learned rotation (``OPQMatrix`` + ``IndexPQ``): ``m`` bytes; the rotation is
  a float matrix stored once per index, not per vector. ``trainer="torch"`` fits the same
  algorithm on torch kernels (``opq_fit``, what the byte-budget choice uses).
"""

from __future__ import annotations

from ..errors import SmecError
from .base import Codec
from .binary import Binary, BinaryRerank
from .pq import OPQ, PQ
from .rabitq import RaBitQ, RaBitQUnrotated
from .qat import QATOPQ, QATInt4, QATInt8, QATSign
from .rank_pq import RankOPQ
from .scalar import Int4, Int8
from .sparse import TopKSparse

__all__ = ["CODECS", "OPQ", "PQ", "Binary", "BinaryRerank", "Codec", "Int4", "Int8", "QATInt4", "QATInt8", "QATOPQ",
           "QATSign", "RaBitQ", "RaBitQUnrotated", "RankOPQ", "TopKSparse", "make_codec"]


# Codecs by name: a new codec (a learned one) is one more entry. PQ/OPQ need ``m`` (the number of
# sub-quantisers = bytes per vector), RaBitQ takes ``bits`` per dimension (default 1).
CODECS: dict[str, type] = {"int8": Int8, "int4": Int4, "binary": Binary, "binary-rerank": BinaryRerank, "pq": PQ,
                           "opq": OPQ, "rabitq": RaBitQ, "rabitq-unrotated": RaBitQUnrotated, "rank-opq": RankOPQ,
                           "csr": TopKSparse, "qat-int8": QATInt8, "qat-int4": QATInt4, "qat-opq": QATOPQ,
                           "qat-binary": QATSign}
NEEDS_M = frozenset({"pq", "opq", "rank-opq", "csr", "qat-opq"})  # csr: m = its non-zeros per vector (4 bytes each)
TAKES_BITS = frozenset({"rabitq", "rabitq-unrotated"})
TRAINED = frozenset({"rank-opq", "qat-int8", "qat-int4", "qat-opq", "qat-binary"})  # take a RankTraining
OPQ_TRAINED = frozenset({"opq", "rank-opq", "qat-opq"})  # fit (or start from) OPQ: take its ``trainer``
SEEDED = NEEDS_M | TAKES_BITS | TRAINED


def make_codec(name: str, *, m: int | None = None, bits: int | None = None, seed: int = 0, training=None,
               trainer: str | None = None) -> Codec:
    """A codec by name (a key of ``CODECS``); PQ and OPQ need ``m`` (bytes per vector), CSR ``m``
    non-zeros, RaBitQ takes ``bits`` per dimension, the rank-trained ones a ``distil.RankTraining``
    (its defaults when None), the OPQ family an OPQ ``trainer`` ("faiss" when None; ``pq.OPQ``).
    A parameter the codec does not take is an error, not ignored."""
    if name not in CODECS:
        raise SmecError(f"unknown codec {name!r}; choose {', '.join(CODECS)}")
    if m is not None and name not in NEEDS_M:
        raise SmecError(f"{name} takes no m (only {', '.join(sorted(NEEDS_M))} do)")
    if bits is not None and name not in TAKES_BITS:
        raise SmecError(f"{name} takes no bits (only {', '.join(sorted(TAKES_BITS))} do)")
    if training is not None and name not in TRAINED:
        raise SmecError(f"{name} takes no training (only {', '.join(sorted(TRAINED))} do)")
    if trainer is not None and name not in OPQ_TRAINED:
        raise SmecError(f"{name} takes no OPQ trainer (only {', '.join(sorted(OPQ_TRAINED))} do)")
    kwargs = {"training": training} if name in TRAINED else {}
    if trainer is not None:
        kwargs["trainer"] = trainer
    if name in SEEDED:
        kwargs["seed"] = seed
    if name in NEEDS_M:
        if m is None:
            raise SmecError(f"{name} needs m, the number of sub-quantisers (= bytes per vector)")
        return CODECS[name](m, **kwargs)
    if name in TAKES_BITS:
        return CODECS[name](bits or 1, **kwargs)
    return CODECS[name](**kwargs)

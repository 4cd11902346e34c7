"""FAISS RaBitQ: a random rotation, then ``bits`` per dimension plus per-vector correction factors.

RaBitQ (SIGMOD 2024) rotates each vector randomly, keeps ``bits`` per dimension and stores a few
floats per vector that correct the inner-product estimate: 8 bytes at 1 bit, 20 bytes at 2-4 bits
(FAISS 1.15). Those factors count in ``code_size_``, so a 64-d 1-bit code is 16 bytes, not 8.
FAISS' ``IndexRaBitQ`` does not rotate by itself (the factory string "RaBitQ" gives that); the
paper and FAISS' own tests put a random rotation in front. Which is better depends on the input:
on SciFact's PCA output (first dims carry most of the variance) the rotated code wins at 192-384
dims and loses at 64 (1 bit: 0.420 vs 0.455 nDCG@10), so both are offered. Queries are quantised
to FAISS' default 4 bits (``qb``).
"""

from __future__ import annotations

import faiss

from ..errors import SmecError
from .base import FaissCodec

BITS = (1, 2, 3, 4)  # what we compare at; FAISS takes up to 9


def code_size(dim: int, bits: int) -> int:
    """Stored bytes per vector of a ``dim``-d code at ``bits``, as FAISS counts them (no training)."""
    return int(faiss.IndexRaBitQ(dim, faiss.METRIC_INNER_PRODUCT, bits).sa_code_size())


class RaBitQ(FaissCodec):
    """RaBitQ codes at ``bits`` per dimension after a seeded random rotation, searched with
    FAISS' asymmetric estimator (float query quantised to ``qb`` bits, against the codes)."""

    name = "rabitq"

    def __init__(self, bits: int = 1, *, seed: int = 0) -> None:
        self.bits = bits
        self.seed = seed

    def _check(self, dim: int) -> None:
        if self.bits not in BITS:
            raise SmecError(f"rabitq: bits={self.bits} must be one of {', '.join(map(str, BITS))}")

    def _make_index(self, dim: int) -> faiss.Index:
        self._rotation = faiss.RandomRotationMatrix(dim, dim)  # kept: the pre-transform does not own it
        self._rotation.init(self.seed)
        self._rabitq = faiss.IndexRaBitQ(dim, faiss.METRIC_INNER_PRODUCT, self.bits)
        return faiss.IndexPreTransform(self._rotation, self._rabitq)


class RaBitQUnrotated(RaBitQ):
    """FAISS' plain ``IndexRaBitQ`` (factory string "RaBitQ"): the same codes without the rotation."""

    name = "rabitq-unrotated"

    def _make_index(self, dim: int) -> faiss.Index:
        return faiss.IndexRaBitQ(dim, faiss.METRIC_INNER_PRODUCT, self.bits)

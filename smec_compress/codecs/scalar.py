"""Scalar quantisation: 8 or 4 bits per dimension, a range per dimension learned on the corpus."""

from __future__ import annotations

import faiss

from .base import FaissCodec


class Int8(FaissCodec):
    """8-bit scalar quantisation with a per-dimension range learned on the corpus: ``dim`` bytes."""

    name = "int8"
    qtype = faiss.ScalarQuantizer.QT_8bit

    def _make_index(self, dim: int) -> faiss.Index:
        return faiss.IndexScalarQuantizer(dim, self.qtype, faiss.METRIC_INNER_PRODUCT)


class Int4(Int8):
    """4-bit scalar quantisation, two dimensions a byte: ``dim / 2`` bytes (the last one padded)."""

    name = "int4"
    qtype = faiss.ScalarQuantizer.QT_4bit

"""Scalar quantisation: one byte per dimension, a range per dimension learned on the corpus."""

from __future__ import annotations

import faiss

from .base import FaissCodec


class Int8(FaissCodec):
    """8-bit scalar quantisation with a per-dimension range learned on the corpus."""

    name = "int8"

    def _make_index(self, dim: int) -> faiss.Index:
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)



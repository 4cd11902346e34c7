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
- ``PQ``: product quantisation with ``m`` sub-quantisers of 256 centroids (``IndexPQ``), asymmetric
  inner product: ``m`` bytes.
- ``OPQ``: PQ after a learned rotation (``OPQMatrix`` + ``IndexPQ``): ``m`` bytes; the rotation is
  a float matrix stored once per index, not per vector.
"""

from __future__ import annotations

from ..errors import SmecError
from .base import Codec
from .binary import Binary
from .pq import OPQ, PQ
from .scalar import Int8

__all__ = ["CODECS", "OPQ", "PQ", "Binary", "Codec", "Int8", "make_codec"]


# Codecs by name: a new codec (RaBitQ, a learned one) is one more entry; "m" marks those that
# need the number of sub-quantisers (= bytes per vector).
CODECS: dict[str, type] = {"int8": Int8, "binary": Binary, "pq": PQ, "opq": OPQ}
NEEDS_M = frozenset({"pq", "opq"})


def make_codec(name: str, *, m: int | None = None, seed: int = 0) -> Codec:
    """A codec by name (a key of ``CODECS``); PQ and OPQ need ``m`` (bytes per vector)."""
    if name not in CODECS:
        raise SmecError(f"unknown codec {name!r}; choose {', '.join(CODECS)}")
    if name in NEEDS_M:
        if m is None:
            raise SmecError(f"{name} needs m, the number of sub-quantisers (= bytes per vector)")
        return CODECS[name](m, seed=seed)
    return CODECS[name]()

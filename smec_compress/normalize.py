"""L2 normalisation, the one rule every layer shares: compressed vectors, baselines and codec
inputs are unit rows, so inner-product search is cosine search."""

from __future__ import annotations

import numpy as np

EPS = 1e-12  # a zero row stays zero instead of becoming NaN


def l2_normalize(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise L2-normalised float32 copy of ``x``, or ``x`` normalised in place when
    ``out is x`` (``transform`` does that on its matmul buffer: no second (N, dim) array)."""
    if out is None:
        out = np.array(x, dtype=np.float32)
    elif out is not x:
        np.copyto(out, x)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    np.maximum(norms, EPS, out=norms)
    out /= norms[:, None]
    return out

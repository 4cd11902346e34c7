"""Input checks in one place, in the spirit of ``sklearn.utils.validation``: each turns bad input
into a ``SmecError`` that names the argument, what is wrong and what would be accepted."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import SmecError

CHUNK_ROWS = 65_536  # finite checks run in chunks: no full-size boolean temporary


def nonfinite_rows(a: np.ndarray) -> np.ndarray:
    """Indices of the rows of a 2-D array that hold NaN or inf."""
    bad = np.zeros(len(a), dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, len(a), CHUNK_ROWS):
            bad[i : i + CHUNK_ROWS] = ~np.isfinite(a[i : i + CHUNK_ROWS]).all(axis=1)
    return np.flatnonzero(bad)


def check_matrix(name: str, a, *, input_dim: int | None = None, allow_row: bool = False) -> np.ndarray:
    """``a`` as a C-contiguous float32 (rows, dims) array of finite values, or SmecError.

    ``allow_row`` accepts one vector (1-D, ``input_dim`` long) as a one-row matrix, as the HTTP
    API does; values beyond float32 range become inf on conversion and are refused as such.
    """
    try:
        a = np.asarray(a)
    except (ValueError, TypeError):
        a = np.empty(0, dtype=object)
    if a.dtype == object:
        raise SmecError(f"{name} must be a rectangular array of numbers (rows differ in length)")
    if not np.issubdtype(a.dtype, np.number):
        raise SmecError(f"{name} must be numeric, got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.ascontiguousarray(a, dtype=np.float32)
    if allow_row and a.ndim == 1 and input_dim is not None and a.size == input_dim:
        a = a[None, :]
    if a.ndim != 2:
        raise SmecError(f"{name} must be a 2-D array (rows, dims), got shape {a.shape}")
    if input_dim is not None and a.shape[1] != input_dim:
        raise SmecError(f"{name} has {a.shape[1]} dims; the head takes {input_dim}-d vectors")
    if len(a) == 0:
        raise SmecError(f"{name} is empty; give at least one vector")
    bad = nonfinite_rows(a)
    if len(bad):
        raise SmecError(f"{name} has {len(bad)} row(s) with NaN, inf or values beyond float32 range "
                        f"(first at row {int(bad[0])}); every value must be a finite float32")
    return a


def reject_nonfinite(vectors: np.ndarray, ids, *, where: str) -> None:
    """Refuse file rows with NaN or inf, naming the count and the first one's id (``ids`` is a
    list or an Arrow array)."""
    bad = nonfinite_rows(vectors)
    if len(bad):
        first = ids[int(bad[0])]
        first = first.as_py() if hasattr(first, "as_py") else first
        raise SmecError(f"{where}: {len(bad)} rows contain NaN or inf (first id {first!r})")


def check_dim(dim: int, input_dim: int) -> None:
    """Refuse a target dim outside 1..input_dim with a message naming both."""
    if not 1 <= dim <= input_dim:
        raise SmecError(f"dim={dim} is outside 1..{input_dim} (the input dimension)")


def check_served_dim(dim: int, dims: Iterable[int], *, what: str = "dim", served: str = "trained") -> None:
    """Refuse a dim that is not among ``dims`` (a head's trained dims, a store's served ones),
    listing those that are, before any work starts."""
    dims = list(dims)
    if dim not in dims:
        raise SmecError(f"{what} {dim} is not a {served} dim; {served} dims: {dims}")


def check_served_dims(wanted: Iterable[int], dims: Iterable[int], *, what: str, served: str = "trained") -> None:
    """``check_served_dim`` for several dims at once, naming every missing one."""
    dims = list(dims)
    missing = sorted(set(wanted) - set(dims), reverse=True)
    if missing:
        raise SmecError(f"{what} has no dims {missing}; {served} dims: {dims} (pick --dims among them)")


def check_int(name: str, value, lo: int, hi: int) -> None:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and lo <= value <= hi):
        raise SmecError(f"{name}={value!r} must be an integer in {lo}..{hi}")


def check_number(name: str, value, *, positive: bool) -> None:
    """A finite number, > 0 when ``positive`` else >= 0."""
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value < float("inf")
    if not (ok and (value > 0 if positive else value >= 0)):
        raise SmecError(f"{name}={value!r} must be a {'positive' if positive else 'non-negative'} finite number")


def check_fitted(estimator, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise SmecError(f"this {name} is not fitted yet; call fit(X) first")

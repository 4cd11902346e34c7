"""What a fit needs in memory, so the sample can be sized before it is drawn.

A fit holds the sample (``N x D`` float32, plus its ids) and, per training stage, the stage's
input for every row; beside that, a working set that does not grow with ``N``: the stage
parameters with their gradients and Adam moments, the S-XBM queue, one step's candidates
forwarded and back-propagated, PCA's float64 moments, and the libraries themselves. The constants
are upper bounds checked against measured peaks (BENCHMARKS "Scale": 384-d and 4,096-d fits under
``prlimit --as``), not exact accounting.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import FitConfig
from ..errors import SmecError
from ..resources import format_bytes

LIBRARIES = 1 << 30  # torch, FAISS, OpenMP thread stacks and allocator arenas: measured ~0.5-0.8 GiB of address space
ID_BYTES = 96  # a Python str id in the sample's list: object header, text, list slot
STEP_COPIES = 10  # (candidates x width) tensors alive in one step, forward and backward
MATRIX_COPIES = 16  # (batch x candidates) similarity/mask/logit tensors alive in one step
MIN_SAMPLE_ROWS = 10_000  # below this a head barely trains (and the CLI refuses the budget)


@dataclass(frozen=True)
class FitFootprint:
    fixed: int  # bytes that do not grow with the sample
    per_row: int  # bytes per sample row

    def bytes_for(self, rows: int) -> int:
        return self.fixed + rows * self.per_row

    def rows_for(self, budget: int) -> int:
        return max(0, (budget - self.fixed) // self.per_row)


def read_batch_rows(dim: int, *, target_bytes: int = 256 << 20, most: int = 65_536) -> int:
    """Rows per streamed batch so one batch of float32 vectors stays near ``target_bytes``
    (65,536 rows up to 1,024 d; 16,384 at 4,096 d)."""
    return max(1024, min(most, target_bytes // (4 * dim)))


def fit_footprint(input_dim: int, cfg: FitConfig, *, normalized: bool = True) -> FitFootprint:
    """Upper bounds for a fit of ``cfg`` on ``input_dim``-d rows (``normalized=False`` with a head
    that normalises: the training loop keeps a unit-norm copy of the sample too)."""
    d, dims = input_dim, cfg.dims
    widths = [d, *dims[:-1]]  # each stage is square over its input's width
    params = sum(w * w + w for w in widths) + sum(w * d for w in widths[1:] if cfg.residual)
    candidates = cfg.batch_size + (cfg.memory_size if cfg.memory else 0)
    step = 4 * (STEP_COPIES * candidates * d + MATRIX_COPIES * cfg.batch_size * candidates)
    pca = 8 * (5 * d * d + read_batch_rows(d, target_bytes=512 << 20) * d)  # moments, eigh, one float64 chunk
    read = 3 * 4 * read_batch_rows(d) * d  # one streamed batch: Arrow buffers, decoded copy, reservoir slice
    fixed = LIBRARIES + 16 * params + 4 * cfg.memory_size * d + step + max(pca, read)
    stage_inputs = 2 * dims[0] if cfg.sequential and len(dims) > 1 else 0  # the current and the next stage's input
    copies = 2 if cfg.normalize and not normalized else 1
    per_row = 4 * d * copies + 4 * stage_inputs + ID_BYTES
    return FitFootprint(int(fixed), int(per_row))


def sample_rows_for(budget: int, input_dim: int, cfg: FitConfig, *, most: int, normalized: bool = True) -> int:
    """The largest sample (at most ``most`` rows) a fit fits in ``budget`` bytes; a budget too
    small for ``MIN_SAMPLE_ROWS`` (or for all of a smaller ``most``) is a SmecError that says
    what would fit."""
    footprint = fit_footprint(input_dim, cfg, normalized=normalized)
    rows = min(most, footprint.rows_for(budget))
    least = min(most, MIN_SAMPLE_ROWS)
    if rows < least:
        need = footprint.bytes_for(least)
        raise SmecError(f"a fit on {input_dim}-d vectors needs about {format_bytes(need)} for {least:,} sample rows "
                        f"(the least it trains on) but the memory budget is {format_bytes(budget)}; "
                        "raise --max-memory, or free memory")
    return rows

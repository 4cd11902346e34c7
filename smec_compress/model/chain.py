"""The trainable SMEC chain: ADS-pruned affine stages, one ``nn.Module``.

Stage i maps the previous stage's output (the input, for stage 0) with a square affine map
initialised to the PCA rotation of that input (so it starts exactly as good as PCA), plus, after
the first stage, a zero-initialised residual map from the input; ADS then keeps ``dims[i]`` of
its outputs. Everything is affine until the final L2 normalisation (none when the head keeps
norms), so a trained chain collapses into one (W, b) per dim for inference (``collapsed``):
applying a head needs no torch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import FitConfig
from .ads import ADS
from .pca import PCA


class Stage(nn.Module):
    """Square affine map over the previous output's ``width`` dims, plus (optionally) a residual
    path from the frozen input, followed by ADS keeping ``k`` of the outputs.

    The residual map starts at zero, so a stage starts exactly as PCA of its input; it lets a
    small dim reach directions outside the larger stage's subspace, which a pure chain cannot
    (a pure chain measured 3-4 nDCG points worse at 32 d on SciFact). The map stays square even
    with ADS off: training still draws the kept dims from Gumbel-perturbed logits, so every row
    of it trains.
    """

    def __init__(self, weight: Tensor, bias: Tensor, k: int, logits: Tensor, use_ads: bool,
                 input_dim: int | None = None) -> None:
        super().__init__()
        width = weight.shape[0]
        self.linear = nn.Linear(weight.shape[1], width)
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
        self.residual = None
        if input_dim is not None:
            self.residual = nn.Linear(input_dim, width, bias=False)
            nn.init.zeros_(self.residual.weight)
        self.ads = ADS(width, k, logits)
        self.ads.logits.requires_grad_(use_ads)

    def project(self, h: Tensor, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """``W h + b (+ R x)``: every output, or only the outputs ``rows`` (the kept dims). A stage
        is square over its input, so the first stage of a 4,096-d head is a 4,096 x 4,096 map of
        which 256 rows survive: computing only those is 16x less work (3x at 384 -> 128 d) for the
        same values and gradients (the other rows' gradients are zero either way)."""
        w, b = self.linear.weight, self.linear.bias
        r = None if self.residual is None else self.residual.weight
        if rows is not None:
            w, b = w.index_select(0, rows), b.index_select(0, rows)
            r = None if r is None else r.index_select(0, rows)
        u = F.linear(h, w, b)
        return u if r is None else u + F.linear(x, r)

    def forward(self, h: Tensor, x: Tensor, mask: Tensor, keep: Tensor) -> Tensor:
        """The pruned output: the ``keep`` dims times their mask, which is 1 there in value and
        carries ADS' straight-through gradient."""
        return self.project(h, x, keep) * mask.index_select(0, keep)


def pca_init(h: np.ndarray, *, center: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Rotation onto the principal axes of ``h``, centering bias (zero when not ``center``: a pure
    rotation keeps inner products, what a head that keeps norms preserves), and ADS logits that
    rank axes by variance (log scale), so top-k at init is exactly PCA. The moments are streamed
    (``PCA.partial_fit``), so memory is one chunk, not a float64 copy of the training set."""
    pca = PCA().fit(h)
    var = np.maximum(pca.explained_variance_, 1e-12)
    logits = np.clip(np.log(var / var[0]), -20.0, 0.0)
    rot = pca.components64_
    bias = -rot @ pca.mean64_ if center else np.zeros(len(rot))
    return torch.from_numpy(rot).float(), torch.from_numpy(bias).float(), torch.from_numpy(logits).float()


class Chain(nn.Module):
    """The stages in order, largest dim first; stage i outputs ``dims[i]`` dims."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList()

    def __len__(self) -> int:
        return len(self.stages)

    def add_stage(self, h: np.ndarray, k: int, cfg: FitConfig, input_dim: int) -> Stage:
        """Append a stage initialised to PCA of ``h``, its input (the chain's output so far)."""
        rot, bias, logits = pca_init(h, center=cfg.normalize)
        residual = cfg.residual and len(self.stages) > 0  # the first stage already sees the input
        stage = Stage(rot, bias, k, logits, cfg.ads, input_dim if residual else None)
        self.stages.append(stage)
        return stage

    @torch.no_grad()
    def run(self, x: Tensor, upto: int | None = None, *, chunk_rows: int = 65_536) -> Tensor:
        """Inference pass (deterministic ADS selection) through the first ``upto`` stages (all by
        default); no normalisation. With no stages this is ``x`` itself. Rows go through in chunks,
        so its (rows x dim) temporaries stay small: over a whole 1M x 384 sample, un-pruned,
        they were a second copy of it."""
        stages = list(self.stages)[:upto]
        if not stages or len(x) <= chunk_rows:
            return self._run(stages, x)
        out = torch.empty(len(x), stages[-1].ads.k)
        for start in range(0, len(x), chunk_rows):
            out[start : start + chunk_rows] = self._run(stages, x[start : start + chunk_rows])
        return out

    @staticmethod
    def _run(stages: list[Stage], x: Tensor) -> Tensor:
        h = x
        for st in stages:
            h = st.project(h, x, st.ads.selected())
        return h

    def collapse(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        """One affine map (W (d, D), b (d,)) equal to ``run(x, upto)``, in float64."""
        w, b = None, None
        for st in list(self.stages)[:upto]:
            keep = st.ads.selected().numpy()
            ws = st.linear.weight.detach().double().numpy()[keep]
            bs = st.linear.bias.detach().double().numpy()[keep]
            w, b = (ws, bs) if w is None else (ws @ w, ws @ b + bs)
            if st.residual is not None:
                w = w + st.residual.weight.detach().double().numpy()[keep]
        return w, b

    def collapsed(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{dim: (W (D, dim), b (dim,))} in float32: what a saved head applies."""
        out = {}
        for i, st in enumerate(self.stages):
            w, b = self.collapse(i + 1)
            out[st.ads.k] = (np.ascontiguousarray(w.T, dtype=np.float32), b.astype(np.float32))
        return out

    def raw_state(self) -> dict[str, np.ndarray]:
        """Each stage's own parameters and ADS selection, saved beside the collapsed maps."""
        raw = {}
        for i, st in enumerate(self.stages):
            raw[f"stage{i}.weight"] = st.linear.weight.detach().numpy().copy()
            raw[f"stage{i}.bias"] = st.linear.bias.detach().numpy().copy()
            raw[f"stage{i}.logits"] = st.ads.logits.detach().numpy().copy()
            raw[f"stage{i}.selected"] = st.ads.selected().numpy().copy()
        return raw

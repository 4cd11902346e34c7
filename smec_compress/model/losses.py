"""Training losses, as pure functions of similarity matrices.

Every function takes full-dim and compressed similarities of the same (anchor, candidate)
pairs, shape (B, C), and an optional validity mask (B, C) for padded or excluded candidates,
so they can be tested on hand-computed tensors without any model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Masked logits get this instead of -inf / finfo.min: after division by a small temperature
# finfo.min overflows to -inf and softmax of an all-masked row gives NaN; -1e4 stays finite.
MASK_VALUE = -1e4


def _masked_logits(sims: Tensor, temperature: float, valid: Tensor | None) -> Tensor:
    logits = sims / temperature
    return logits if valid is None else logits.masked_fill(~valid, MASK_VALUE)


def similarity_preservation(full: Tensor, comp: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean |cos_full - cos_compressed|: keeps the compressed geometry globally faithful."""
    diff = (full - comp).abs()
    if valid is None:
        return diff.mean()
    return (diff * valid).sum() / valid.sum().clamp(min=1)


@dataclass(frozen=True)
class RankTarget:
    """The teacher side of ``rank_kl``: softmax(full / t) over each anchor's valid candidates, as
    probabilities and their logs. It depends on the full-dim similarities only, so a step that
    scores several dims (the nested stages) computes it once, not once per dim."""

    p: Tensor  # (B, C), zero on invalid candidates
    log_p: Tensor  # (B, C)

    @classmethod
    def of(cls, full: Tensor, temperature: float, valid: Tensor | None = None) -> "RankTarget":
        log_p = F.log_softmax(_masked_logits(full, temperature, valid), dim=1)
        p = log_p.exp()
        return cls(p if valid is None else p * valid, log_p)


def rank_kl(full: Tensor | RankTarget, comp: Tensor, temperature: float, valid: Tensor | None = None) -> Tensor:
    """Mean over anchors of KL(softmax(full / t) || softmax(comp / t)) over candidates.

    With a small t the target distribution is concentrated on each anchor's nearest
    candidates, so this preserves the top of the ranking, which is what nDCG@10 rewards.
    ``full`` may be a ``RankTarget`` already computed from it (same ``temperature`` and ``valid``).
    """
    target = full if isinstance(full, RankTarget) else RankTarget.of(full, temperature, valid)
    q_log = F.log_softmax(_masked_logits(comp, temperature, valid), dim=1)
    return (target.p * (target.log_p - q_log)).sum(dim=1).mean()


def info_nce(sims: Tensor, temperature: float, valid: Tensor | None = None) -> Tensor:
    """Contrastive loss with the positive in column 0 and negatives in the other columns."""
    logits = _masked_logits(sims, temperature, valid)
    return F.cross_entropy(logits, torch.zeros(len(sims), dtype=torch.long, device=sims.device))

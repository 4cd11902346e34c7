"""Training losses, as pure functions of similarity matrices.

Every function takes full-dim and compressed similarities of the same (anchor, candidate)
pairs, shape (B, C), and an optional validity mask (B, C) for padded or excluded candidates,
so they can be tested on hand-computed tensors without any model.
"""

from __future__ import annotations

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


def rank_kl(full: Tensor, comp: Tensor, temperature: float, valid: Tensor | None = None) -> Tensor:
    """Mean over anchors of KL(softmax(full / t) || softmax(comp / t)) over candidates.

    With a small t the target distribution is concentrated on each anchor's nearest
    candidates, so this preserves the top of the ranking, which is what nDCG@10 rewards.
    """
    p_log = F.log_softmax(_masked_logits(full, temperature, valid), dim=1)
    q_log = F.log_softmax(_masked_logits(comp, temperature, valid), dim=1)
    p = p_log.exp()
    if valid is not None:
        p = p * valid
    return (p * (p_log - q_log)).sum(dim=1).mean()


def info_nce(sims: Tensor, temperature: float, valid: Tensor | None = None) -> Tensor:
    """Contrastive loss with the positive in column 0 and negatives in the other columns."""
    logits = _masked_logits(sims, temperature, valid)
    return F.cross_entropy(logits, torch.zeros(len(sims), dtype=torch.long, device=sims.device))

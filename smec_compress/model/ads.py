"""Adaptive dimension selection (ADS): learn which output dims of a stage survive.

Truncating to the first k dims (Matryoshka) or the first k PCA axes assumes importance is
known in advance. ADS instead keeps one learnable importance logit per dimension. In
training, the forward pass uses a hard 0/1 mask of the top-k of Gumbel-perturbed logits, so
the loss is always computed on exactly k dims (what inference will see), while the gradient
reaches the logits through a Gumbel-softmax relaxation (straight-through estimator). At
inference the k dims with the largest logits are kept, deterministically.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """0/1 float mask of the k largest scores; ties go to the lower index (stable sort), so
    the choice is deterministic."""
    order = torch.argsort(scores, descending=True, stable=True)
    mask = torch.zeros_like(scores)
    mask[order[:k]] = 1.0
    return mask


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None) -> Tensor:
    """Standard Gumbel samples drawn from ``generator`` so a fit is reproducible."""
    u = torch.rand(shape, generator=generator).clamp_(1e-9, 1.0 - 1e-9)
    return -torch.log(-torch.log(u))


class ADS(nn.Module):
    """Per-dimension importance logits over ``width`` dims, keeping ``k`` of them.

    ``init_logits`` lets a stage start from a known order (e.g. decreasing PCA variance), so
    at step 0 ADS picks the same dims PCA would and training can only move away from that
    when the loss says so.
    """

    def __init__(self, width: int, k: int, init_logits: Tensor | None = None) -> None:
        super().__init__()
        if not 1 <= k <= width:
            raise ValueError(f"k={k} must be in 1..{width}")
        self.k = k
        init = torch.zeros(width) if init_logits is None else init_logits.detach().clone().float()
        self.logits = nn.Parameter(init)

    def mask(self, tau: float = 1.0, noise: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """(width,) mask: straight-through hard top-k in training, plain top-k in eval.

        The forward value is exactly the hard mask (``soft - soft.detach()`` is 0); the
        gradient is that of ``k * softmax((logits + noise * g) / tau)``, which sums to k like
        the hard mask. Lower ``tau`` sharpens the relaxation; ``noise`` scales the Gumbel
        perturbation (annealed with tau by the trainer so the last steps see the inference
        selection).
        """
        if not self.training:
            return topk_mask(self.logits.detach(), self.k)
        perturbed = self.logits + noise * gumbel_noise(self.logits.shape, generator)
        soft = self.k * torch.softmax(perturbed / tau, dim=0)
        hard = topk_mask(perturbed.detach(), self.k)
        return hard + (soft - soft.detach())

    def selected(self) -> Tensor:
        """Indices of the k kept dims, in ascending position order (inference selection)."""
        return torch.nonzero(topk_mask(self.logits.detach(), self.k)).flatten()

"""Selectable cross-batch memory (S-XBM): hard neighbours from past batches.

A batch of 512 rows rarely contains an anchor's true nearest neighbours, yet those are the
pairs a compressed space most often gets wrong. The memory is a FIFO ring of the last
``size`` FULL-dim input vectors (plus their row ids). Inputs are frozen embeddings, so stored
entries never go stale; the trainer recomputes their compressed version through the current
head whenever it uses them. Selection is one matmul plus one ``topk`` for the whole batch.
"""

from __future__ import annotations

import torch
from torch import Tensor


class CrossBatchMemory:
    """FIFO queue of (vector, id) pairs with top-k similarity selection."""

    def __init__(self, size: int, dim: int) -> None:
        if size < 1:
            raise ValueError(f"memory size={size} must be >= 1")
        self.size = size
        self.vectors = torch.zeros(size, dim)
        self.ids = torch.full((size,), -1, dtype=torch.long)
        self._next = 0  # slot the next entry goes to
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def enqueue(self, vectors: Tensor, ids: Tensor) -> None:
        """Append a batch; once full, the oldest entries are overwritten first."""
        vectors, ids = vectors[-self.size :], ids[-self.size :]
        slots = (self._next + torch.arange(len(ids))) % self.size
        self.vectors[slots] = vectors.detach().to(self.vectors.dtype)
        self.ids[slots] = ids
        self._next = int((self._next + len(ids)) % self.size)
        self._count = min(self.size, self._count + len(ids))

    def stored(self) -> tuple[Tensor, Tensor]:
        """Stored (vectors, ids) in slot order: the indexing ``select`` returns refers to it."""
        return self.vectors[: self._count], self.ids[: self._count]

    def select(self, anchors: Tensor, k: int, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Top-k most similar stored entries per anchor (inner product of full-dim vectors).

        ``exclude`` is an (B, m) id tensor (-1 = no id): matching entries (the anchor itself,
        its known positives) are never selected. Returns slot indices (B, k') and their
        similarities (B, k'), k' = min(k, len(self)); a similarity is -inf (an invalid entry)
        only when fewer than k' non-excluded entries exist. Slots index ``stored()``.
        """
        vectors, ids = self.stored()
        k = min(k, self._count)
        sims = anchors @ vectors.T
        if exclude is not None:
            for j in range(exclude.shape[1]):  # loop over the few excluded ids, not anchors
                sims.masked_fill_(ids[None, :] == exclude[:, j : j + 1], float("-inf"))
        top, index = torch.topk(sims, k, dim=1)
        return index, top

    def draw(self, anchors: Tensor, k: int, pool: int, generator: torch.Generator,
             exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``k`` entries per anchor drawn uniformly, without replacement, from its ``pool``
        nearest (``select`` when ``pool <= k``). The very nearest unjudged documents of a query
        are often relevant but unlabelled, so always taking them trains on false negatives."""
        slots, top = self.select(anchors, max(k, pool), exclude)
        if slots.shape[1] <= k:
            return slots, top
        pick = torch.rand(slots.shape, generator=generator).argsort(dim=1)[:, :k]
        return slots.gather(1, pick), top.gather(1, pick)

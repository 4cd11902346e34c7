"""The SMEC training loop: sequential (or joint) training of the chain's ADS-pruned stages.

Stages train one after another, largest dim first; earlier stages are frozen. Each stage's
loss is taken at its own dim (and, when ``prev_dim_weight > 0``, also on its un-pruned output,
the previous dim: off by default, it measured worse). Targets are always the FULL-dim
similarities, never the previous stage's, so errors do not compound along the chain.
Candidates for each anchor are the other rows of the batch plus its most similar full-dim
neighbours from the cross-batch memory (S-XBM). With supervision, an InfoNCE term over
(query, relevant document) pairs is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import FitConfig
from ..errors import SmecError
from . import losses
from .chain import Chain
from .memory import CrossBatchMemory


def checked_positives(positives, n_queries: int, n_rows: int) -> np.ndarray:
    """``positives`` as an array after checking it holds one row index of X per query row."""
    pos = np.asarray(positives)
    if pos.ndim != 1 or len(pos) != n_queries:
        raise SmecError(f"positives must be a 1-D array with one index per query row ({n_queries}), got shape {pos.shape}")
    if not np.issubdtype(pos.dtype, np.integer):
        raise SmecError(f"positives must be integer row indices into X, got dtype {pos.dtype}")
    bad = (pos < 0) | (pos >= n_rows)
    if bad.any():
        raise SmecError(f"positives has {int(bad.sum())} index(es) outside 0..{n_rows - 1} "
                        f"(first: {int(pos[np.argmax(bad)])}); they must index rows of X")
    return pos


@dataclass
class Supervision:
    """Training pairs: query vectors (M, D), positive row index (M,), and per pair the ids of
    all positives of the same query (M, m), -1 padded, so those are never negatives."""

    queries: Tensor
    positives: Tensor
    relevant: Tensor

    @classmethod
    def from_pairs(cls, queries: np.ndarray, positives, n_rows: int) -> "Supervision":
        """Pairs as tensors, plus for each pair every positive of the same query (rows with
        identical query vectors are one query), so another relevant doc is never a negative."""
        pos = checked_positives(positives, len(queries), n_rows)
        _, group = np.unique(queries, axis=0, return_inverse=True)
        group = group.ravel()
        order = np.argsort(group, kind="stable")
        members = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
        width = max(len(m) for m in members)
        relevant = np.full((len(pos), width), -1, dtype=np.int64)
        for m in members:  # loop over queries (not anchors) once, at setup
            relevant[m, : len(m)] = pos[m]
        return cls(torch.from_numpy(queries), torch.from_numpy(pos.astype(np.int64)), torch.from_numpy(relevant))


@dataclass(frozen=True)
class FitProgress:
    """One finished training step, as reported to ``fit``'s progress callback."""

    stage: str  # e.g. "stage 2/5 -> 64d", or "joint"
    step: int  # 1-based
    total: int  # steps of this stage
    loss: float


Progress = Callable[[FitProgress], None]


def fit_chain(X: np.ndarray, cfg: FitConfig, sup: Supervision | None = None, progress: Progress | None = None) -> Chain:
    """Train the whole chain on rows ``X`` and return it (in eval mode)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    x = torch.from_numpy(X)
    space = Space.of(x, cfg.normalize)
    xn = space.rows(x)
    chain = Chain()
    if cfg.sequential:
        for i, k in enumerate(cfg.dims):
            h = chain.run(x)
            chain.add_stage(h.numpy(), k, cfg, x.shape[1])
            run = StageRun.build(chain, [i], h, x, xn, space, cfg, sup)
            _train(run, cfg, gen, f"stage {i + 1}/{len(cfg.dims)} -> {k}d", progress)
    else:
        for k in cfg.dims:
            chain.add_stage(chain.run(x).numpy(), k, cfg, x.shape[1])
        _train(StageRun.build(chain, list(range(len(chain))), x, x, xn, space, cfg, sup), cfg, gen, "joint", progress)
    chain.eval()
    return chain


def _normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1, eps=1e-12)


@dataclass(frozen=True)
class Space:
    """Where similarities are taken: cosine (``scale`` None: rows made unit), or, for a head that
    keeps norms, inner products of rows times one global ``scale`` (1 / the sample's RMS norm), so
    the losses see values of the size cosines have while ranking and relative norms stay as they are."""

    scale: float | None

    @classmethod
    def of(cls, x: Tensor, normalize: bool) -> "Space":
        if normalize:
            return cls(None)
        rms = float(torch.linalg.vector_norm(x, dim=1).square().mean().sqrt())
        return cls(1.0 / rms if rms > 0 else 1.0)

    def __call__(self, c: Tensor) -> Tensor:
        return _normalize(c) if self.scale is None else c * self.scale

    def rows(self, x: Tensor) -> Tensor:
        """The full-dim training rows in this space; ``x`` itself (no copy of the training set)
        when no change is needed: already unit rows, as sentence-transformers embeddings usually
        are, or a head that keeps norms (its scale is applied to the similarities, ``targets``)."""
        if self.scale is not None:
            return x
        norms = torch.linalg.vector_norm(x, dim=1)
        return x if torch.allclose(norms, torch.ones_like(norms), atol=1e-5) else _normalize(x)

    def targets(self, sims: Tensor) -> Tensor:
        """Inner products of ``rows`` as similarities in this space."""
        return sims if self.scale is None else sims * (self.scale * self.scale)


@dataclass
class StageRun:
    """What every step of one training run reads, and the step's ADS selection.

    ``h_in`` is the (frozen) input of the first trainable stage for every row, ``xn`` the
    full-dim rows (``space.rows``) that define the target similarities; ``masks``/``keeps`` are set
    anew at each step.
    """

    chain: Chain
    trainable: list[int]
    h_in: Tensor
    x: Tensor
    xn: Tensor
    space: Space
    memory: CrossBatchMemory | None
    weights: list[float]  # per scored output: the un-pruned one (if scored), then each trainable stage
    score_prev: bool
    sup: Supervision | None = None
    q_in: Tensor | None = None  # queries through the frozen stages
    qn: Tensor | None = None  # unit full-dim queries
    masks: list[Tensor] = field(default_factory=list)
    keeps: list[Tensor] = field(default_factory=list)

    @classmethod
    def build(cls, chain: Chain, trainable: list[int], h_in: Tensor, x: Tensor, xn: Tensor, space: Space,
              cfg: FitConfig, sup: Supervision | None) -> "StageRun":
        # L(dim_{i-1}) on the un-pruned output only when training one stage after the first.
        score_prev = cfg.sequential and trainable[0] > 0 and cfg.prev_dim_weight > 0
        weights = ([cfg.prev_dim_weight] if score_prev else []) + [1.0] * len(trainable)
        memory = CrossBatchMemory(cfg.memory_size, xn.shape[1]) if cfg.memory else None
        q_in = chain.run(sup.queries, trainable[0]) if sup else None
        qn = space.rows(sup.queries) if sup else None
        return cls(chain, trainable, h_in, x, xn, space, memory, weights, score_prev, sup, q_in, qn)

    @property
    def stages(self) -> list:
        return [self.chain.stages[i] for i in self.trainable]

    def forward(self, h: Tensor, x_rows: Tensor) -> list[Tensor]:
        """Outputs to score with this step's masks: the un-pruned output of the first trainable
        stage (if scored) and the pruned output of every trainable stage."""
        outs = []
        for j, (st, m, kp) in enumerate(zip(self.stages, self.masks, self.keeps)):
            if j == 0 and self.score_prev:
                u = st.project(h, x_rows)
                outs.append(u)
                h = (u * m).index_select(1, kp)
            else:
                h = st(h, x_rows, m, kp)
            outs.append(h)
        return outs


def _schedule(cfg: FitConfig, n: int) -> tuple[int, int, int]:
    """(batch size, steps per epoch, total steps): at least ``epochs_per_stage`` epochs and
    ``min_steps_per_stage`` steps, at most ``max_steps_per_stage`` steps."""
    bs = min(cfg.batch_size, n)
    steps_per_epoch = n // bs
    epochs = max(cfg.epochs_per_stage, math.ceil(cfg.min_steps_per_stage / steps_per_epoch))
    return bs, steps_per_epoch, max(1, min(epochs * steps_per_epoch, cfg.max_steps_per_stage))


def _train(run: StageRun, cfg: FitConfig, gen: torch.Generator, label: str, progress: Progress | None) -> None:
    """The one training loop. Each step forwards only the rows it scores (the batch plus its
    selected memory neighbours, deduplicated), with gradients on both sides of every pair."""
    stages = run.stages
    for st in stages:
        st.train()
    params = [p for st in stages for m in (st.linear, st.residual) if m is not None for p in m.parameters()]
    logits = [st.ads.logits for st in stages if st.ads.logits.requires_grad]
    groups = [{"params": params, "lr": cfg.lr}] + ([{"params": logits, "lr": cfg.ads_lr}] if logits else [])
    opt = torch.optim.Adam(groups)
    n = len(run.h_in)
    bs, steps_per_epoch, total = _schedule(cfg, n)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total)
    sup = run.sup
    sbs = min(cfg.supervised_batch_size, len(sup.positives)) if sup else 0
    sup_order, sup_pos = (torch.randperm(len(sup.positives), generator=gen), 0) if sup else (None, 0)
    step = 0
    for _ in range(math.ceil(total / steps_per_epoch)):
        order = torch.randperm(n, generator=gen)
        for s in range(min(steps_per_epoch, total - step)):
            frac = step / max(total - 1, 1)
            tau = cfg.ads_tau_start * (cfg.ads_tau_end / cfg.ads_tau_start) ** frac
            run.masks = [st.ads.mask(tau, cfg.ads_noise * (1.0 - frac), gen) for st in stages]
            run.keeps = [torch.nonzero(m.detach()).flatten() for m in run.masks]
            idx = order[s * bs : (s + 1) * bs]
            loss = _unsup_step(run, cfg, idx)
            if sup is not None:
                pairs = sup_order[sup_pos : sup_pos + sbs]
                loss = loss + cfg.supervised_weight * _sup_step(run, cfg, pairs, gen)
                sup_pos += sbs
                if sup_pos + sbs > len(sup_order):
                    sup_order, sup_pos = torch.randperm(len(sup.positives), generator=gen), 0
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if run.memory is not None:
                run.memory.enqueue(run.xn[idx], idx)
            step += 1
            if progress is not None:
                progress(FitProgress(label, step, total, loss.item()))
    for st in stages:
        st.eval()


def _unsup_loss(cfg: FitConfig, space: Space, c: Tensor, pos: Tensor, full: Tensor, valid: Tensor,
                target: losses.RankTarget) -> Tensor:
    """Similarity preservation + rank KL of each anchor (rows ``pos`` of ``c``) against every
    candidate (all rows of ``c``); ``valid`` (B, U) marks the pairs that count."""
    c = space(c)
    comp = c[pos] @ c.T  # (B, U)
    loss = cfg.kl_weight * losses.rank_kl(target, comp, cfg.temperature, valid)
    if cfg.sim_weight:  # 0 skips its (B, U) pass
        loss = loss + cfg.sim_weight * losses.similarity_preservation(full, comp, valid)
    return loss


def _unsup_step(run: StageRun, cfg: FitConfig, idx: Tensor) -> Tensor:
    """Loss of one batch. Candidates are the batch plus the S-XBM memory; each anchor keeps the
    other batch rows and its ``hard_negatives`` most similar memory entries (by full-dim
    similarity): the selection is a (B, U) mask over one dense matmul, with no per-anchor
    gathers, and every candidate row is forwarded once."""
    memory, xn = run.memory, run.xn
    fb = xn[idx]
    stored = idx if memory is None or len(memory) == 0 else torch.cat([idx, memory.stored()[1]])
    cand = torch.unique(stored)  # sorted row ids
    full = run.space.targets(fb @ xn[cand].T)  # (B, U) full-dim targets
    in_batch = torch.isin(cand, idx)[None, :]
    valid = cand[None, :] != idx[:, None]
    if cand.numel() - len(idx) > cfg.hard_negatives:
        hardest = full.masked_fill(~valid | in_batch, float("-inf")).topk(cfg.hard_negatives, dim=1).values[:, -1:]
        valid &= in_batch | (full >= hardest)
    outs = run.forward(run.h_in[cand], run.x[cand])
    pos = torch.searchsorted(cand, idx)  # where each anchor sits among the candidates
    target = losses.RankTarget.of(full, cfg.temperature, valid)  # one teacher for every scored dim
    return sum(w * _unsup_loss(cfg, run.space, c, pos, full, valid, target) for w, c in zip(run.weights, outs))


def _sup_loss(cfg: FitConfig, space: Space, cq: Tensor, cd: Tensor, cm: Tensor | None, valid: Tensor) -> Tensor:
    """InfoNCE of each query ``cq`` (b, d) against its positive (column 0), the other pairs'
    positives ``cd`` (b, d) and its hard memory negatives ``cm`` (b, k, d)."""
    cq, cd = space(cq), space(cd)
    qd = cq @ cd.T
    sims = [qd.diagonal()[:, None], qd]
    if cm is not None:
        sims.append(torch.einsum("bd,bkd->bk", cq, space(cm)))
    return losses.info_nce(torch.cat(sims, 1), cfg.supervised_temperature, valid)


def _sup_step(run: StageRun, cfg: FitConfig, pairs: Tensor, gen: torch.Generator) -> Tensor:
    """InfoNCE of a batch of (query, positive) pairs against the in-batch positives and memory
    negatives: the query's ``supervised_hard_negatives`` nearest non-relevant entries, or that
    many drawn at random from its ``supervised_negative_pool`` nearest (the very nearest
    unjudged documents are often relevant but unlabelled; drawing from 30 measured +3 nDCG
    points at 32 d on SciFact's unseen-doc queries over always taking the nearest 8)."""
    sup, memory = run.sup, run.memory
    pos, rel = sup.positives[pairs], sup.relevant[pairs]
    b = len(pairs)
    # in-batch doc j is a negative for query i unless it is one of query i's positives
    inbatch = ~(pos[None, :, None] == rel[:, None, :]).any(-1)
    valid = torch.cat([torch.ones(b, 1, dtype=torch.bool), inbatch], 1)
    mem_rows = None
    if memory is not None and len(memory) > 0:
        slots, top = memory.draw(run.qn[pairs], cfg.supervised_hard_negatives, cfg.supervised_negative_pool, gen, exclude=rel)
        mem_rows = memory.ids[slots]
        valid = torch.cat([valid, torch.isfinite(top)], 1)
    ids = pos if mem_rows is None else torch.cat([pos, mem_rows.flatten()])
    uniq, inv = torch.unique(ids, return_inverse=True)  # forward each document row once
    outs_d = run.forward(run.h_in[uniq], run.x[uniq])
    outs_q = run.forward(run.q_in[pairs], sup.queries[pairs])
    total = 0.0
    for w, cq, c in zip(run.weights, outs_q, outs_d):
        cm = None if mem_rows is None else c[inv[b:]].view(b, mem_rows.shape[1], -1)
        total = total + w * _sup_loss(cfg, run.space, cq, c[inv[:b]], cm, valid)
    return total

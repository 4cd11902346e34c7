"""The SMEC training loop: sequential (or joint) training of ADS-pruned affine stages.

Stage i maps the previous stage's output (the input, for stage 0) with a square affine map
initialised to the PCA rotation of that input (so it starts exactly as good as PCA), then
ADS keeps ``dims[i]`` of its outputs. Stages train one after another, largest dim first;
earlier stages are frozen. Each stage's loss is taken at its own dim and on its un-pruned
output (the previous dim), ``L_i = L(dim_{i-1}) + L(dim_i)``, so the nested dims stay
consistent. Targets are always the FULL-dim similarities, never the previous stage's, so
errors do not compound along the chain. Candidates for each anchor are the other rows of
the batch plus its top-k full-dim neighbours from the cross-batch memory (S-XBM).

Everything is affine until the final L2 normalisation, so a trained chain collapses into
one (W, b) per dim for inference (see ``collapse``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import losses
from .ads import ADS
from .baselines import PCA
from .config import FitConfig
from .memory import CrossBatchMemory


class Stage(nn.Module):
    """Square affine map over the previous output's ``width`` dims, plus (optionally) a residual
    path from the frozen input, followed by ADS keeping ``k`` of the outputs.

    The residual map starts at zero, so a stage starts exactly as PCA of its input; it lets a
    small dim reach directions outside the larger stage's subspace, which a pure chain cannot
    (a pure chain measured 3-4 nDCG points worse at 32 d on SciFact).
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

    def project(self, h: Tensor, x: Tensor) -> Tensor:
        """Un-pruned output: ``W h + b (+ R x)``."""
        u = self.linear(h)
        return u if self.residual is None else u + self.residual(x)

    def forward(self, h: Tensor, x: Tensor, mask: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """(un-pruned output, pruned output with the ``keep`` dims): masking then gathering
        keeps the straight-through gradient of the mask while passing k dims on."""
        u = self.project(h, x)
        return u, (u * mask).index_select(1, keep)


def pca_init(h: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Rotation onto the principal axes of ``h``, centering bias, and ADS logits that rank
    axes by variance (log scale), so top-k at init is exactly PCA. The moments are streamed
    (``PCA.partial_fit``), so memory is one chunk, not a float64 copy of the training set."""
    pca = PCA().fit(h)
    var = np.maximum(pca.explained_variance_, 1e-12)
    logits = np.clip(np.log(var / var[0]), -20.0, 0.0)
    rot = pca.components64_
    return (torch.from_numpy(rot).float(), torch.from_numpy(-rot @ pca.mean64_).float(),
            torch.from_numpy(logits).float())


def make_stage(h: np.ndarray, k: int, cfg: FitConfig, input_dim: int, first: bool) -> Stage:
    rot, bias, logits = pca_init(h)
    residual = cfg.residual and not first  # the first stage already sees the input
    return Stage(rot, bias, k, logits, cfg.ads, input_dim if residual else None)


@torch.no_grad()
def run_chain(stages: list[Stage], x: Tensor) -> Tensor:
    """Inference pass (deterministic ADS selection) through ``stages``; no normalisation."""
    h = x
    for st in stages:
        h = st.project(h, x).index_select(1, st.ads.selected())
    return h


def collapse(stages: list[Stage]) -> tuple[np.ndarray, np.ndarray]:
    """One affine map (W (d, D), b (d,)) equal to running ``stages`` at inference, in float64."""
    w, b = None, None
    for st in stages:
        keep = st.ads.selected().numpy()
        ws = st.linear.weight.detach().double().numpy()[keep]
        bs = st.linear.bias.detach().double().numpy()[keep]
        w, b = (ws, bs) if w is None else (ws @ w, ws @ b + bs)
        if st.residual is not None:
            w = w + st.residual.weight.detach().double().numpy()[keep]
    return w, b


def _unit_rows(x: Tensor) -> Tensor:
    """``x`` L2-normalised; ``x`` itself (no copy of the training set) when it already is,
    as sentence-transformers embeddings usually are."""
    norms = torch.linalg.vector_norm(x, dim=1)
    return x if torch.allclose(norms, torch.ones_like(norms), atol=1e-5) else _normalize(x)


def _normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=1, eps=1e-12)


def _unsup_loss(cfg: FitConfig, c: Tensor, pos: Tensor, full: Tensor, valid: Tensor) -> Tensor:
    """Similarity preservation + rank KL of each anchor (rows ``pos`` of ``c``) against every
    candidate (all rows of ``c``); ``valid`` (B, U) marks the pairs that count."""
    c = _normalize(c)
    comp = c[pos] @ c.T  # (B, U)
    loss = cfg.sim_weight * losses.similarity_preservation(full, comp, valid)
    return loss + cfg.kl_weight * losses.rank_kl(full, comp, cfg.temperature, valid)


def _sup_loss(cfg: FitConfig, cq: Tensor, cd: Tensor, cm: Tensor | None, valid: Tensor) -> Tensor:
    """InfoNCE of each query ``cq`` (b, d) against its positive (column 0), the other pairs'
    positives ``cd`` (b, d) and its hard memory negatives ``cm`` (b, k, d)."""
    cq, cd = _normalize(cq), _normalize(cd)
    qd = cq @ cd.T
    sims = [qd.diagonal()[:, None], qd]
    if cm is not None:
        sims.append(torch.einsum("bd,bkd->bk", cq, F.normalize(cm, dim=2, eps=1e-12)))
    return losses.info_nce(torch.cat(sims, 1), cfg.supervised_temperature, valid)


@dataclass
class Supervision:
    """Training pairs: query vectors (M, D), positive row index (M,), and per pair the ids of
    all positives of the same query (M, m), -1 padded, so those are never negatives."""

    queries: Tensor
    positives: Tensor
    relevant: Tensor


def fit_stages(X: np.ndarray, cfg: FitConfig, sup: Supervision | None = None) -> list[Stage]:
    """Train the whole chain and return its stages (in eval mode)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    x = torch.from_numpy(X)
    xn = _unit_rows(x)
    stages: list[Stage] = []
    if cfg.sequential:
        for i, k in enumerate(cfg.dims):
            h = run_chain(stages, x)
            stages.append(make_stage(h.numpy(), k, cfg, x.shape[1], first=i == 0))
            _train(stages, [i], h, x, xn, cfg, gen, sup, f"stage {i + 1}/{len(cfg.dims)} -> {k}d")
    else:
        h = x
        for i, k in enumerate(cfg.dims):
            stages.append(make_stage(h.numpy(), k, cfg, x.shape[1], first=i == 0))
            h = run_chain(stages, x)
        _train(stages, list(range(len(stages))), x, x, xn, cfg, gen, sup, "joint")
    for st in stages:
        st.eval()
    return stages


def _train(stages: list[Stage], trainable: list[int], h_in: Tensor, x: Tensor, xn: Tensor, cfg: FitConfig,
           gen: torch.Generator, sup: Supervision | None, label: str) -> None:
    """The one training loop. ``h_in`` is the (frozen) input of the first trainable stage for
    every row; ``xn`` the L2-normalised full-dim rows that define the target similarities.

    Each step forwards only the rows it scores (the batch plus its selected memory
    neighbours, deduplicated), with gradients on both sides of every pair.
    """
    train_stages = [stages[i] for i in trainable]
    for st in train_stages:
        st.train()
    q_in = run_chain(stages[: trainable[0]], sup.queries) if sup else None
    qn = _normalize(sup.queries) if sup else None
    params = [p for st in train_stages for m in (st.linear, st.residual) if m is not None for p in m.parameters()]
    logits = [st.ads.logits for st in train_stages if st.ads.logits.requires_grad]
    groups = [{"params": params, "lr": cfg.lr}] + ([{"params": logits, "lr": cfg.ads_lr}] if logits else [])
    opt = torch.optim.Adam(groups)
    n = len(h_in)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = n // bs
    epochs = max(cfg.epochs_per_stage, math.ceil(cfg.min_steps_per_stage / steps_per_epoch))
    total = max(1, min(epochs * steps_per_epoch, cfg.max_steps_per_stage))
    epochs = math.ceil(total / steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total)
    memory = CrossBatchMemory(cfg.memory_size, xn.shape[1]) if cfg.memory else None
    # L(dim_{i-1}) on the un-pruned output only when training one stage after the first.
    score_prev = cfg.sequential and trainable[0] > 0 and cfg.prev_dim_weight > 0
    weights = ([cfg.prev_dim_weight] if score_prev else []) + [1.0] * len(train_stages)
    sbs = min(cfg.supervised_batch_size, len(sup.positives)) if sup else 0
    sup_order, sup_pos = (torch.randperm(len(sup.positives), generator=gen), 0) if sup else (None, 0)
    step = 0
    with _progress(cfg, label, total) as advance:
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for s in range(min(steps_per_epoch, total - step)):
                frac = step / max(total - 1, 1)
                tau = cfg.ads_tau_start * (cfg.ads_tau_end / cfg.ads_tau_start) ** frac
                masks = [st.ads.mask(tau, cfg.ads_noise * (1.0 - frac), gen) for st in train_stages]
                keeps = [torch.nonzero(m.detach()).flatten() for m in masks]

                def forward(h: Tensor, x_rows: Tensor) -> list[Tensor]:
                    """Outputs to score: the un-pruned output of the first trainable stage
                    (if scored) and the pruned output of every trainable stage."""
                    outs = []
                    for j, (st, m, kp) in enumerate(zip(train_stages, masks, keeps)):
                        u, h = st(h, x_rows, m, kp)
                        if j == 0 and score_prev:
                            outs.append(u)
                        outs.append(h)
                    return outs

                idx = order[s * bs : (s + 1) * bs]
                loss = _unsup_step(cfg, idx, forward, h_in, x, xn, memory, weights)
                if sup is not None:
                    pairs = sup_order[sup_pos : sup_pos + sbs]
                    loss = loss + cfg.supervised_weight * _sup_step(
                        cfg, sup, pairs, forward, h_in, x, q_in, qn, memory, weights, gen)
                    sup_pos += sbs
                    if sup_pos + sbs > len(sup_order):
                        sup_order, sup_pos = torch.randperm(len(sup.positives), generator=gen), 0
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if memory is not None:
                    memory.enqueue(xn[idx], idx)
                step += 1
                advance(loss.item())
    for st in train_stages:
        st.eval()


def _gathered(forward, h_in: Tensor, x: Tensor, ids: Tensor) -> tuple[list[Tensor], Tensor]:
    """Forward the unique rows among ``ids`` once; return outputs and the inverse index."""
    uniq, inv = torch.unique(ids, return_inverse=True)
    return forward(h_in[uniq], x[uniq]), inv


def _unsup_step(cfg: FitConfig, idx: Tensor, forward, h_in: Tensor, x: Tensor, xn: Tensor,
                memory: CrossBatchMemory | None, weights: list[float]) -> Tensor:
    """Loss of one batch. Candidates are the batch plus the S-XBM memory; each anchor keeps the
    other batch rows and its ``hard_negatives`` most similar memory entries (by full-dim
    similarity): the selection is a (B, U) mask over one dense matmul, with no per-anchor
    gathers, and every candidate row is forwarded once."""
    fb = xn[idx]
    stored = idx if memory is None or len(memory) == 0 else torch.cat([idx, memory.stored()[1]])
    cand = torch.unique(stored)  # sorted row ids
    full = fb @ xn[cand].T  # (B, U) full-dim targets
    in_batch = torch.isin(cand, idx)[None, :]
    valid = cand[None, :] != idx[:, None]
    if cand.numel() - len(idx) > cfg.hard_negatives:
        hardest = full.masked_fill(~valid | in_batch, float("-inf")).topk(cfg.hard_negatives, dim=1).values[:, -1:]
        valid &= in_batch | (full >= hardest)
    outs = forward(h_in[cand], x[cand])
    pos = torch.searchsorted(cand, idx)  # where each anchor sits among the candidates
    return sum(w * _unsup_loss(cfg, c, pos, full, valid) for w, c in zip(weights, outs))


def _sup_step(cfg: FitConfig, sup: Supervision, pairs: Tensor, forward, h_in: Tensor, x: Tensor, q_in: Tensor,
              qn: Tensor, memory: CrossBatchMemory | None, weights: list[float], gen: torch.Generator) -> Tensor:
    """InfoNCE of a batch of (query, positive) pairs against the in-batch positives and memory
    negatives: the query's ``supervised_hard_negatives`` nearest non-relevant entries, or that
    many drawn at random from its ``supervised_negative_pool`` nearest (the very nearest
    unjudged documents are often relevant but unlabelled; drawing from 30 measured +3 nDCG
    points at 32 d on SciFact's unseen-doc queries over always taking the nearest 8)."""
    pos, rel = sup.positives[pairs], sup.relevant[pairs]
    b = len(pairs)
    # in-batch doc j is a negative for query i unless it is one of query i's positives
    inbatch = ~(pos[None, :, None] == rel[:, None, :]).any(-1)
    valid = torch.cat([torch.ones(b, 1, dtype=torch.bool), inbatch], 1)
    mem_rows = None
    if memory is not None and len(memory) > 0:
        slots, top = memory.draw(qn[pairs], cfg.supervised_hard_negatives, cfg.supervised_negative_pool, gen, exclude=rel)
        mem_rows = memory.ids[slots]
        valid = torch.cat([valid, torch.isfinite(top)], 1)
    ids = pos if mem_rows is None else torch.cat([pos, mem_rows.flatten()])
    outs_d, inv = _gathered(forward, h_in, x, ids)
    outs_q = forward(q_in[pairs], sup.queries[pairs])
    total = 0.0
    for w, cq, c in zip(weights, outs_q, outs_d):
        cm = None if mem_rows is None else c[inv[b:]].view(b, mem_rows.shape[1], -1)
        total = total + w * _sup_loss(cfg, cq, c[inv[:b]], cm, valid)
    return total


class _progress:
    """Rich progress bar for one stage showing the running loss; a no-op when disabled."""

    def __init__(self, cfg: FitConfig, label: str, total: int) -> None:
        self.enabled, self.label, self.total = cfg.progress, label, total

    def __enter__(self):
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), transient=False)
        self.bar.__enter__()
        task = self.bar.add_task(self.label, total=self.total, loss=math.nan)
        return lambda loss: self.bar.update(task, advance=1, loss=loss)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)

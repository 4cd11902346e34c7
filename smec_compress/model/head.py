"""The SMEC estimator: ``SMEC(dims=...).fit(X)`` then ``transform(X, dim)``.

Training needs torch (``train.py``); applying a fitted head does not: every trained dim is
stored as one collapsed affine map (W, b) that already includes the centering, so
``transform`` is a single float32 matmul, a bias add and an L2 normalisation in numpy.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..config import FitConfig
from ..errors import SmecError
from ..normalize import l2_normalize
from ..validation import check_fitted, check_matrix, check_served_dim

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


def _version() -> str:
    from .. import __version__

    return str(__version__)


@contextmanager
def _torch_threads(threads: int | None):
    """torch runs on ``threads`` inside (its own setting when None), and on what it had after."""
    import torch

    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise SmecError(f"threads={threads!r} must be a positive integer")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _checked_codec_args(X: np.ndarray, budgets, cfg: FitConfig, anchor_queries, anchor_ids):
    """The budgets (checked against the data and ``cfg``) and anchor queries, as float32 rows."""
    from .budgets import check_budgets

    budgets = check_budgets(budgets, X.shape[1], cfg.dims, learned=cfg.codec_steps > 0, rows=len(X),
                            normalize=cfg.normalize)
    if anchor_queries is not None:
        if not budgets:
            raise SmecError("anchor_queries are used by the codecs of budgets only: give budgets too")
        anchor_queries = check_matrix("anchor_queries", anchor_queries, input_dim=X.shape[1])
    if anchor_ids is not None and (anchor_queries is None or len(anchor_ids) != len(anchor_queries)):
        raise SmecError("anchor_ids name the rows of anchor_queries: give both, of the same length")
    return budgets, anchor_queries


def _held_back(queries: np.ndarray, positives: np.ndarray, n_rows: int, cfg: FitConfig):
    """The supervision to train on (None when every query is held back) and the held-back
    queries with their positive rows, as ``model.gate`` splits them."""
    from .gate import held_out_queries, split_queries
    from .train import Supervision

    split = split_queries(queries, cfg.supervised_validation, cfg.seed)
    held = held_out_queries(queries, positives, split.held)
    if not len(split.train):
        return None, held
    return Supervision.from_pairs(queries[split.train], positives[split.train], n_rows), held


VALIDATION_HELD_BACK = "held-back labelled queries"  # supervision_["validation"]: what the gate scored
VALIDATION_GIVEN = "validation queries"


def _validation(queries, positives, validation_queries, validation_positives, n_rows: int, cfg: FitConfig):
    """The supervision (every labelled pair) and the gate's validation queries with their positive
    rows, when the caller gives validation pairs of its own (e.g. a dev split's qrels) instead of
    holding back some training queries."""
    from .gate import held_out_queries
    from .train import Supervision, checked_positives

    if (validation_queries is None) != (validation_positives is None):
        raise SmecError("validation_queries and validation_positives must be given together")
    if cfg.supervised_validation == 0:
        raise SmecError("supervised_validation=0 trusts the labels at every dim: give no validation pairs then")
    v_queries = check_matrix("validation_queries", validation_queries, input_dim=queries.shape[1])
    v_positives = checked_positives(validation_positives, len(v_queries), n_rows)
    trained = {row.tobytes() for row in np.ascontiguousarray(queries)}
    fresh = np.flatnonzero([row.tobytes() not in trained for row in np.ascontiguousarray(v_queries)])
    if not len(fresh):  # a query trained on would flatter the supervised map: such pairs are left out
        raise SmecError("every validation query is also a training query: give queries of another split")
    return Supervision.from_pairs(queries, positives, n_rows), held_out_queries(v_queries, v_positives, fresh)


def _labelled(progress, label: str):
    """``progress`` with each step's stage named ``label`` first: a gated fit runs two schedules."""
    if progress is None:
        return None
    from dataclasses import replace

    return lambda p: progress(replace(p, stage=f"{label} {p.stage}"))


class SMEC:
    """Sequential Matryoshka embedding compression head (scikit-learn style estimator).

    ``__init__`` only stores the parameters, every one a keyword with its default taken from
    ``FitConfig`` (the single source, where each is documented); ``fit`` validates them and
    learns ``config_``, ``dims_``, ``input_dim_``, ``weights_`` ({dim: (W (D, dim), b (dim,))}),
    ``stages_state_`` (raw stage parameters), ``embedder_fingerprint_`` and, for a supervised fit
    that held back labelled queries, ``supervision_`` (which dims kept the supervised map, and the
    held-back scores that decided it; ``model.gate``).
    """

    def __init__(
        self,
        *,
        dims: tuple[int, ...] = FitConfig.dims,
        epochs_per_stage: int = FitConfig.epochs_per_stage,
        min_steps_per_stage: int = FitConfig.min_steps_per_stage,
        max_steps_per_stage: int = FitConfig.max_steps_per_stage,
        batch_size: int = FitConfig.batch_size,
        lr: float = FitConfig.lr,
        temperature: float = FitConfig.temperature,
        kl_weight: float = FitConfig.kl_weight,
        sim_weight: float = FitConfig.sim_weight,
        prev_dim_weight: float = FitConfig.prev_dim_weight,
        memory: bool = FitConfig.memory,
        memory_size: int = FitConfig.memory_size,
        hard_negatives: int = FitConfig.hard_negatives,
        ads: bool = FitConfig.ads,
        ads_lr: float = FitConfig.ads_lr,
        ads_tau_start: float = FitConfig.ads_tau_start,
        ads_tau_end: float = FitConfig.ads_tau_end,
        ads_noise: float = FitConfig.ads_noise,
        sequential: bool = FitConfig.sequential,
        residual: bool = FitConfig.residual,
        supervised_weight: float = FitConfig.supervised_weight,
        supervised_temperature: float = FitConfig.supervised_temperature,
        supervised_hard_negatives: int = FitConfig.supervised_hard_negatives,
        supervised_negative_pool: int = FitConfig.supervised_negative_pool,
        supervised_batch_size: int = FitConfig.supervised_batch_size,
        supervised_validation: float = FitConfig.supervised_validation,
        codec_steps: int = FitConfig.codec_steps,
        normalize: bool = FitConfig.normalize,
        seed: int = FitConfig.seed,
    ) -> None:
        self.dims = dims
        self.epochs_per_stage = epochs_per_stage
        self.min_steps_per_stage = min_steps_per_stage
        self.max_steps_per_stage = max_steps_per_stage
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.kl_weight = kl_weight
        self.sim_weight = sim_weight
        self.prev_dim_weight = prev_dim_weight
        self.memory = memory
        self.memory_size = memory_size
        self.hard_negatives = hard_negatives
        self.ads = ads
        self.ads_lr = ads_lr
        self.ads_tau_start = ads_tau_start
        self.ads_tau_end = ads_tau_end
        self.ads_noise = ads_noise
        self.sequential = sequential
        self.residual = residual
        self.supervised_weight = supervised_weight
        self.supervised_temperature = supervised_temperature
        self.supervised_hard_negatives = supervised_hard_negatives
        self.supervised_negative_pool = supervised_negative_pool
        self.supervised_batch_size = supervised_batch_size
        self.supervised_validation = supervised_validation
        self.codec_steps = codec_steps
        self.normalize = normalize
        self.seed = seed

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in FitConfig.field_names()}

    def fit(self, X, queries=None, positives=None, *, validation_queries=None, validation_positives=None,
            budgets=(), anchor_queries=None, anchor_ids=None, embedder_fingerprint: str | None = None,
            threads: int | None = None, progress=None, codec_progress=None) -> "SMEC":
        """Learn the head on rows ``X`` (N, D); with ``queries`` (M, D) and ``positives`` (M,)
        (index into X of each query's relevant row, one row per pair) also learn from pairs.
        A supervised fit is gated (``model.gate``): by default on ``supervised_validation`` of
        its labelled queries, held back; with ``validation_queries`` / ``validation_positives``
        (pairs as above, e.g. a dev split's) on those instead, and it trains on every pair.
        ``budgets`` (bytes per vector) then choose and fit a codec for each (``model.budgets``);
        ``anchor_queries`` (M, D), unlabelled queries such as a query log, join that choice and
        anchor the rank-trained codecs (the head's own training does not use them yet); their
        ``anchor_ids`` are kept as hashes, so ``eval`` can refuse a head anchored on its test queries.

        Run-time knobs, not model parameters (they change nothing in the result): ``threads``
        for torch (default: torch's own setting), ``progress``, called with a
        ``train.FitProgress`` after every step (the CLI draws its bar from it), and
        ``codec_progress(budget, candidate, recall)`` after each codec candidate is measured.
        """
        from .train import Supervision, checked_positives, fit_chain

        X = check_matrix("X", X)
        cfg = FitConfig.from_dict(self.get_params()).checked(X.shape[1], len(X))
        budgets, anchor_queries = _checked_codec_args(X, budgets, cfg, anchor_queries, anchor_ids)  # before training
        if (queries is None) != (positives is None):
            raise SmecError("queries and positives must be given together (supervised fit) or not at all")
        validated = validation_queries is not None or validation_positives is not None
        if validated and queries is None:
            raise SmecError("validation pairs check a supervised fit: give queries and positives too")
        sup = held = None
        if queries is not None:
            queries = check_matrix("queries", queries, input_dim=X.shape[1])
            positives = checked_positives(positives, len(queries), len(X))
            if validated:
                sup, held = _validation(queries, positives, validation_queries, validation_positives, len(X), cfg)
            elif cfg.supervised_validation > 0:
                sup, held = _held_back(queries, positives, len(X), cfg)
            else:
                sup = Supervision.from_pairs(queries, positives, len(X))
        with _torch_threads(threads):
            try:
                chain = fit_chain(X, cfg, sup, _labelled(progress, "supervised") if held and sup else progress)
                self._set_state(cfg, X.shape[1], chain.collapsed(), chain.raw_state(), embedder_fingerprint)
                if held:
                    self._keep_better_maps(X, cfg, held, supervised=sup is not None, progress=progress,
                                           source=VALIDATION_GIVEN if validated else VALIDATION_HELD_BACK)
                self._fit_codecs(X, budgets, anchor_queries, anchor_ids, codec_progress)
            except RuntimeError as e:  # torch reports a failed allocation as RuntimeError
                if "allocate" in str(e):
                    raise MemoryError(f"out of memory fitting on {len(X):,} x {X.shape[1]} rows") from e
                raise
        return self

    def _keep_better_maps(self, X: np.ndarray, cfg: FitConfig, held, *, supervised: bool, progress, source: str) -> None:
        """At each dim keep this (supervised) fit's map only where it scores the ``held`` back
        labelled queries clearly better than an unsupervised fit of the same settings (``model.gate``);
        record both scores in ``supervision_``. Without a supervised fit (every query held back)
        this fit already is the unsupervised one."""
        from .gate import clearly_better, score_dims
        from .train import fit_chain

        if supervised:
            chain = fit_chain(X, cfg, None, _labelled(progress, "unsupervised"))
            plain = SMEC(**cfg.to_dict())
            plain._set_state(cfg, X.shape[1], chain.collapsed(), chain.raw_state(), self.embedder_fingerprint_)
            ours, theirs = score_dims(self, X, *held), score_dims(plain, X, *held)
        else:
            plain, ours, theirs = self, {}, score_dims(self, X, *held)
        kept = [d for d in self.dims_ if d in ours and clearly_better(ours[d], theirs[d])]
        self.weights_ = {d: (self if d in kept else plain).weights_[d] for d in self.dims_}
        if plain is not self:
            self.stages_state_ = {**self.stages_state_, **{f"unsupervised.{k}": v for k, v in plain.stages_state_.items()}}
        self.supervision_ = {"held_out_queries": len(held[1]), "validation": source, "supervised_dims": kept,
                             "ndcg10_supervised": {str(d): float(v.mean()) for d, v in ours.items()},
                             "ndcg10_unsupervised": {str(d): float(v.mean()) for d, v in theirs.items()}}

    def fit_codecs(self, X, budgets, *, anchor_queries=None, anchor_ids=None, threads: int | None = None,
                   codec_progress=None) -> "SMEC":
        """Choose and fit the byte-budget codecs of this fitted head anew, keeping its float maps:
        as ``fit(..., budgets=...)`` does after training, so adding budgets or anchoring them on a
        query log (``anchor_queries`` / ``anchor_ids``, as in ``fit``) costs no retraining.
        Replaces every codec the head had."""
        check_fitted(self, "weights_")
        X = check_matrix("X", X, input_dim=self.input_dim_)
        budgets, anchor_queries = _checked_codec_args(X, budgets, self.config_, anchor_queries, anchor_ids)
        with _torch_threads(threads):
            self._fit_codecs(X, budgets, anchor_queries, anchor_ids, codec_progress)
        return self

    def _fit_codecs(self, X: np.ndarray, budgets, anchor_queries, anchor_ids, codec_progress) -> None:
        from .budgets import fit_budgets, id_hashes

        self.codecs_ = fit_budgets(self, X, budgets, seed=self.config_.seed, codec_steps=self.config_.codec_steps,
                                   queries=anchor_queries, on_candidate=codec_progress)
        self.anchors_ = 0 if anchor_queries is None else len(anchor_queries)
        self.anchor_ids_ = None if anchor_ids is None else id_hashes(anchor_ids)

    def _set_state(self, cfg: FitConfig, input_dim: int, weights: dict, raw: dict, fp: str | None) -> None:
        self.config_ = cfg
        self.input_dim_ = int(input_dim)
        self.dims_ = tuple(cfg.dims)
        self.weights_ = weights
        self.stages_state_ = raw
        self.embedder_fingerprint_ = fp
        self.codecs_ = {}
        self.anchors_, self.anchor_ids_ = 0, None  # unlabelled queries the codecs were anchored on
        self.supervision_ = None  # a gated supervised fit's held-back scores and kept dims (model/gate.py)

    # ------------------------------------------------------------------ byte budgets
    @property
    def budgets_(self) -> tuple[int, ...]:
        """The byte budgets this head has a codec for (``fit(..., budgets=...)``)."""
        check_fitted(self, "weights_")
        return tuple(sorted(self.codecs_))

    def _codec(self, budget: int):
        if budget not in self.budgets_:
            served = ", ".join(map(str, self.budgets_)) or "none: fit with budgets"
            raise SmecError(f"this head has no codec for {budget!r} bytes; its budgets: {served}")
        return self.codecs_[budget]

    def encode(self, X, *, budget: int) -> np.ndarray:
        """``(N, bytes)`` uint8 codes of ``X`` with the codec chosen for ``budget``."""
        from .budgets import view

        bc = self._codec(budget)
        return bc.codec.encode(view(self, X, bc.candidate))

    def search(self, codes: np.ndarray, queries, k: int, *, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, row indices)`` of ``codes`` (from ``encode``) for float ``queries``:
        the asymmetric search of the budget's codec (float query against the codes)."""
        from .budgets import view

        bc = self._codec(budget)
        return bc.codec.search(codes, view(self, queries, bc.candidate), k)

    def score(self, queries, codes: np.ndarray, *, budget: int) -> np.ndarray:
        """``(n_queries, n_codes)`` asymmetric scores of float ``queries`` against ``codes``: the
        scores ``search`` ranks by, for every code (re-ranked sign bits: the float query against
        each +-1 code). For your own store or re-ranking; ``search`` is the fast path for a top-k."""
        codes = np.asarray(codes)
        scores, rows = self.search(codes, queries, len(codes), budget=budget)
        out = np.full((len(scores), len(codes)), -np.inf, np.float32)
        np.put_along_axis(out, np.where(rows >= 0, rows, 0), np.where(rows >= 0, scores, -np.inf), 1)
        return out

    # ------------------------------------------------------------------------ inference
    def check_dim(self, dim: int, *, what: str = "dim") -> None:
        """Refuse a dim this head was not trained for, listing those it was."""
        check_fitted(self, "weights_")
        check_served_dim(dim, self.dims_, what=what)

    def linear_map(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The head at ``dim`` as one affine map, ``(w (D, dim), b (dim,))``: ``transform`` is
        ``x @ w + b``, made unit unless the head keeps norms (copies: what a codec trained in the
        loop starts from)."""
        self.check_dim(dim)
        w, b = self.weights_[dim]
        return np.array(w, dtype=np.float32), np.array(b, dtype=np.float32)

    def transform(self, X, dim: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """(N, dim) float32 vectors: one matmul with the collapsed map, L2-normalised unless the
        head keeps norms (``normalize=False``).

        ``out``, a C-contiguous (N, dim) float32 array, receives the result instead of a new
        array: streaming callers reuse buffers, since first-touching fresh memory can cost as
        much as the matmul itself (bench/scale.py).
        """
        self.check_dim(dim)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.input_dim_:
            raise SmecError(f"X has shape {X.shape}; this head expects (rows, {self.input_dim_})")
        if X.dtype != np.float32:
            X = X.astype(np.float32)
        w, b = self.weights_[dim]
        if out is not None and (out.shape != (len(X), dim) or out.dtype != np.float32 or not out.flags.c_contiguous):
            raise SmecError(f"out must be a C-contiguous float32 array of shape {(len(X), dim)}, got {out.dtype} {out.shape}")
        z = np.matmul(X, w, out=out)
        z += b
        return l2_normalize(z, out=z) if self.config_.normalize else z

    @property
    def fingerprint(self) -> str:
        """Short hash of the collapsed weights: two heads with the same value transform alike."""
        check_fitted(self, "weights_")
        h = hashlib.sha256()
        for d in self.dims_:
            w, b = self.weights_[d]
            h.update(str(d).encode())
            h.update(np.ascontiguousarray(w).tobytes())
            h.update(np.ascontiguousarray(b).tobytes())
        return h.hexdigest()[:12]

    def check_input(self, input_dim: int, embedder_fingerprint: str | None, force: bool = False) -> None:
        """Refuse vectors from another embedder: a dimension mismatch always, a different
        embedder fingerprint unless ``force`` (skipped when either side is unknown)."""
        check_fitted(self, "weights_")
        if int(input_dim) != self.input_dim_:
            raise SmecError(f"input vectors have {input_dim} dims but this head was trained on {self.input_dim_}")
        fp = self.embedder_fingerprint_
        if not force and fp is not None and embedder_fingerprint is not None and fp != embedder_fingerprint:
            raise SmecError(f"embedder fingerprint {embedder_fingerprint} differs from the one this head was "
                            f"trained on ({fp}); pass force to use it anyway")

    # --------------------------------------------------------------------- persistence
    def save(self, directory) -> Path:
        """Write ``weights.safetensors`` (collapsed maps + raw stage params) and ``config.json``,
        each atomically."""
        from safetensors.numpy import save

        from ..data.atomic import atomic_file, write_text

        check_fitted(self, "weights_")
        out = Path(directory)
        tensors = {}
        for d, (w, b) in self.weights_.items():
            tensors[f"dim{d}.weight"] = np.ascontiguousarray(w)
            tensors[f"dim{d}.bias"] = np.ascontiguousarray(b)
        tensors.update({f"raw.{k}": np.ascontiguousarray(v) for k, v in self.stages_state_.items()})
        with atomic_file(out / WEIGHTS_FILE) as tmp:
            tmp.write_bytes(save(tensors))
        meta = {"format": "smec-compress", "library_version": _version(), "input_dim": self.input_dim_,
                "dims": list(self.dims_), "config": self.config_.to_dict(),
                "embedder_fingerprint": self.embedder_fingerprint_, "fingerprint": self.fingerprint,
                "supervision": self.supervision_}
        write_text(out / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
        from .budgets import save_budgets

        save_budgets(self.codecs_, out, anchors=self.anchors_, anchor_ids=self.anchor_ids_)  # none: removes stale files
        return out

    @classmethod
    def load(cls, directory) -> "SMEC":
        """Read a head written by ``save`` (by this release or an earlier one); missing or corrupt
        files raise SmecError naming them."""
        from safetensors.numpy import load_file

        src = Path(directory)
        cfg_path, w_path = src / CONFIG_FILE, src / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise SmecError(f"missing file {p}: not a saved SMEC head directory")
        try:
            meta = json.loads(cfg_path.read_text())
            cfg = FitConfig.from_dict(meta["config"])
            input_dim = int(meta["input_dim"])
        except (ValueError, KeyError, TypeError) as e:
            raise SmecError(f"corrupt file {cfg_path}: {e}") from None
        try:
            tensors = load_file(str(w_path))
        except Exception as e:  # safetensors raises its own error types
            raise SmecError(f"corrupt file {w_path}: {e}") from None
        weights = {}
        for d in cfg.dims:
            try:
                w, b = tensors[f"dim{d}.weight"], tensors[f"dim{d}.bias"]
            except KeyError:
                raise SmecError(f"corrupt file {w_path}: no weights for dim {d}") from None
            if w.shape != (input_dim, d) or b.shape != (d,):
                raise SmecError(f"corrupt file {w_path}: dim {d} weights have shape {w.shape}")
            weights[d] = (w, b)
        raw = {k[4:]: v for k, v in tensors.items() if k.startswith("raw.")}
        from .budgets import load_budgets

        head = cls(**cfg.to_dict())
        head._set_state(cfg, input_dim, weights, raw, meta.get("embedder_fingerprint"))
        head.supervision_ = meta.get("supervision")
        head.codecs_, head.anchors_, head.anchor_ids_ = load_budgets(src)
        return head

    # ------------------------------------------------------------------ integrations
    def to_sentence_transformers(self, model, dim: int):
        """A copy of ``model`` whose ``encode`` returns this head's ``dim``-d vectors (see
        ``export.sentence_transformers``)."""
        from ..export.sentence_transformers import with_head

        return with_head(model, self, dim)

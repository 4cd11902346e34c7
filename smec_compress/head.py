"""The SMEC estimator: ``SMEC(dims=...).fit(X)`` then ``transform(X, dim)``.

Training needs torch (``train.py``); applying a fitted head does not: every trained dim is
stored as one collapsed affine map (W, b) that already includes the centering, so
``transform`` is a single float32 matmul, a bias add and an L2 normalisation in numpy.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import SmecError
from .config import FitConfig

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
MIN_ROWS = 32


def _version() -> str:
    try:
        from . import __version__
        return str(__version__)
    except ImportError:
        return "0.1.0"


def _check_matrix(name: str, a, input_dim: int | None = None) -> np.ndarray:
    """float32 2-D array with only finite values, or SmecError saying what is wrong."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise SmecError(f"{name} must be a 2-D array (rows, dims), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise SmecError(f"{name} must be numeric, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    bad = np.zeros(len(a), dtype=bool)
    for i in range(0, len(a), 65_536):  # chunks: no full-size boolean temporary
        bad[i : i + 65_536] = ~np.isfinite(a[i : i + 65_536]).all(axis=1)
    if bad.any():
        raise SmecError(f"{name} has {int(bad.sum())} row(s) with NaN or inf values "
                        f"(first at row {int(np.argmax(bad))}); drop or re-embed them")
    if input_dim is not None and a.shape[1] != input_dim:
        raise SmecError(f"{name} has {a.shape[1]} dims but the head expects {input_dim}")
    return a


class SMEC:
    """Sequential Matryoshka embedding compression head (scikit-learn style estimator).

    ``SMEC(**params)`` only stores parameters (the fields of ``FitConfig``); ``fit`` validates
    them and learns ``dims_``, ``input_dim_``, ``weights_`` ({dim: (W (D, dim), b (dim,))}),
    ``stages_state_`` (raw stage parameters) and ``embedder_fingerprint_``.
    """

    def __init__(self, **params) -> None:
        unknown = sorted(set(params) - set(FitConfig.field_names()))
        if unknown:
            raise SmecError(f"unknown SMEC parameter(s) {unknown}; allowed: {FitConfig.field_names()}")
        defaults = FitConfig()
        for name in FitConfig.field_names():
            setattr(self, name, params.get(name, getattr(defaults, name)))

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in FitConfig.field_names()}

    # ----------------------------------------------------------------------------- fit
    def _config(self, input_dim: int, n_rows: int) -> FitConfig:
        p = self.get_params()
        try:
            dims = tuple(int(d) for d in p["dims"])
        except (TypeError, ValueError):
            raise SmecError(f"dims={p['dims']!r} must be a sequence of integers") from None
        if not dims:
            raise SmecError("dims=() must list at least one target dimension")
        if any(b >= a for a, b in zip(dims, dims[1:])):
            raise SmecError(f"dims={list(dims)} must be strictly decreasing (e.g. [128, 64, 32])")
        if dims[-1] < 1 or dims[0] >= input_dim:
            raise SmecError(f"dims={list(dims)} must all be in 1..{input_dim - 1} (input has {input_dim} dims)")
        _in_range("epochs_per_stage", p["epochs_per_stage"], 1, 10_000)
        _in_range("min_steps_per_stage", p["min_steps_per_stage"], 0, 10_000_000)
        _in_range("max_steps_per_stage", p["max_steps_per_stage"], 1, 10_000_000)
        _in_range("batch_size", p["batch_size"], 2, 1 << 20)
        _in_range("memory_size", p["memory_size"], 1, 1 << 24)
        _in_range("hard_negatives", p["hard_negatives"], 1, 1 << 16)
        _in_range("supervised_hard_negatives", p["supervised_hard_negatives"], 1, 1 << 16)
        _in_range("supervised_negative_pool", p["supervised_negative_pool"], 0, 1 << 16)
        _in_range("supervised_batch_size", p["supervised_batch_size"], 2, 1 << 20)
        _in_range("threads", p["threads"], 1, 1024)
        for name in ("lr", "ads_lr", "temperature", "supervised_temperature", "ads_tau_start", "ads_tau_end"):
            if not (isinstance(p[name], (int, float)) and 0 < p[name] < float("inf")):
                raise SmecError(f"{name}={p[name]!r} must be a positive finite number")
        for name in ("kl_weight", "sim_weight", "recon_weight", "prev_dim_weight", "supervised_weight", "ads_noise"):
            if not (isinstance(p[name], (int, float)) and 0 <= p[name] < float("inf")):
                raise SmecError(f"{name}={p[name]!r} must be a finite number >= 0")
        if n_rows < MIN_ROWS:
            raise SmecError(f"X has {n_rows} rows; SMEC needs at least {MIN_ROWS} to learn from")
        return replace(FitConfig(), **{**p, "dims": dims})

    def fit(self, X, queries=None, positives=None, *, embedder_fingerprint: str | None = None) -> "SMEC":
        """Learn the head on rows ``X`` (N, D); with ``queries`` (M, D) and ``positives`` (M,)
        (index into X of each query's relevant row, one row per pair) also learn from pairs."""
        import torch

        from .train import Supervision, fit_stages

        X = _check_matrix("X", X)
        cfg = self._config(X.shape[1], len(X))
        sup = None
        if (queries is None) != (positives is None):
            raise SmecError("queries and positives must be given together (supervised fit) or not at all")
        if queries is not None:
            sup = _supervision(_check_matrix("queries", queries, X.shape[1]), positives, len(X))
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            stages = fit_stages(X, cfg, sup)
        except RuntimeError as e:  # torch reports a failed allocation as RuntimeError
            if "allocate" in str(e):
                raise MemoryError(f"out of memory fitting on {len(X):,} x {X.shape[1]} rows") from e
            raise
        finally:
            torch.set_num_threads(previous_threads)
        self._set_state(cfg, X.shape[1], _collapse_all(stages), _raw_state(stages), embedder_fingerprint)
        return self

    def _set_state(self, cfg: FitConfig, input_dim: int, weights: dict, raw: dict, fp: str | None) -> None:
        self.config_ = cfg
        self.input_dim_ = int(input_dim)
        self.dims_ = tuple(cfg.dims)
        self.weights_ = weights
        self.stages_state_ = raw
        self.embedder_fingerprint_ = fp

    # ------------------------------------------------------------------------ inference
    def _fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise SmecError("this SMEC head is not fitted yet; call fit(X) or SMEC.load(dir)")

    def transform(self, X, dim: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """(N, dim) float32 L2-normalised vectors: one matmul with the collapsed map.

        ``out``, a C-contiguous (N, dim) float32 array, receives the result instead of a new
        array: streaming callers reuse buffers, since first-touching fresh memory can cost as
        much as the matmul itself (bench/scale.py).
        """
        self._fitted()
        if dim not in self.weights_:
            raise SmecError(f"dim={dim} was not trained; this head has dims {list(self.dims_)}")
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
        norms = np.sqrt(np.einsum("ij,ij->i", z, z))
        np.maximum(norms, 1e-12, out=norms)
        z /= norms[:, None]
        return z

    @property
    def fingerprint(self) -> str:
        """Short hash of the collapsed weights: two heads with the same value transform alike."""
        self._fitted()
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
        self._fitted()
        if int(input_dim) != self.input_dim_:
            raise SmecError(f"input vectors have {input_dim} dims but this head was trained on {self.input_dim_}")
        fp = self.embedder_fingerprint_
        if not force and fp is not None and embedder_fingerprint is not None and fp != embedder_fingerprint:
            raise SmecError(f"embedder fingerprint {embedder_fingerprint} differs from the one this head was "
                            f"trained on ({fp}); pass force to use it anyway")

    # --------------------------------------------------------------------- persistence
    def save(self, directory) -> Path:
        """Write ``weights.safetensors`` (collapsed maps + raw stage params) and ``config.json``."""
        from safetensors.numpy import save_file

        self._fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for d, (w, b) in self.weights_.items():
            tensors[f"dim{d}.weight"] = np.ascontiguousarray(w)
            tensors[f"dim{d}.bias"] = np.ascontiguousarray(b)
        tensors.update({f"raw.{k}": np.ascontiguousarray(v) for k, v in self.stages_state_.items()})
        save_file(tensors, str(out / WEIGHTS_FILE))
        meta = {"format": "smec-compress", "library_version": _version(), "input_dim": self.input_dim_,
                "dims": list(self.dims_), "config": self.config_.to_dict(),
                "embedder_fingerprint": self.embedder_fingerprint_, "fingerprint": self.fingerprint}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, directory) -> "SMEC":
        """Read a head written by ``save``; missing or corrupt files raise SmecError naming them."""
        from safetensors.numpy import load_file

        src = Path(directory)
        cfg_path, w_path = src / CONFIG_FILE, src / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise SmecError(f"missing file {p}: not a saved SMEC head directory")
        try:
            meta = json.loads(cfg_path.read_text())
            config = meta["config"]
            cfg = replace(FitConfig(), **{**config, "dims": tuple(config["dims"])})
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
        head = cls(**{k: v for k, v in config.items()})
        head._set_state(cfg, input_dim, weights, raw, meta.get("embedder_fingerprint"))
        return head

    # ------------------------------------------------------------------ integrations
    def to_sentence_transformers(self, model, dim: int):
        """A copy of ``model`` whose ``encode`` returns this head's ``dim``-d vectors: the
        collapsed map as a Dense layer (identity activation), then a Normalize layer."""
        import torch
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize

        self._fitted()
        if dim not in self.weights_:
            raise SmecError(f"dim={dim} was not trained; this head has dims {list(self.dims_)}")
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        out_dim = get_dim()
        if out_dim is not None and out_dim != self.input_dim_:
            raise SmecError(f"the model outputs {out_dim} dims but this head was trained on {self.input_dim_}")
        w, b = self.weights_[dim]
        dense = Dense(self.input_dim_, dim, bias=True, activation_function=torch.nn.Identity(),
                      init_weight=torch.from_numpy(np.ascontiguousarray(w.T)), init_bias=torch.from_numpy(b.copy()))
        new = copy.deepcopy(model)
        new.append(dense.to(next(new.parameters()).device))
        new.append(Normalize())
        return new


def _in_range(name: str, value, lo: int, hi: int) -> None:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and lo <= value <= hi):
        raise SmecError(f"{name}={value!r} must be an integer in {lo}..{hi}")


def _supervision(queries: np.ndarray, positives, n_rows: int):
    """Pairs as tensors, plus for each pair every positive of the same query (rows with
    identical query vectors are one query), so another relevant doc is never a negative."""
    import torch

    from .train import Supervision

    pos = np.asarray(positives)
    if pos.ndim != 1 or len(pos) != len(queries):
        raise SmecError(f"positives must be a 1-D array with one index per query row ({len(queries)}), got shape {pos.shape}")
    if not np.issubdtype(pos.dtype, np.integer):
        raise SmecError(f"positives must be integer row indices into X, got dtype {pos.dtype}")
    bad = (pos < 0) | (pos >= n_rows)
    if bad.any():
        raise SmecError(f"positives has {int(bad.sum())} index(es) outside 0..{n_rows - 1} "
                        f"(first: {int(pos[np.argmax(bad)])}); they must index rows of X")
    _, group = np.unique(queries, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
    width = max(len(m) for m in members)
    relevant = np.full((len(pos), width), -1, dtype=np.int64)
    for m in members:  # loop over queries (not anchors) once, at setup
        relevant[m, : len(m)] = pos[m]
    return Supervision(torch.from_numpy(queries), torch.from_numpy(pos.astype(np.int64)), torch.from_numpy(relevant))


def _collapse_all(stages) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    from .train import collapse

    out = {}
    for i, st in enumerate(stages):
        w, b = collapse(stages[: i + 1])
        out[st.ads.k] = (np.ascontiguousarray(w.T, dtype=np.float32), b.astype(np.float32))
    return out


def _raw_state(stages) -> dict[str, np.ndarray]:
    raw = {}
    for i, st in enumerate(stages):
        raw[f"stage{i}.weight"] = st.linear.weight.detach().numpy().copy()
        raw[f"stage{i}.bias"] = st.linear.bias.detach().numpy().copy()
        raw[f"stage{i}.logits"] = st.ads.logits.detach().numpy().copy()
        raw[f"stage{i}.selected"] = st.ads.selected().numpy().copy()
    return raw

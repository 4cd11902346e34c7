"""The parameters of a SMEC fit, in a module of their own so that loading and applying a head
(which only needs them to describe itself) never imports torch: ``compress`` and ``--help`` start
without the 2-3 s torch import; ``fit`` imports the training loop when it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import SmecError
from .validation import check_int, check_number

MIN_ROWS = 32  # fewer rows than this is too little to learn a head from


@dataclass(frozen=True)
class FitConfig:
    """Every knob of a fit. Defaults are chosen on the mean over every shared dataset (SciFact,
    NFCorpus, CISI; all-MiniLM-L6-v2), not on SciFact alone: BENCHMARKS "Fit speed" (the schedule)
    and "Defaults across datasets" (``bench/defaults.py``: each knob flipped alone, paired with the
    baseline fit, same seed; a flip wins only where it is better on the mean over datasets and dims
    and at more than half the dims; the baseline is the defaults before lr moved), and, for a fit at
    scale, neighbour recall on a 1M-row sample ("Fit at scale"). Knobs not listed there were measured on SciFact only."""

    dims: tuple[int, ...] = (128, 64, 48, 32, 16)
    # 40 epochs of joint training: within 0.005 of 0.1.0's sequential 20-epoch default at every dim on
    # SciFact (3 seeds) and above it on NFCorpus and CISI; 20 joint epochs fell 0.008 short at SciFact 48 d
    epochs_per_stage: int = 40
    min_steps_per_stage: int = 300  # small corpora get more epochs: 60 steps under-trained a 1k-doc sample
    max_steps_per_stage: int = 2000  # large corpora get fewer epochs: 2000 x 256 rows is ~0.5M rows per stage
    # 512 (half the steps): -0.003 on the mean over the 3 datasets and dims (3 seeds), better at 1 of 4
    # dims (NFCorpus -0.006 to -0.008 at every dim)
    batch_size: int = 256
    # 3e-3 (the default since 2026-12-03, against 1e-3 before): +0.004 on the mean over the 3 datasets,
    # 3 seeds, better at every dim, and within 0.005 of 1e-3 on every dataset and dim (CISI 64 d -0.004).
    # With sim_weight 0 as well: +0.006 (noise apart), but CISI -0.008 at 48 d and, on a 1M x 384 fit,
    # neighbour recall@10 -0.014 at 128 d (BENCHMARKS "Fit at scale"). 1e-2: +0.007, CISI -0.007 at 48 d;
    # 3e-4: -0.007 (seed 0). Supervised at 3e-3 measured with sim_weight 0 only (seed 0: +0.006).
    lr: float = 3e-3
    # softmax temperature of the rank-KL term; 0.02: -0.012 on the mean (seed 0), 0.1: -0.007
    temperature: float = 0.05
    kl_weight: float = 1.0
    # mean |cos_full - cos_compressed|: 0 is +0.002 on the mean over 3 datasets and seeds (noise; CISI
    # -0.005 at 64 d) but keeps less of the neighbourhoods at scale: joint 1M x 384 fit at lr 3e-3,
    # recall@10 at 128 d 0.216 with 1, 0.202 with 0 (BENCHMARKS "Fit at scale"); its pass costs ~20% of a step
    sim_weight: float = 1.0
    # SMRL's L(dim_{i-1}) on the un-pruned output of the stage before, so sequential=True only (joint
    # training trains every stage at once: no earlier stage's output to keep); 1.0 measured worse there
    prev_dim_weight: float = 0.0
    memory: bool = True  # S-XBM; off (in-batch candidates only): -0.007 on the mean, worse at every dim
    memory_size: int = 8192  # 2048: -0.001 on the mean (seed 0), better at 1 of 4 dims
    # memory neighbours per anchor for the unsupervised terms; 256: -0.0002 on the mean (seed 0),
    # better at 2 of 4 dims
    hard_negatives: int = 1024
    # True enables ADS: -0.001 on the mean over the 3 datasets, better at 16 d only (SciFact -0.015 at
    # 32 d), so the cheaper fit stays
    ads: bool = False
    ads_lr: float = 1e-2
    ads_tau_start: float = 1.0
    ads_tau_end: float = 0.05
    ads_noise: float = 1.0
    # False: all stages train at once on the sum of the nested losses (one schedule, not one per stage):
    # 1M x 384 fits in 8 min instead of 12.5 (BENCHMARKS "Fit at scale"); True is SMRL's sequential stages
    sequential: bool = False
    # stages after the first also see the input through a zero-init map; off: -0.001 on the mean, better
    # at 48 d only
    residual: bool = True
    # gated SciFact fits ("Defaults across datasets", one seed; NFCorpus not measured yet): 1.0 gains
    # +0.003 on all test queries but loses 0.012 on those whose documents no label names; 0.25 loses
    # on both (-0.016 / -0.003)
    supervised_weight: float = 0.5
    supervised_temperature: float = 0.05
    supervised_hard_negatives: int = 8
    supervised_negative_pool: int = 30  # draw the hard negatives at random from this many nearest (0: the nearest)
    supervised_batch_size: int = 256
    # share of the labelled queries a supervised fit holds back: at each dim the supervised map is kept
    # only where it ranks their positives better than an unsupervised fit does, by more than chance
    # (model/gate.py), so scarce labels cannot pull a dim below the unsupervised head; 0 trusts the
    # labels at every dim
    supervised_validation: float = 0.2
    # steps of the rank-trained codec candidates of fit(budgets=...): rank-distilled OPQ and the
    # head's quantisers trained in the loop (codecs/qat.py); 0 leaves them out.
    # 400 at lr 1e-4 (codecs.distil.RankTraining), chosen for rank-distilled OPQ: +0.01-0.02 nDCG@10 over OPQ on SciFact, -0.008..+0.001 on
    # NFCorpus and CISI anchored on corpus rows; anchored on training queries +0.01-0.03 (bench/budgets.py)
    codec_steps: int = 400
    # False keeps norms, for dot-product embedders whose vector lengths carry meaning: the targets are
    # the full-dim inner products (not cosines), stage 0 starts uncentred (a rotation keeps inner
    # products) and transform returns the affine map's output as is, not made unit
    normalize: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dims"] = list(self.dims)
        return d

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, params: dict) -> "FitConfig":
        """From saved or user parameters; keys that are not fields (run-time knobs such as
        ``threads``/``progress``, or the dead ``recon_weight`` that heads of 0.1.0 carry) are
        dropped, so every head saved by an earlier release still loads."""
        known = {k: v for k, v in params.items() if k in cls.__dataclass_fields__}
        if "dims" in known:
            known["dims"] = tuple(known["dims"])
        return replace(cls(), **known)

    def checked(self, input_dim: int, n_rows: int) -> "FitConfig":
        """This config with ``dims`` as a tuple of ints, after checking every parameter against
        the data (scikit-learn checks its parameters at the start of ``fit`` too)."""
        try:
            dims = tuple(int(d) for d in self.dims)
        except (TypeError, ValueError):
            raise SmecError(f"dims={self.dims!r} must be a sequence of integers") from None
        if not dims:
            raise SmecError("dims=() must list at least one target dimension")
        if any(b >= a for a, b in zip(dims, dims[1:])):
            raise SmecError(f"dims={list(dims)} must be strictly decreasing (e.g. [128, 64, 32])")
        if dims[-1] < 1 or dims[0] >= input_dim:
            raise SmecError(f"dims={list(dims)} must all be in 1..{input_dim - 1} (input has {input_dim} dims)")
        for name, lo, hi in _INT_RANGES:
            check_int(name, getattr(self, name), lo, hi)
        for name in ("lr", "ads_lr", "temperature", "supervised_temperature", "ads_tau_start", "ads_tau_end"):
            check_number(name, getattr(self, name), positive=True)
        for name in ("kl_weight", "sim_weight", "prev_dim_weight", "supervised_weight", "ads_noise",
                     "supervised_validation"):
            check_number(name, getattr(self, name), positive=False)
        if self.prev_dim_weight and not self.sequential:
            raise SmecError(f"prev_dim_weight={self.prev_dim_weight!r} scores an earlier stage's un-pruned output, which "
                            "only sequential training has: set sequential=True too, or leave it at 0")
        if self.supervised_validation >= 1:
            raise SmecError(f"supervised_validation={self.supervised_validation!r} must be a share in [0, 1)")
        if n_rows < MIN_ROWS:
            raise SmecError(f"X has {n_rows} rows; SMEC needs at least {MIN_ROWS} to learn from")
        return replace(self, dims=dims)


_INT_RANGES = (
    ("epochs_per_stage", 1, 10_000),
    ("min_steps_per_stage", 0, 10_000_000),
    ("max_steps_per_stage", 1, 10_000_000),
    ("batch_size", 2, 1 << 20),
    ("memory_size", 1, 1 << 24),
    ("hard_negatives", 1, 1 << 16),
    ("supervised_hard_negatives", 1, 1 << 16),
    ("supervised_negative_pool", 0, 1 << 16),
    ("supervised_batch_size", 2, 1 << 20),
    ("codec_steps", 0, 10_000_000),
)

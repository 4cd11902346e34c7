"""The parameters of a SMEC fit, in a module of their own so that loading and applying a head
(which only needs them to describe itself) never imports torch: ``compress`` and ``--help`` start
without the 2-3 s torch import; ``fit`` imports the training loop when it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class FitConfig:
    """Every knob of a fit. Defaults are what measured best on SciFact (see BENCHMARKS.md)."""

    dims: tuple[int, ...] = (128, 64, 48, 32, 16)
    epochs_per_stage: int = 20
    min_steps_per_stage: int = 300  # small corpora get more epochs: 60 steps under-trained a 1k-doc sample
    max_steps_per_stage: int = 2000  # large corpora get fewer epochs: 2000 x 256 rows is ~0.5M rows per stage
    batch_size: int = 256  # 256 measured +1-2 nDCG points over 512 (more steps) on SciFact
    lr: float = 1e-3
    temperature: float = 0.05  # softmax temperature of the rank-KL term
    kl_weight: float = 1.0
    sim_weight: float = 1.0  # mean |cos_full - cos_compressed|
    recon_weight: float = 0.0  # optional reconstruction of the stage input (tied weights)
    prev_dim_weight: float = 0.0  # weight of L(dim_{i-1}) on the un-pruned output; 1.0 measured worse
    memory: bool = True  # S-XBM on/off
    memory_size: int = 8192
    hard_negatives: int = 1024  # memory neighbours per anchor for the unsupervised terms
    ads: bool = False  # measured worse on SciFact (see BENCHMARKS.md); True enables ADS
    ads_lr: float = 1e-2
    ads_tau_start: float = 1.0
    ads_tau_end: float = 0.05
    ads_noise: float = 1.0
    sequential: bool = True  # False: train all stages jointly on the sum of nested losses
    residual: bool = True  # stages after the first also see the input through a zero-init map
    supervised_weight: float = 0.5  # 1.0 fell below unsupervised at 32 d on SciFact's unseen-doc queries
    supervised_temperature: float = 0.05
    supervised_hard_negatives: int = 8
    supervised_negative_pool: int = 30  # draw the hard negatives at random from this many nearest (0: the nearest)
    supervised_batch_size: int = 256
    seed: int = 0
    threads: int = 2
    progress: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dims"] = list(self.dims)
        return d

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

import numpy as np
import pytest
import torch

from ..conftest import clustered
from smec_compress.config import FitConfig
from smec_compress.model.chain import pca_init
from smec_compress.model.train import fit_chain

FAST = dict(epochs_per_stage=3, min_steps_per_stage=0, batch_size=64, memory_size=256, hard_negatives=16, sequential=True)


def topk_overlap(a, b, k=10):
    na = np.argsort(-(a @ a.T), axis=1)[:, 1 : k + 1]
    nb = np.argsort(-(b @ b.T), axis=1)[:, 1 : k + 1]
    return np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)])


def _apply(chain, X):
    w, b = chain.collapse(len(chain))
    z = X @ w.T + b
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_pca_init_is_rotation_with_centering():
    X = clustered()
    rot, bias, logits = pca_init(X)
    assert torch.allclose(rot @ rot.T, torch.eye(24), atol=1e-5)
    h = torch.from_numpy(X) @ rot.T + bias
    assert h.mean(0).abs().max() < 1e-5
    var = h.var(0)
    assert torch.all(var[:-1] >= var[1:] - 1e-6) and torch.all(logits[:-1] >= logits[1:])


def test_training_improves_neighbour_overlap_over_pca_init():
    X = clustered(n=400, d=32, clusters=20)
    cfg0 = FitConfig(dims=(4,), **{**FAST, "epochs_per_stage": 1, "lr": 1e-12, "ads_lr": 1e-12})
    cfg = FitConfig(dims=(4,), **{**FAST, "epochs_per_stage": 15})
    pca_like = topk_overlap(X, _apply(fit_chain(X, cfg0), X))
    trained = topk_overlap(X, _apply(fit_chain(X, cfg), X))
    assert trained > pca_like


def test_sequential_freezes_earlier_stages_and_joint_trains_all():
    X = clustered()
    seq = fit_chain(X, FitConfig(dims=(12, 6), **FAST))
    first_alone = fit_chain(X, FitConfig(dims=(12,), **FAST))
    # stage 1 of the sequential chain is exactly the single-stage fit: later stages froze it
    assert torch.equal(seq.stages[0].linear.weight, first_alone.stages[0].linear.weight)
    joint = fit_chain(X, FitConfig(dims=(12, 6), **{**FAST, "sequential": False}))
    assert not torch.equal(joint.stages[0].linear.weight, first_alone.stages[0].linear.weight)


def test_switches_run_and_ads_off_keeps_pca_order():
    X = clustered()
    chain = fit_chain(X, FitConfig(dims=(12, 6), ads=False, memory=False, **FAST))
    assert [s.ads.selected().tolist() for s in chain.stages] == [list(range(12)), list(range(6))]
    assert chain.stages[0].ads.logits.grad is None


def test_residual_path_lets_small_dims_leave_the_larger_stage_subspace():
    """Without the residual path the 6-d map lies in the row space of the 12-d map (a pure
    chain); with it (the default), training moves it out of that subspace."""
    X = clustered()

    def outside(chain):
        w12, _ = chain.collapse(1)
        w6, _ = chain.collapse(2)
        q, _ = np.linalg.qr(w12.T)  # orthonormal basis of the 12-d map's row space
        return np.linalg.norm(w6.T - q @ (q.T @ w6.T)) / np.linalg.norm(w6)

    chain = fit_chain(X, FitConfig(dims=(12, 6), residual=False, **FAST))
    assert chain.stages[1].residual is None and outside(chain) < 1e-6
    residual = fit_chain(X, FitConfig(dims=(12, 6), **FAST))
    assert residual.stages[1].residual is not None and outside(residual) > 1e-3


def test_max_steps_per_stage_caps_long_epochs(monkeypatch):
    """Large corpora: steps per stage stop at max_steps_per_stage even mid-epoch."""
    from smec_compress.model import train

    steps = []
    monkeypatch.setattr(train.CrossBatchMemory, "enqueue", lambda self, *a: steps.append(1))
    X = clustered(n=640)
    cfg = FitConfig(dims=(12, 6), **{**FAST, "epochs_per_stage": 50, "min_steps_per_stage": 400, "max_steps_per_stage": 7})
    fit_chain(X, cfg)
    assert len(steps) == 2 * 7


def test_cosine_space_reuses_normalised_input_and_normalises_the_rest():
    from smec_compress.model.train import Space

    x = torch.from_numpy(clustered())
    space = Space.of(x, normalize=True)
    assert space.rows(x) is x  # no second copy of a large training set
    y = space.rows(3 * x)
    assert torch.allclose(y, x, atol=1e-6)


def test_a_space_that_keeps_norms_scales_by_one_number_and_copies_nothing():
    """Inner products keep their order and ratios (one global scale, to the RMS norm), and the
    training rows are not copied: the scale goes onto the similarities."""
    from smec_compress.model.train import Space

    x = torch.from_numpy(clustered()) * torch.linspace(0.5, 4.0, len(clustered()))[:, None]
    space = Space.of(x, normalize=False)
    assert space.rows(x) is x
    rms = float(x.norm(dim=1).square().mean().sqrt())
    assert space.scale == pytest.approx(1.0 / rms, rel=1e-5)
    sims = x[:5] @ x.T
    assert torch.allclose(space.targets(sims), space(x[:5]) @ space(x).T, rtol=1e-4, atol=1e-6)
    assert float(space(x).norm(dim=1).square().mean()) == pytest.approx(1.0, rel=1e-4)


def test_progress_callback_sees_every_step_of_every_stage():
    """The library draws no bar: it reports each step to the caller's callback (the CLI's bars)."""
    events = []
    cfg = FitConfig(dims=(12, 6), **{**FAST, "epochs_per_stage": 1})
    fit_chain(clustered(n=256), cfg, progress=events.append)
    stages = list(dict.fromkeys(e.stage for e in events))
    assert stages == ["stage 1/2 -> 12d", "stage 2/2 -> 6d"]
    for stage in stages:
        steps = [e for e in events if e.stage == stage]
        assert [e.step for e in steps] == list(range(1, steps[0].total + 1))
        assert all(e.loss == e.loss and e.loss >= 0 for e in steps)  # finite numbers, not NaN


def test_chain_run_in_row_chunks_equals_one_pass():
    X = clustered(n=300)
    chain = fit_chain(X, FitConfig(dims=(12, 6), **FAST))
    x = torch.from_numpy(X)
    assert torch.allclose(chain.run(x, chunk_rows=64), chain.run(x), atol=1e-6)
    assert chain.run(x, 0) is x


def test_a_stage_computes_only_its_kept_rows_with_the_values_and_gradients_of_the_whole_map():
    """Stage.forward multiplies by the kept rows of W only; the result and every gradient (W, b,
    the residual and ADS' logits) equal masking the full square output and gathering the kept dims."""
    from smec_compress.model.chain import Stage

    gen = torch.Generator().manual_seed(0)
    h, x = torch.randn(32, 24, generator=gen), torch.randn(32, 40, generator=gen)
    rot, bias = torch.linalg.qr(torch.randn(24, 24, generator=gen))[0], torch.randn(24, generator=gen)
    grads = []
    for pruned in (True, False):
        st = Stage(rot, bias, 8, torch.linspace(0, -3, 24), use_ads=True, input_dim=40)
        with torch.no_grad():
            st.residual.weight.normal_(generator=torch.Generator().manual_seed(1))
        st.train()
        mask = st.ads.mask(0.5, 1.0, torch.Generator().manual_seed(2))
        keep = torch.nonzero(mask.detach()).flatten()
        out = st(h, x, mask, keep) if pruned else (st.project(h, x) * mask).index_select(1, keep)
        (out.sin().sum()).backward()
        grads.append([out.detach()] + [p.grad.clone() for p in (st.linear.weight, st.linear.bias, st.residual.weight, st.ads.logits)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # float32 summation order
    assert grads[0][1].abs().sum(dim=1).count_nonzero() == 8  # only the kept rows of W learn

import math

import torch

from smec_compress.model import losses


def test_zero_when_compressed_equals_full():
    s = torch.tensor([[0.9, 0.2, -0.1], [0.3, 0.8, 0.0]])
    assert losses.similarity_preservation(s, s.clone()) == 0
    assert abs(float(losses.rank_kl(s, s.clone(), 0.05))) < 1e-6


def test_similarity_preservation_known_value_and_mask():
    full = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    comp = torch.tensor([[0.5, 0.0], [0.5, 1.5]])
    assert math.isclose(float(losses.similarity_preservation(full, comp)), (0.5 + 1.0) / 4)
    valid = torch.tensor([[True, True], [True, False]])
    assert math.isclose(float(losses.similarity_preservation(full, comp, valid)), 0.5 / 3, rel_tol=1e-6)


def test_rank_kl_known_value():
    # t = 1: p = softmax([0, ln 3]) = [1/4, 3/4], q = uniform -> KL = 1/4 ln(1/2) + 3/4 ln(3/2)
    full = torch.tensor([[0.0, math.log(3.0)]])
    comp = torch.zeros(1, 2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert math.isclose(float(losses.rank_kl(full, comp, 1.0)), expected, rel_tol=1e-5)


def test_rank_kl_mask_ignores_candidates_and_stays_finite():
    full = torch.tensor([[0.0, math.log(3.0), 5.0]])
    comp = torch.tensor([[0.0, 0.0, -5.0]])
    valid = torch.tensor([[True, True, False]])
    v = losses.rank_kl(full, comp, 1.0, valid)
    assert math.isclose(float(v), 0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel_tol=1e-5)
    tiny_t = losses.rank_kl(full, comp, 0.01, valid)
    assert torch.isfinite(tiny_t)


def test_info_nce_known_value_and_mask():
    sims = torch.tensor([[1.0, 0.0, 0.0]])
    assert math.isclose(float(losses.info_nce(sims, 1.0)), -math.log(math.e / (math.e + 2)), rel_tol=1e-6)
    valid = torch.tensor([[True, True, False]])
    assert math.isclose(float(losses.info_nce(sims, 1.0, valid)), -math.log(math.e / (math.e + 1)), rel_tol=1e-5)


def test_a_precomputed_rank_target_gives_the_same_loss_and_gradient():
    gen = torch.Generator().manual_seed(0)
    full, comp = torch.randn(6, 9, generator=gen), torch.randn(6, 9, generator=gen, requires_grad=True)
    valid = torch.rand(6, 9, generator=gen) > 0.3
    direct = losses.rank_kl(full, comp, 0.1, valid)
    (g_direct,) = torch.autograd.grad(direct, comp)
    target = losses.RankTarget.of(full, 0.1, valid)
    cached = losses.rank_kl(target, comp, 0.1, valid)
    (g_cached,) = torch.autograd.grad(cached, comp)
    assert torch.equal(direct, cached) and torch.equal(g_direct, g_cached)
    assert float(target.p[~valid].abs().sum()) == 0.0 and torch.allclose(target.p.sum(1), torch.ones(6))

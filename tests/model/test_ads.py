import torch

from smec_compress.model.ads import ADS, topk_mask


def test_hard_topk_picks_exactly_k_in_training():
    ads = ADS(20, 7, torch.linspace(0, -3, 20)).train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        m = ads.mask(tau=0.5, noise=1.0, generator=gen)
        assert torch.allclose(m, m.round()), "forward value must be the hard 0/1 mask"
        assert int(m.sum().round()) == 7


def test_gradient_reaches_logits():
    ads = ADS(10, 3).train()
    x = torch.arange(10.0)
    (ads.mask(tau=1.0, generator=torch.Generator().manual_seed(1)) * x).sum().backward()
    assert ads.logits.grad is not None and ads.logits.grad.abs().sum() > 0


def test_inference_topk_is_deterministic_and_by_importance():
    logits = torch.tensor([0.1, 2.0, -1.0, 2.0, 0.5])
    ads = ADS(5, 3, logits).eval()
    assert ads.selected().tolist() == [1, 3, 4]
    assert torch.equal(ads.mask(), ads.mask())
    assert ads.mask().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]


def test_topk_mask_ties_go_to_lower_index():
    assert topk_mask(torch.zeros(4), 2).tolist() == [1.0, 1.0, 0.0, 0.0]

"""The candidates at a byte budget, and the label-free choice among them."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.codecs import RankOPQ
from smec_compress.codecs import budget as budget_module
from smec_compress.codecs.budget import candidates, choose, training_rows
from smec_compress.codecs.rabitq import code_size
from smec_compress.errors import SmecError
from smec_compress.model.pca import PCA

from ..conftest import clustered


def test_each_codec_sits_at_the_widest_dim_whose_code_fits():
    for budget in (16, 32, 48):
        pool = candidates(384, budget, reducer="pca")
        for c in pool:
            if c.bits:
                assert code_size(c.dim, c.bits) <= budget < code_size(c.dim + 8, c.bits)
            if c.codec == "binary-rerank":
                assert c.dim == min(8 * budget, 376 if c.reducer else 384)
    assert not [c for c in candidates(384, 16, reducer="pca") if c.bits and c.bits > 1]  # 20 bytes of factors


def test_what_fits_the_whole_vector_is_not_tried_on_fewer_dims():
    keys = {c.key for c in candidates(384, 64, reducer="pca")}
    assert "rabitq-1bit 384 d" in keys and "pca+rabitq-1bit 376 d" not in keys
    assert "binary-rerank 384 d" in keys and not any(k.startswith("pca+binary") for k in keys)


def test_sign_bits_take_any_width_and_small_corpora_get_no_pq():
    assert {c.key for c in candidates(36, 5)} >= {"binary-rerank 36 d"}  # 36 bits in 5 bytes
    assert any(c.codec == "opq" for c in candidates(384, 16, rows=256))
    assert not any(c.codec in ("opq", "rank-opq") for c in candidates(384, 16, rows=255))
    with pytest.raises(SmecError, match="1..1536"):
        candidates(384, 1537)


def test_the_choice_ranks_by_cosine_so_row_scale_does_not_matter():
    x = clustered(n=600, d=32, clusters=10)
    scaled = x * np.random.default_rng(1).uniform(0.5, 3.0, (len(x), 1)).astype(np.float32)

    def pick(rows):
        return choose(rows, 8, reducer="pca", fit_reducer=lambda r: PCA().fit(r), learned=False)

    a, b = pick(x), pick(scaled)
    assert a.candidate == b.candidate and a.recall.keys() == b.recall.keys()
    assert all(abs(a.recall[k] - b.recall[k]) < 0.05 for k in a.recall)  # PCA of scaled rows differs a little
    assert a.recall[a.candidate.key] == max(a.recall.values()) and a.codec is not None and not a.with_queries


def test_unlabelled_queries_reach_the_rank_distilled_codec_and_the_criterion(monkeypatch):
    x = clustered(n=600, d=32, clusters=10)
    queries = clustered(n=100, d=32, clusters=10, seed=2)
    seen = []
    real = RankOPQ.fit

    def spy(self, X, queries=None, **kwargs):
        seen.append(None if queries is None else len(queries))
        return real(self, X, queries=queries, **kwargs)

    monkeypatch.setattr(RankOPQ, "fit", spy)
    choice = choose(x, 8, training=budget_module.RankTraining(steps=2), queries=queries)
    assert seen == [100 - 20] and choice.with_queries  # a fifth held back as the criterion's probes
    assert training_rows(600) == 540


def test_each_in_loop_candidate_names_the_blind_stack_it_starts_from():
    from smec_compress.codecs.budget import IN_LOOP, Candidate, blind_twin, in_loop, sees_full_vectors

    for blind in IN_LOOP:
        cand = Candidate(blind, 64, "smec", m=16 if blind == "opq" else None)
        twin = in_loop(cand)
        assert blind_twin(twin) == cand and twin.key.startswith("smec+qat-") and twin.dim == 64
        assert sees_full_vectors(twin) and not sees_full_vectors(cand)  # the twin holds the head's map itself


def test_every_candidate_is_fitted_once_across_budgets_and_chosen_as_alone(monkeypatch):
    x = clustered(n=600, d=32, clusters=10)
    training = budget_module.RankTraining(steps=3)
    fits, real = [], budget_module.fit_candidate

    def spy(cand, *args, **kwargs):
        fits.append((cand.key, kwargs.get("start") is not None))
        return real(cand, *args, **kwargs)

    monkeypatch.setattr(budget_module, "fit_candidate", spy)
    both = budget_module.choose_budgets(x, (8, 16), training=training)
    keys = [k for k, _ in fits]
    assert len(keys) == len(set(keys))  # int8 / sign bits / RaBitQ at 32 d fit both budgets: measured once
    assert set(both[8].recall) & set(both[16].recall)  # ... and reported at each
    assert ("rank-opq 32 d m=8", True) in fits  # started from the OPQ candidate as fitted
    for budget in (8, 16):
        alone = choose(x, budget, training=training)
        assert alone.candidate == both[budget].candidate and alone.recall == both[budget].recall

"""A head fitted with byte budgets: the choice is the best candidate by its own criterion, codes
fit the budget, a row alone encodes as in a batch, and everything survives a save and load."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from smec_compress import SMEC
from smec_compress.codecs.budget import IN_LOOP, candidates, in_loop
from smec_compress.errors import SmecError
from smec_compress.model.budgets import CODECS_FILE

from ..conftest import clustered

BUDGETS = (4, 16)


@pytest.fixture(scope="module")
def fitted():
    x = clustered(n=1200, d=32, clusters=12)
    seen = []
    head = SMEC(dims=(16, 8), epochs_per_stage=2, min_steps_per_stage=0, codec_steps=10, seed=0)
    head.fit(x, budgets=BUDGETS, codec_progress=lambda b, c, r: seen.append((b, c.key, r)))
    return x, head, seen


def test_each_budget_keeps_the_candidate_with_the_best_criterion(fitted):
    x, head, seen = fitted
    assert head.budgets_ == BUDGETS
    for budget in BUDGETS:
        choice = head.codecs_[budget].choice
        pool = candidates(32, budget, reducer="smec", dims=(16, 8))
        blind = {c.key for c in pool}
        trained = set(choice.recall) - blind  # quantisation in the loop: the best head candidate per family
        assert blind <= set(choice.recall) == {k for b, k, _ in seen if b == budget}
        families = {c.codec for c in pool if c.reducer and c.codec in IN_LOOP}
        assert sorted(k.split()[0] for k in trained) == sorted(f"smec+{IN_LOOP[f]}" for f in families)
        for family in families:
            best = max((c for c in pool if c.reducer and c.codec == family), key=lambda c: choice.recall[c.key])
            assert in_loop(best).key in trained
        assert choice.recall[choice.candidate.key] == max(choice.recall.values())
        assert 0 < max(choice.recall.values()) <= 1


def test_codes_fit_the_budget_and_search_finds_each_row_itself(fitted):
    x, head, _ = fitted
    for budget in BUDGETS:
        codes = head.encode(x, budget=budget)
        assert codes.dtype == np.uint8 and len(codes) == len(x) and codes.shape[1] <= budget
        _, ids = head.search(codes, x[:100], 5, budget=budget)
        assert (ids == np.arange(100)[:, None]).any(axis=1).mean() > 0.5  # chance: 5/1200


def test_score_gives_every_codes_asymmetric_score_in_searchs_order(fitted):
    x, head, _ = fitted
    for budget in BUDGETS:
        codes = head.encode(x[:300], budget=budget)
        scores = head.score(x[:7], codes, budget=budget)
        top_s, top_i = head.search(codes, x[:7], 10, budget=budget)
        assert scores.shape == (7, 300) and np.isfinite(scores).all()
        assert np.allclose(np.take_along_axis(scores, top_i, 1), top_s, atol=1e-5)
        assert (np.sort(scores, 1)[:, ::-1][:, :10] <= top_s[:, :1] + 1e-5).all()  # nothing scores above search's best


def test_a_row_alone_encodes_exactly_as_inside_a_batch(fitted):
    x, head, _ = fitted
    for budget in BUDGETS:
        batch = head.encode(x[:50], budget=budget)
        assert all(np.array_equal(head.encode(x[i : i + 1], budget=budget)[0], batch[i]) for i in range(50))


def test_save_and_load_keep_choice_and_codes(fitted, tmp_path):
    x, head, _ = fitted
    head.save(tmp_path)
    back = SMEC.load(tmp_path)
    meta = json.loads((tmp_path / CODECS_FILE).read_text())["budgets"]
    assert sorted(map(int, meta)) == list(BUDGETS) and back.budgets_ == BUDGETS
    for budget in BUDGETS:
        assert back.codecs_[budget].candidate == head.codecs_[budget].candidate
        codes = head.encode(x, budget=budget)
        assert np.array_equal(back.encode(x, budget=budget), codes)
        assert np.array_equal(back.search(codes, x[:20], 5, budget=budget)[1], head.search(codes, x[:20], 5, budget=budget)[1])


def test_each_codec_file_is_a_faiss_index_that_searches_as_the_head_does(fitted, tmp_path):
    x, head, _ = fitted
    head.save(tmp_path)
    tested = 0
    for budget in BUDGETS:
        cand = head.codecs_[budget].candidate
        if cand.codec.startswith("binary"):
            continue  # sign bits have no FAISS tables
        index = faiss.deserialize_index(np.fromfile(tmp_path / f"codec-{budget}.bin", dtype=np.uint8))
        view = (lambda a: head.transform(a, cand.dim)) if cand.reducer else (lambda a: a)
        index.add(view(x))
        got, want = index.search(view(x[:20]), 5), head.search(head.encode(x, budget=budget), x[:20], 5, budget=budget)
        assert np.array_equal(got[1], want[1])
        tested += 1
    assert tested  # this fit chose FAISS codecs (rank-distilled OPQ) for its budgets


def test_saving_without_budgets_leaves_no_stale_codecs(fitted, tmp_path):
    x, head, _ = fitted
    head.save(tmp_path)
    SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0).fit(x).save(tmp_path)
    assert not (tmp_path / CODECS_FILE).exists() and SMEC.load(tmp_path).budgets_ == ()


def test_bad_budgets_are_refused_before_training():
    x = clustered(n=64, d=32)
    for budgets, message in (((0,), "1..128"), ((129,), "1..128"), ((2.5,), "whole number")):
        with pytest.raises(SmecError, match=message):
            SMEC(dims=(8,), epochs_per_stage=10_000).fit(x, budgets=budgets)  # would run for minutes if not refused first


def test_a_budget_the_head_lacks_is_refused_listing_what_it_has(fitted):
    x, head, _ = fitted
    with pytest.raises(SmecError, match="no codec for 32 bytes; its budgets: 4, 16"):
        head.encode(x, budget=32)
    with pytest.raises(SmecError, match="none: fit with budgets"):
        SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0).fit(x).encode(x, budget=4)


def test_unlabelled_queries_need_budgets_and_are_recorded_in_the_criterion(tmp_path):
    x = clustered(n=600, d=32, clusters=12)
    queries = clustered(n=80, d=32, clusters=12, seed=1)
    with pytest.raises(SmecError, match="give budgets too"):
        SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0).fit(x, anchor_queries=queries)
    head = SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=5).fit(
        x, budgets=(8,), anchor_queries=queries)
    assert "unlabelled queries" in head.codecs_[8].criterion
    head.save(tmp_path)
    assert "unlabelled queries" in SMEC.load(tmp_path).codecs_[8].criterion


def test_anchor_ids_are_kept_as_hashes_so_overlap_with_judged_queries_is_found(tmp_path):
    from smec_compress.model.budgets import anchored_on

    x = clustered(n=600, d=32, clusters=12)
    queries = clustered(n=50, d=32, clusters=12, seed=1)
    ids = [f"q{i}" for i in range(50)]
    head = SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=2).fit(
        x, budgets=(8,), anchor_queries=queries, anchor_ids=ids)
    head.save(tmp_path)
    back = SMEC.load(tmp_path)
    assert back.anchors_ == 50 and anchored_on(back, ["q3", "q7", "test-1"]) == 2 and anchored_on(back, ["t"]) == 0
    blind = SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=2).fit(
        x, budgets=(8,), anchor_queries=queries)
    assert anchored_on(blind, ["q3"]) is None  # ids unknown: eval warns instead
    with pytest.raises(SmecError, match="same length"):
        SMEC(dims=(8,), epochs_per_stage=1).fit(x, budgets=(8,), anchor_queries=queries, anchor_ids=ids[:3])


def test_the_codec_phase_sample_shrinks_with_the_input_dim():
    from smec_compress.model.budgets import codec_rows

    assert codec_rows(5_000, 384) == 5_000 and codec_rows(1_000_000, 384) == 100_000
    assert codec_rows(1_000_000, 4096) == 16_384 and 4 * 4096 * codec_rows(10**6, 4096) <= 2**28


def test_a_budget_no_codec_can_meet_is_refused_naming_it():
    from smec_compress.model.budgets import check_budgets

    with pytest.raises(SmecError, match="no codec stores a 36-d vector .* in 1 bytes from 100 rows"):
        check_budgets((1,), 36, (20, 12), rows=100)  # OPQ needs 256 rows; 8 sign bits need 8 dims
    assert check_budgets((1,), 36, (20, 12), rows=5_000) == (1,)  # OPQ at m = 1 can


def test_fit_codecs_on_a_fitted_head_gives_the_codecs_fit_with_budgets_gives_and_keeps_its_maps():
    x = clustered(n=600, d=32, clusters=12)
    queries = clustered(n=50, d=32, clusters=12, seed=1)
    ids = [f"q{i}" for i in range(50)]
    params = dict(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=2, seed=3)
    together = SMEC(**params).fit(x, budgets=(8,), anchor_queries=queries, anchor_ids=ids)
    plain = SMEC(**params).fit(x)
    floats = plain.transform(x, 8)
    later = plain.fit_codecs(x, (8,), anchor_queries=queries, anchor_ids=ids, threads=1)
    assert later is plain and later.budgets_ == (8,) and later.anchors_ == 50
    np.testing.assert_array_equal(later.transform(x, 8), floats)
    np.testing.assert_array_equal(later.encode(x, budget=8), together.encode(x, budget=8))
    assert later.codecs_[8].choice.recall == together.codecs_[8].choice.recall
    later.fit_codecs(x, (4,))  # replaces: the 8-byte codec and the anchors are gone
    assert later.budgets_ == (4,) and later.anchors_ == 0 and later.anchor_ids_ is None
    with pytest.raises(SmecError, match="not fitted|fit"):
        SMEC(**params).fit_codecs(x, (8,))
    with pytest.raises(SmecError, match="32"):
        plain.fit_codecs(x[:, :16], (8,))

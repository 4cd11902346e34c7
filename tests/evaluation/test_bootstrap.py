"""Paired bootstrap intervals, and which rows each comparison pits against each other."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.errors import SmecError
from smec_compress.evaluation.bootstrap import against_quantisers, against_simple, paired_bootstrap
from smec_compress.evaluation.compare import Row, row_key


def test_identical_scores_give_a_zero_interval_and_a_shift_gives_itself():
    a = np.random.default_rng(0).random(50)
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
    diff, low, high = paired_bootstrap(a + 0.1, a)
    assert diff == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_a_real_gain_is_inside_the_interval_and_zero_outside_and_the_seed_fixes_it():
    rng = np.random.default_rng(1)
    theirs = rng.random(400)
    ours = theirs + 0.05 + 0.2 * rng.standard_normal(400)
    diff, low, high = paired_bootstrap(ours, theirs, resamples=2000, seed=3)
    assert low < 0.05 < high and low > 0
    assert paired_bootstrap(ours, theirs, resamples=2000, seed=3) == (diff, low, high)
    assert paired_bootstrap(ours, theirs, resamples=2000, seed=4)[1:] != (low, high)


def test_under_no_difference_the_interval_covers_zero_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(200):
        a, b = rng.random(150), rng.random(150)  # exchangeable: the true difference is 0
        _, low, high = paired_bootstrap(a, b, resamples=500, seed=trial)
        covered += low <= 0 <= high
    assert 0.88 <= covered / 200 <= 0.99


@pytest.mark.parametrize("bad", [(np.ones(3), np.ones(4)), (np.ones(0), np.ones(0)), (np.ones((2, 2)), np.ones((2, 2)))])
def test_unpaired_or_empty_scores_are_refused(bad):
    with pytest.raises(SmecError, match="paired bootstrap needs"):
        paired_bootstrap(*bad)


def row(method: str, dim: int, size: int, ndcg: float, rescored: int | None = None) -> Row:
    return Row(method, dim, size, 1536 / size, ndcg, 0.0, 0.0, 0.0, 0.0, rescored=rescored)


@pytest.fixture
def table():
    """Rows of a comparison and their per-query scores (each row's scores: its mean plus noise)."""
    rng = np.random.default_rng(5)
    rows = [row("full", 384, 1536, 0.64), row("smec", 32, 128, 0.55), row("pca", 32, 128, 0.50),
            row("pca-centred", 32, 128, 0.52), row("truncation", 32, 128, 0.30), row("random", 32, 128, 0.60),
            row("smec +rescore 100", 32, 128, 0.63, rescored=100),
            row("opq", 384, 16, 0.55), row("pca+opq", 128, 16, 0.56), row("rank-opq", 384, 16, 0.58),
            row("smec+opq", 64, 16, 0.57), row("pca", 8, 32, 0.60), row("int8", 384, 384, 0.64),
            row("smec 16B: smec+qat-opq", 64, 16, 0.54)]
    per_query = {row_key(r): r.ndcg10 + 0.01 * rng.standard_normal(60) for r in rows}
    return rows, per_query


def test_smec_is_measured_against_the_strongest_simple_reducer_at_its_dim(table):
    rows, per_query = table
    (i,) = against_simple(rows, per_query, ["smec"], resamples=300)
    assert (i.ours, i.theirs, i.dim) == ("smec", "pca-centred", 32)  # not random projection, not the rescored row
    assert i.diff == pytest.approx(per_query[("smec", 32, 128)].mean() - per_query[("pca-centred", 32, 128)].mean())
    assert i.verdict == "better"


def test_a_budget_codec_is_measured_against_the_best_quantiser_that_fits(table):
    rows, per_query = table
    (i,) = against_quantisers(rows, per_query, ["smec"], [16], float_methods=["pca", "pca-centred", "truncation", "random", "smec"],
                              resamples=300)
    # not rank-opq (ours), smec+opq (the head's own stack), pca at 8 d (a float row) or int8 (too big)
    assert (i.ours, i.theirs, i.budget) == ("smec 16B: smec+qat-opq", "pca+opq", 16)
    assert i.verdict == "worse"

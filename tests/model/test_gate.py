"""A supervised fit keeps its map at a dim only where held-back labelled queries say it helps."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress import SMEC
from smec_compress.errors import SmecError
from smec_compress.model.gate import clearly_better, held_out_queries, ndcg_at_k, split_queries

from ..conftest import clustered

FAST = dict(epochs_per_stage=2, min_steps_per_stage=0, batch_size=64, memory_size=256, hard_negatives=16)


def test_split_holds_back_whole_queries_at_the_share_asked():
    queries = np.repeat(np.eye(10, dtype=np.float32), 3, axis=0)  # 10 queries, 3 pairs each
    split = split_queries(queries, 0.2, seed=0)
    assert len(split.held) == 6 and len(split.train) == 24
    assert sorted(np.concatenate([split.train, split.held])) == list(range(30))
    held_rows = {tuple(r) for r in queries[split.held]}
    assert not held_rows & {tuple(r) for r in queries[split.train]}  # no query on both sides
    one = split_queries(queries[:3], 0.2, seed=0)  # one query: held back, nothing to train on
    assert len(one.held) == 3 and len(one.train) == 0


def test_held_out_queries_gather_each_querys_positives():
    queries = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    uniq, relevant = held_out_queries(queries, np.array([4, 7, 2]), np.arange(3))
    assert {tuple(u): r for u, r in zip(uniq.tolist(), relevant)} == {(1.0, 0.0): {4, 7}, (0.0, 1.0): {2}}


def test_ndcg_at_10_matches_its_definition():
    ranked = np.array([[5, 1, 2, 3], [9, 8, 7, 6]])
    # query 1: its one relevant row at rank 2 -> 1/log2(3); query 2: both relevant at ranks 1 and 3
    expected = [1 / np.log2(3), (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))]
    np.testing.assert_allclose(ndcg_at_k(ranked, [{1}, {9, 7}]), expected)


def test_the_supervised_map_must_win_by_more_than_chance():
    theirs = np.full(16, 0.5)
    assert not clearly_better(theirs + np.array([0.3, -0.25] * 8), theirs)  # higher mean (+0.025), mostly noise
    assert clearly_better(theirs + 0.05 + np.array([0.01, -0.01] * 8), theirs)  # small but steady gain
    assert not clearly_better(theirs, theirs)  # a tie keeps the unsupervised map
    assert not clearly_better(np.array([1.0]), np.array([0.0]))  # one query cannot tell


def _offset_queries(X, n=120, seed=0):
    """Queries that are their positive row plus a large fixed offset: an unsupervised head keeps
    the offset (it never saw a query), labels teach the head to drop it."""
    rng = np.random.default_rng(seed)
    pos = rng.choice(len(X), n, replace=False)
    offset = np.zeros(X.shape[1], dtype=np.float32)
    offset[0] = 3.0
    q = X[pos] + offset
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32), pos


def test_labels_that_help_keep_the_supervised_maps_and_the_scores_are_recorded(tmp_path):
    X = clustered(n=600, d=24, clusters=12)
    q, pos = _offset_queries(X)
    head = SMEC(dims=(12, 6), seed=0, supervised_weight=1.0, **FAST).fit(X, queries=q, positives=pos)
    s = head.supervision_
    assert s["held_out_queries"] == 24
    assert s["supervised_dims"], s  # the offset is learnable: labels win at some dim
    assert all(s["ndcg10_supervised"][str(d)] > s["ndcg10_unsupervised"][str(d)] for d in s["supervised_dims"])
    plain = SMEC(dims=(12, 6), seed=0, supervised_weight=1.0, **FAST).fit(X)
    for d in (12, 6):
        same = np.allclose(head.transform(X, d), plain.transform(X, d), atol=1e-6)
        assert same == (d not in s["supervised_dims"])  # the unsupervised fit's map exactly where labels lost
    head.save(tmp_path)
    assert SMEC.load(tmp_path).supervision_ == s


def test_labels_that_carry_nothing_leave_every_dim_unsupervised():
    X = clustered(n=600, d=24, clusters=12)
    rng = np.random.default_rng(1)
    q = clustered(n=100, d=24, clusters=12, seed=5)
    pos = rng.integers(0, len(X), 100)  # random positives: no signal to learn
    head = SMEC(dims=(12, 6), seed=0, **FAST).fit(X, queries=q, positives=pos)
    plain = SMEC(dims=(12, 6), seed=0, **FAST).fit(X)
    assert head.supervision_["supervised_dims"] == []
    for d in (12, 6):
        np.testing.assert_allclose(head.transform(X, d), plain.transform(X, d), atol=1e-6)


def test_one_labelled_query_is_held_back_and_the_fit_is_unsupervised():
    X = clustered(n=300, d=24)
    head = SMEC(dims=(8,), seed=0, **FAST).fit(X, queries=X[:1] + 0.01, positives=np.array([0]))
    assert head.supervision_["held_out_queries"] == 1 and head.supervision_["supervised_dims"] == []
    np.testing.assert_allclose(head.transform(X, 8), SMEC(dims=(8,), seed=0, **FAST).fit(X).transform(X, 8), atol=1e-6)


def test_no_validation_trusts_the_labels_at_every_dim_and_a_bad_share_is_refused():
    X = clustered(n=300, d=24)
    head = SMEC(dims=(8,), supervised_validation=0, **FAST).fit(X, queries=X[:40] + 0.01, positives=np.arange(40))
    assert head.supervision_ is None and SMEC(dims=(8,), **FAST).fit(X).supervision_ is None
    for bad in (1.0, -0.1, "a"):
        with pytest.raises(SmecError, match="supervised_validation"):
            SMEC(dims=(8,), supervised_validation=bad, **FAST).fit(X, queries=X[:4], positives=np.arange(4))


def test_validation_pairs_decide_instead_of_held_back_training_queries():
    """Given validation pairs (a dev split), the gate scores those, and the supervised map trains on
    every labelled pair: where it is kept it is the map of a fit that trusts all the labels."""
    X = clustered(n=600, d=24, clusters=12)
    q, pos = _offset_queries(X)
    args = dict(dims=(12, 6), seed=0, supervised_weight=1.0, **FAST)
    head = SMEC(**args).fit(X, queries=q[:80], positives=pos[:80], validation_queries=q[80:], validation_positives=pos[80:])
    s = head.supervision_
    assert s["validation"] == "validation queries" and s["held_out_queries"] == 40 and s["supervised_dims"], s
    trusted = SMEC(**{**args, "supervised_validation": 0}).fit(X, queries=q[:80], positives=pos[:80])
    for d in s["supervised_dims"]:
        np.testing.assert_allclose(head.transform(X, d), trusted.transform(X, d), atol=1e-6)
    overlapping = SMEC(**args).fit(X, queries=q[:80], positives=pos[:80], validation_queries=q[70:], validation_positives=pos[70:])
    assert overlapping.supervision_["held_out_queries"] == 40  # the 10 validation queries trained on are left out


def test_validation_pairs_that_cannot_check_a_supervised_fit_are_refused():
    X = clustered(n=300, d=24)
    q, pos = X[:40] + 0.01, np.arange(40)
    cases = [({}, dict(validation_queries=q, validation_positives=pos), "give queries and positives too"),
             ({}, dict(queries=q, positives=pos, validation_queries=q[:5]), "must be given together"),
             ({"supervised_validation": 0}, dict(queries=q[:30], positives=pos[:30], validation_queries=q[30:],
                                                 validation_positives=pos[30:]), "trusts the labels"),
             ({}, dict(queries=q, positives=pos, validation_queries=q[:5], validation_positives=pos[:5]), "also a training query"),
             ({}, dict(queries=q[:30], positives=pos[:30], validation_queries=q[30:], validation_positives=pos[30:] + 1000),
              "positives")]
    for params, fit_args, message in cases:
        with pytest.raises(SmecError, match=message):
            SMEC(dims=(8,), **params, **FAST).fit(X, **fit_args)

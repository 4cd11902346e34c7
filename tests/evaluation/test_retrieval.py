"""The metric on cases small enough to compute by hand, and the public evaluate_retrieval API."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smec_compress.evaluation.retrieval import METRICS, evaluate_retrieval, score_run, select_queries

DOC_IDS = ["d1", "d2", "d3"]
DOCS = np.eye(3, dtype=np.float32)


def test_hand_computed_ndcg_recall_mrr():
    # q1 ranks d1 > d2 > d3 and only d2 is relevant: nDCG = 1/log2(3), RR = 1/2.
    # q2 ranks d3 > d2 > d1 with d1, d3 relevant: DCG = 1 + 1/log2(4), IDCG = 1 + 1/log2(3).
    queries = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.9]], dtype=np.float32)
    qrels = {"q1": {"d2": 1}, "q2": {"d1": 1, "d3": 1}}
    m = evaluate_retrieval(DOC_IDS, DOCS, ["q1", "q2"], queries, qrels)
    ndcg_q1 = 1 / math.log2(3)
    ndcg_q2 = 1.5 / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-4)
    assert m["mrr@10"] == pytest.approx(0.75)
    assert m["recall@10"] == pytest.approx(1.0)
    assert set(m) == set(METRICS)


def test_cutoffs_count_only_the_top_ranks():
    """A relevant doc at rank 11 is a miss for nDCG/Recall/MRR@10 and a hit for Recall@100."""
    scores = {f"d{i}": float(100 - i) for i in range(1, 21)}
    run = {"q": scores}
    m = score_run(run, {"q": {"d11": 1}})
    assert m["ndcg@10"] == 0.0 and m["recall@10"] == 0.0 and m["mrr@10"] == 0.0
    assert m["recall@100"] == 1.0


def test_graded_relevance_counts_gain():
    run = {"q": {"a": 2.0, "b": 1.0}}
    worse = score_run(run, {"q": {"a": 1, "b": 2}})["ndcg@10"]
    best = score_run(run, {"q": {"a": 2, "b": 1}})["ndcg@10"]
    assert best == pytest.approx(1.0) and worse < 0.95


def test_queries_without_judgements_are_skipped_and_counted():
    queries = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    qrels = {"q1": {"d1": 1}}
    assert select_queries(["q1", "q2", "q3"], qrels).skipped_without_qrels == 2
    m = evaluate_retrieval(DOC_IDS, DOCS, ["q1", "q2", "q3"], queries, qrels)
    assert m["ndcg@10"] == pytest.approx(1.0)  # the unjudged queries do not drag the mean to 0

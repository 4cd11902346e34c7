"""Rescoring: the top k of each query's candidates by exact inner product, holes kept as holes,
and the same from a memory-mapped matrix."""

from __future__ import annotations

import numpy as np

from smec_compress.rescore import rescore

from .conftest import unit_rows


def test_rescore_ranks_the_candidates_by_the_full_vectors(rng, tmp_path):
    docs, queries = unit_rows(rng, 300, 24), unit_rows(rng, 7, 24)
    cand = np.stack([rng.choice(300, 40, replace=False) for _ in range(7)])
    cand[2, 30:] = -1  # fewer candidates for one query
    scores, rows = rescore(cand, queries, docs, 10)
    for q in range(7):
        valid = cand[q][cand[q] >= 0]
        exact = valid[np.argsort(-(docs[valid] @ queries[q]), kind="stable")[:10]]
        assert np.array_equal(rows[q], exact)
        assert np.allclose(scores[q], docs[exact] @ queries[q], atol=1e-6)
    np.save(tmp_path / "docs.npy", docs)
    mapped = np.load(tmp_path / "docs.npy", mmap_mode="r")
    assert np.array_equal(rescore(cand, queries, mapped, 10)[1], rows)
    few = rescore(cand[2:3, 25:], queries[2:3], docs, 10)  # 5 candidates for k = 10
    assert list(few[1][0, 5:]) == [-1] * 5 and np.isneginf(few[0][0, 5:]).all()

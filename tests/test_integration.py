"""End to end on the shipped SciFact sample: a fitted head keeps the corpus' neighbourhoods better
than PCA (what it is trained for), and retrieves far better than a random projection.

The nDCG margin over PCA on this easy 1,000-document sample is a few tenths of a point and moves
with BLAS/torch versions, so that claim lives in bench/smec_quality.py; here the margins are wide
enough that only broken training fails them (a head that did not train equals PCA).
"""

from __future__ import annotations

import numpy as np

from smec_compress import PCA, SMEC, RandomProjection, evaluate_retrieval, read_embeddings, read_qrels

from .conftest import SAMPLE, SAMPLE_EMBEDDINGS


def neighbour_recall(X: np.ndarray, Z: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's full-dim top-k neighbours that its compressed top-k keeps."""
    full = np.argsort(-(X @ X.T), axis=1)[:, 1 : k + 1]
    comp = np.argsort(-(Z @ Z.T), axis=1)[:, 1 : k + 1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(full, comp)]))


def test_head_fitted_on_the_sample_keeps_neighbours_better_than_pca_and_beats_random_projection():
    corpus = read_embeddings(SAMPLE_EMBEDDINGS)
    queries = read_embeddings(SAMPLE_EMBEDDINGS.with_suffix(".queries.parquet"))
    qrels = read_qrels(SAMPLE / "qrels" / "test.tsv")
    X = corpus.vectors
    head = SMEC(dims=(64, 32), seed=0).fit(X)
    pca, rand = PCA().fit(X), RandomProjection(seed=0).fit(X)

    def ndcg(reducer):
        docs, qs = reducer.transform(X, 32), reducer.transform(queries.vectors, 32)
        return evaluate_retrieval(corpus.ids, docs, queries.ids, qs, qrels)["ndcg@10"]

    # measured here: recall@10 0.695 (SMEC) vs 0.662 (PCA) vs 0.298 (random); nDCG@10 0.644 / 0.638 / 0.478
    assert neighbour_recall(X, head.transform(X, 32)) > neighbour_recall(X, pca.transform(X, 32)) + 0.015
    smec = ndcg(head)
    assert smec > ndcg(rand) + 0.1 and smec > ndcg(pca) - 0.01

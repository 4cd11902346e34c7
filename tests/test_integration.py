"""End to end on the shipped SciFact sample: a fitted head must beat PCA at 32 d."""

from __future__ import annotations

from smec_compress import PCA, SMEC, evaluate_retrieval, read_embeddings, read_qrels

from .conftest import SAMPLE, SAMPLE_EMBEDDINGS


def test_head_fitted_on_the_sample_beats_pca_at_32d():
    corpus = read_embeddings(SAMPLE_EMBEDDINGS)
    queries = read_embeddings(SAMPLE_EMBEDDINGS.with_suffix(".queries.parquet"))
    qrels = read_qrels(SAMPLE / "qrels" / "test.tsv")
    head = SMEC(dims=(64, 32), seed=0, progress=False).fit(corpus.vectors)

    def ndcg(reducer):
        docs, qs = reducer.transform(corpus.vectors, 32), reducer.transform(queries.vectors, 32)
        return evaluate_retrieval(corpus.ids, docs, queries.ids, qs, qrels)["ndcg@10"]

    smec, pca = ndcg(head), ndcg(PCA().fit(corpus.vectors))
    # the sample is easy (1,000 docs: PCA keeps 80% of full at 32 d), so the margin is small;
    # the fit is seeded, so this is deterministic on a given machine
    assert smec > pca + 0.003, (smec, pca)

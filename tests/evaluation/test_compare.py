"""The comparison table: which rows it plans, that sizes are what is stored, and that scores are right."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smec_compress.evaluation.baselines import PCA, Truncation
from smec_compress.evaluation.compare import Method, Row, compare, plan
from smec_compress.evaluation.report import best_per_budget, best_within, to_markdown, write_report
from smec_compress.errors import SmecError
from smec_compress.evaluation.evalset import heldout_queries
from smec_compress.data.io import Embeddings

from ..conftest import unit_rows


@pytest.fixture
def toy(rng):
    """Queries are noisy copies of their relevant documents, so retrieval quality is high but not 1."""
    docs = unit_rows(rng, 600, 32)
    rel = rng.choice(600, 40, replace=False)
    noisy = docs[rel] + 0.35 * rng.standard_normal((40, 32)).astype(np.float32)
    corpus = Embeddings([f"d{i}" for i in range(600)], docs)
    queries = Embeddings([f"q{i}" for i in range(40)], (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32))
    qrels = {f"q{i}": {f"d{r}": 1} for i, r in enumerate(rel)}
    return corpus, queries, qrels


def test_plan_lists_float_and_quantised_rows_at_matching_bytes():
    methods = plan(384, [16, 64, 100], ["pca", "smec"], stacked=["smec"], supervised=["smec"])
    names = {(m.name, m.dim, m.m) for m in methods}
    assert ("full", 384, None) in names and ("pca", 100, None) in names
    assert ("pq", 384, 16) in names and ("opq", 384, 64) in names and ("pq", 384, 100) not in names  # 100 does not divide 384
    assert ("smec+opq", 64, 16) in names and ("smec+binary", 64, None) in names and ("smec+binary", 100, None) not in names
    assert all(m.supervised == m.name.startswith("smec") for m in methods)
    with pytest.raises(SmecError, match="1..384"):
        plan(384, [512], ["pca"])


def test_plan_adds_the_per_budget_quantisers_on_pca_at_the_widest_dim_that_fits():
    methods = plan(384, [16], ["pca"], budgets=[16, 64, 96])
    names = {(m.name, m.dim, m.m, m.bits) for m in methods}
    assert ("pca+rabitq-1bit", 64, None, 1) in names and ("pca+rabitq-unrotated-1bit", 64, None, 1) in names
    assert ("pca+rabitq-2bit", 176, None, 2) in names and ("pca+binary-rerank", 128, None, None) in names
    assert ("opq", 384, 64, None) in names and ("opq", 384, 96, None) in names and ("rank-opq", 384, 16, None) in names
    assert {m.dim for m in methods if m.name == "pca+rabitq-2bit"} == {176, 304}  # 20 bytes of factors: none in 16
    assert len(methods) == len(set(methods))  # 64 and 96 bytes both reach 384 sign bits: listed once
    assert not any(m.bits for m in plan(384, [16], ["truncation"], budgets=[16]))  # RaBitQ rows stack on PCA only
    assert ("rank-opq", 384, 16) in {(m.name, m.dim, m.m) for m in plan(384, [16], ["truncation"], budgets=[16])}
    assert plan(384, [16], ["pca"], budgets=[16], quantizers=False) == plan(384, [16], ["pca"], quantizers=False)
    with pytest.raises(SmecError, match="at least 1"):
        plan(384, [16], ["pca"], budgets=[0])


def test_compare_scores_sizes_and_reference(toy):
    corpus, queries, qrels = toy
    reducers = {"pca": PCA().fit(corpus.vectors), "truncation": Truncation().fit(corpus.vectors)}
    methods = [
        Method("full", None, 32), Method("truncation", "truncation", 32), Method("pca", "pca", 8),
        Method("binary", None, 32, "binary"), Method("pq", None, 32, "pq", m=4), Method("pca+int8", "pca", 16, "int8"),
    ]
    rows = {r.method: r for r in compare(corpus, queries, qrels, methods, reducers, heldout=["q0", "q1", "q2"])}
    full = rows["full"]
    assert full.pct_of_full == 100.0 and full.bytes_per_vector == 128 and 0.5 < full.ndcg10 < 1.0
    assert rows["truncation"].ndcg10 == pytest.approx(full.ndcg10)
    assert rows["pca"].ndcg10 < full.ndcg10
    assert [rows[m].bytes_per_vector for m in ("pca", "binary", "pq", "pca+int8")] == [32, 4, 4, 16]
    assert rows["pq"].compression == pytest.approx(32.0)
    assert full.ndcg10_heldout is not None and rows["pca"].recall100 >= rows["pca"].recall10


def test_heldout_queries_drop_those_sharing_a_training_positive():
    test = {"a": {"d1": 1}, "b": {"d2": 1, "d3": 1}, "c": {"d4": 1, "d5": 0}}
    train = {"t1": {"d3": 1}, "t2": {"d5": 1, "d4": 0}}
    assert heldout_queries(test, train) == ["a", "c"]


def test_report_files(toy, tmp_path):
    corpus, queries, qrels = toy
    rows = compare(corpus, queries, qrels, [Method("full", None, 32), Method("binary", None, 32, "binary")], {})
    write_report(rows, tmp_path, info={"dataset": "toy"})
    data = json.loads((tmp_path / "report.json").read_text())
    assert [r["method"] for r in data["rows"]] == ["full", "binary"] and data["info"]["dataset"] == "toy"
    md = (tmp_path / "report.md").read_text()
    assert "| binary | 32 | 4 | 32x |" in md
    assert "| 4 | binary |" in best_per_budget(rows, [4])
    assert to_markdown(rows).count("\n") == 4


def test_fit_smec_heads_fits_the_supervised_head_only_with_training_qrels(toy, tmp_path):
    from smec_compress.evaluation.run import fit_smec_heads

    corpus, queries, qrels = toy
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{q}\t{d}\t1\n" for q, rel in qrels.items() for d in rel))
    params = {"epochs_per_stage": 1, "min_steps_per_stage": 0, "threads": 1}
    assert list(fit_smec_heads(corpus, queries, None, [8, 32], **params)) == ["smec"]  # 32 = input dim: not a head dim
    heads = fit_smec_heads(corpus, queries, train, [8], **params)
    assert list(heads) == ["smec", "smec-sup"] and heads["smec-sup"].dims_ == (8,)
    assert heads["smec"].transform(corpus.vectors, 8).shape == (600, 8)


def test_best_per_budget_ranks_by_held_out_so_label_overlap_cannot_win():
    def row(name, size, ndcg, held, sup=False):
        return Row(name, 8, size, 1536 / size, ndcg, 0.0, 0.0, 0.0, 100 * ndcg / 0.6, held, sup)

    rows = [row("full", 1536, 0.6, 0.6), row("smec-sup", 32, 0.75, 0.45, sup=True), row("opq", 32, 0.58, 0.55)]
    table = best_per_budget(rows, [32, 1536])
    assert "| 32 | opq | 8 | 32 | 0.5500 | 91.7 | 0.5800 |" in table and "| 1536 | full |" in table
    without_heldout = [Row(**{**r.__dict__, "ndcg10_heldout": None}) for r in rows]
    assert "| 32 | smec-sup (sup) |" in best_per_budget(without_heldout, [32])


def test_a_heads_own_budget_codecs_get_rows_scored_through_its_encode_and_search(toy):
    from smec_compress import SMEC

    corpus, queries, qrels = toy
    head = SMEC(dims=(16, 8), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=5).fit(corpus.vectors, budgets=(4, 8))
    chosen = {b: bc.candidate for b, bc in head.codecs_.items()}
    methods = [m for m in plan(32, [8], ["smec"], head_codecs={"smec": chosen}) if m.budget is not None]
    assert [m.budget for m in methods] == [4, 8] and methods[0].name == f"smec 4B: {chosen[4].label}"
    rows = compare(corpus, queries, qrels, [Method("full", None, 32), *methods], {"smec": head})
    for row, budget in zip(rows[1:], (4, 8)):
        codes = head.encode(corpus.vectors, budget=budget)
        assert row.bytes_per_vector == codes.shape[1] <= budget and row.ndcg10 > 0.2  # chance: ~0.01


def test_a_head_anchored_on_the_judged_queries_is_refused(toy):
    from smec_compress import SMEC
    from smec_compress.evaluation.run import check_head

    corpus, queries, qrels = toy
    head = SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=2).fit(
        corpus.vectors, budgets=(8,), anchor_queries=queries.vectors, anchor_ids=queries.ids)
    with pytest.raises(SmecError, match="anchored on 40 of the judged queries"):
        check_head(head, corpus, [8], judged=qrels)
    assert check_head(head, corpus, [8], judged={"other": {}}) == []


def test_rescored_rows_rerank_each_methods_candidates_with_the_full_vectors(toy):
    corpus, queries, qrels = toy
    methods = [Method("full", None, 32), Method("truncation", "truncation", 4)]
    plain = compare(corpus, queries, qrels, methods, {"truncation": Truncation().fit(corpus.vectors)})
    rows = compare(corpus, queries, qrels, methods, {"truncation": Truncation().fit(corpus.vectors)}, rescore=100)
    assert [r.method for r in rows] == ["full", "truncation", "truncation +rescore 100"]
    assert rows[:2] == plain and rows[2].rescored == 100 and rows[2].bytes_per_vector == rows[1].bytes_per_vector
    assert rows[1].ndcg10 < rows[2].ndcg10 <= rows[0].ndcg10 + 1e-9  # full-dim order of truncation's candidates
    assert rows[2].recall100 == rows[1].recall100  # the same 100 documents, reordered
    assert best_within(rows, [16])[0][1].method == "truncation"  # rescored rows also read the disk: not ranked per byte

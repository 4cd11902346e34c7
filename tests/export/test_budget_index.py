"""A head's budget codec exported as one FAISS index over raw full-dim vectors searches exactly as
``SMEC.search`` does, whether the codec sits on the full vectors or behind a head dim."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from smec_compress import SMEC, write_embeddings
from smec_compress.codecs.budget import Candidate, Choice, fit_candidate
from smec_compress.codecs.distil import RankTraining
from smec_compress.errors import SmecError
from smec_compress.export.budget_index import budget_index, build_budget_index
from smec_compress.export.index import load_index
from smec_compress.model.budgets import BudgetCodec

from ..conftest import clustered

CANDIDATES = {
    4: Candidate("opq", 16, "smec", m=4),  # OPQ behind the head: head transforms + OPQ's own rotation
    5: Candidate("rabitq", 16, "smec", bits=1),  # rotated RaBitQ behind the head
    8: Candidate("int8", 8, "smec"),
    16: Candidate("opq", 32, None, m=16),  # on the full vectors
    2: Candidate("binary-rerank", 16, "smec"),
    6: Candidate("qat-int8", 6, "smec"),  # quantisation in the loop: the codec holds its own trained map
    9: Candidate("qat-int4", 16, "smec"),
    12: Candidate("qat-opq", 16, "smec", m=4),
    3: Candidate("qat-binary", 16, "smec"),
}


@pytest.fixture(scope="module")
def head_and_rows():
    x = clustered(n=900, d=32, clusters=10)
    head = SMEC(dims=(16, 8, 6), epochs_per_stage=1, min_steps_per_stage=0).fit(x)
    training = RankTraining(steps=20, lr=1e-3)
    head.codecs_ = {b: BudgetCodec(Choice(b, c, {}), fit_candidate(c, x, head, training=training))
                    for b, c in CANDIDATES.items()}
    return head, x


@pytest.mark.parametrize("budget", [4, 5, 8, 16, 6, 9, 12])
@pytest.mark.parametrize("reload", [True, False], ids=["read back", "in process"])
def test_the_exported_index_takes_raw_vectors_and_searches_as_the_head(head_and_rows, budget, reload):
    head, x = head_and_rows
    x = x * np.linspace(0.5, 2.0, len(x), dtype=np.float32)[:, None]  # raw rows need not be unit
    index = budget_index(head, budget)
    if reload:  # as another process reads it
        index = faiss.deserialize_index(faiss.serialize_index(index))
    assert index.d == 32
    index.add(x)
    got, want = index.search(x[:40], 10), head.search(head.encode(x, budget=budget), x[:40], 10, budget=budget)
    assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], atol=1e-5)


def test_sign_bits_are_refused_with_the_reason(head_and_rows):
    head, _ = head_and_rows
    for budget in (2, 3):
        with pytest.raises(SmecError, match="binary queries"):
            budget_index(head, budget)


def test_build_budget_index_streams_a_corpus_file_into_a_loadable_index(head_and_rows, tmp_path):
    head, x = head_and_rows
    write_embeddings(tmp_path / "c.parquet", [f"d{i}" for i in range(len(x))], x)
    stats = build_budget_index(head, tmp_path / "c.parquet", tmp_path / "idx", budget=4, batch_rows=100)
    index, ids, loaded, _ = load_index(tmp_path / "idx")
    assert stats == loaded and stats.count == len(x) and stats.bytes_per_vector == 4 and ids[:2] == ["d0", "d1"]
    assert np.array_equal(index.search(x[:10], 5)[1], head.search(head.encode(x, budget=4), x[:10], 5, budget=4)[1])


@pytest.mark.parametrize("budget", [4, 8, 16, 6, 12])
def test_inverted_lists_hold_the_same_codes_and_all_lists_search_as_the_flat_codec(head_and_rows, budget, tmp_path):
    from smec_compress.export.budget_index import with_inverted_lists

    head, x = head_and_rows
    flat = budget_index(head, budget)
    ivf = with_inverted_lists(flat, x, rows=len(x), nprobe=10_000)
    inner = faiss.downcast_index(ivf.index)
    assert isinstance(inner, faiss.IndexIVF) and inner.nprobe == inner.nlist  # every list: an exact scan of the codes
    flat.add(x)
    ivf = faiss.deserialize_index(faiss.serialize_index(ivf))  # as index --budget saves it
    ivf.add(x)
    got, want = ivf.search(x[:40], 10), flat.search(x[:40], 10)
    assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], atol=1e-5)
    assert faiss.downcast_index(ivf.index).code_size == faiss.downcast_index(flat.index).sa_code_size()  # same bytes a vector


def test_rabitq_budgets_stay_an_exact_scan(head_and_rows):
    from smec_compress.export.budget_index import with_inverted_lists

    head, x = head_and_rows
    assert with_inverted_lists(budget_index(head, 5), x, rows=len(x)) is None


def test_build_budget_index_uses_inverted_lists_above_ivf_rows(head_and_rows, tmp_path):
    head, x = head_and_rows
    write_embeddings(tmp_path / "c.parquet", [f"d{i}" for i in range(len(x))], x)
    stats = build_budget_index(head, tmp_path / "c.parquet", tmp_path / "idx", budget=4, ivf_rows=100, nprobe=4)
    index, ids, loaded, _ = load_index(tmp_path / "idx")
    assert stats.index_type.startswith("IVF") and "(nprobe 4)" in stats.index_type and index.ntotal == len(x)
    assert faiss.downcast_index(index.index).nprobe == 4 and stats.bytes_per_vector == 4

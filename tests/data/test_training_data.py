"""Supervised pairs: qrels joined to vectors by id, unknown ids counted, nothing usable refused."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.errors import SmecError
from smec_compress.data.io import Embeddings
from smec_compress.data.training_data import training_pairs


def test_pairs_join_by_id_and_skip_unknown(tmp_path):
    corpus = Embeddings(["d1", "d2", "d3"], np.eye(3, dtype=np.float32))
    queries = Embeddings(["q1", "q2"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    (tmp_path / "t.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\nq1\td1\t1\nq2\td9\t1\nq9\td1\t1\nq2\td2\t0\n")
    q, pos, report = training_pairs(corpus, queries, tmp_path / "t.tsv")
    np.testing.assert_array_equal(q, [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(pos, [2, 0])
    assert "2 training pairs" in report and "1 pairs with unknown query ids, 1 with unknown doc ids" in report


def test_no_usable_pairs_is_an_error(tmp_path):
    corpus = Embeddings(["d1"], np.eye(1, dtype=np.float32))
    (tmp_path / "t.tsv").write_text("qx\tdx\t1\n")
    with pytest.raises(SmecError, match="no usable pairs"):
        training_pairs(corpus, corpus, tmp_path / "t.tsv")

"""BEIR loading: titles joined like MTEB, gzip transparency, and broken files named precisely."""

from __future__ import annotations

import gzip
import json

import pytest

from smec_compress.data.beir import find_file, is_beir_dir, read_qrels, read_texts
from smec_compress.errors import SmecError

from ..conftest import SAMPLE


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_title_is_prepended_like_mteb(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", [{"_id": "1", "title": "T", "text": "body"}, {"_id": "2", "title": "", "text": "x"}])
    assert read_texts(tmp_path / "c.jsonl", title=True) == (["1", "2"], ["T body", "x"])
    assert read_texts(tmp_path / "c.jsonl", title=False) == (["1", "2"], ["body", "x"])


def test_gzip_and_id_alias(tmp_path):
    with gzip.open(tmp_path / "q.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": 7, "text": "claim"}) + "\n\n")
    assert read_texts(tmp_path / "q.jsonl.gz", title=False) == (["7"], ["claim"])


def test_broken_line_is_named(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"_id": "1", "text": "a"}\n{not json\n')
    with pytest.raises(SmecError, match=r"c.jsonl:2: not valid JSON"):
        read_texts(tmp_path / "c.jsonl", title=True)


def test_missing_keys_and_duplicates(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"_id": "1"}])
    with pytest.raises(SmecError, match=r"record 1 lacks '_id'/'id' or 'text' \(keys: \['_id'\]\)"):
        read_texts(tmp_path / "a.jsonl", title=True)
    write_jsonl(tmp_path / "b.jsonl", [{"_id": "1", "text": "a"}, {"_id": "1", "text": "b"}])
    with pytest.raises(SmecError, match="1 duplicate ids"):
        read_texts(tmp_path / "b.jsonl", title=True)


def test_qrels_header_optional_and_scores(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    assert read_qrels(tmp_path / "q.tsv") == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    (tmp_path / "bad.tsv").write_text("q1\td1\n")
    with pytest.raises(SmecError, match=r"bad.tsv:1: expected 'query-id<TAB>corpus-id<TAB>score'"):
        read_qrels(tmp_path / "bad.tsv")
    with pytest.raises(SmecError, match="qrels file not found"):
        read_qrels(tmp_path / "none.tsv")


def test_shipped_sample_is_a_beir_dataset():
    assert is_beir_dir(SAMPLE)
    ids, texts = read_texts(find_file(SAMPLE, "corpus"), title=True)
    qids, _ = read_texts(find_file(SAMPLE, "queries"), title=False)
    test = read_qrels(SAMPLE / "qrels" / "test.tsv")
    assert len(ids) == 1000 and len(qids) == 500 and len(test) == 300
    assert all(d in set(ids) for rel in test.values() for d in rel)
    assert all(t.strip() for t in texts)

"""`smec-compress eval` end to end on the shipped sample's precomputed vectors."""

from __future__ import annotations

import json
import sys

import faiss
import numpy as np
import pytest
import torch

from smec_compress.cli import common, main
from smec_compress.model.head import SMEC
from smec_compress.data.io import read_embeddings

from ..conftest import SAMPLE, SAMPLE_EMBEDDINGS

pytestmark = pytest.mark.skipif(not SAMPLE_EMBEDDINGS.is_file(), reason="sample embeddings not built (scripts/make_sample.py)")
QRELS = SAMPLE / "qrels" / "test.tsv"


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a shared machine, OpenMP spinning on busy cores makes OPQ training crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def run(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Call the CLI in-process (no interpreter start-up) and return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["smec-compress", *map(str, args)])
    monkeypatch.setattr(common.out, "width", 200)
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return exc.value.code or 0, captured.out, captured.err


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory):
    """A quickly fitted head (dims 32, 16) on the sample's vectors."""
    corpus = read_embeddings(SAMPLE_EMBEDDINGS)
    head = SMEC(dims=(32, 16), epochs_per_stage=1, min_steps_per_stage=0, seed=0)
    head.fit(corpus.vectors, embedder_fingerprint=corpus.meta.fingerprint)
    return head.save(tmp_path_factory.mktemp("head"))


def test_eval_writes_table_report_and_plot(monkeypatch, capsys, tmp_path, head_dir):
    code, out, err = run(
        monkeypatch, capsys, "eval", SAMPLE_EMBEDDINGS, "--qrels", QRELS, "--train-qrels", SAMPLE / "qrels" / "train.tsv",
        "--dims", "16", "--budgets", "16", "--head", head_dir, "--no-adaptor", "--out", tmp_path, "--bootstrap", "200",
    )
    assert code == 0, err
    assert "nDCG@10" in out and "smec+opq" in out and "skipped" in err and "best within each byte budget" in out
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {(r["method"], r["dim"]): r for r in report["rows"]}
    assert rows[("full", 384)]["pct_of_full"] == 100.0 and 0.4 < rows[("full", 384)]["ndcg10"] < 0.9
    assert rows[("pca", 16)]["bytes_per_vector"] == 64 and rows[("smec+binary", 16)]["bytes_per_vector"] == 2
    assert rows[("opq", 384)]["bytes_per_vector"] == 16 and rows[("smec+opq", 16)]["bytes_per_vector"] == 4
    assert rows[("smec", 16)]["ndcg10_heldout"] is not None
    assert rows[("pca+rabitq-1bit", 64)]["bytes_per_vector"] == 16 and rows[("pca+binary-rerank", 128)]["bytes_per_vector"] == 16
    assert report["info"]["budgets"] == [16] and rows[("rank-opq", 384)]["bytes_per_vector"] == 16
    assert report["info"]["heldout_queries"] < report["info"]["judged_queries"]
    assert (tmp_path / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| smec | 16 | 64 |" in (tmp_path / "report.md").read_text()
    # --bootstrap: smec at 16 d against the strongest simple reducer there, by mean nDCG@10
    (interval,) = [i for i in report["info"]["bootstrap"] if i["dim"] == 16]
    strongest = max((rows[(m, 16)] for m in ("pca", "pca-centred", "truncation")), key=lambda r: r["ndcg10"])
    assert interval["theirs"] == strongest["method"] and interval["low"] <= interval["diff"] <= interval["high"]
    assert interval["diff"] == pytest.approx(rows[("smec", 16)]["ndcg10"] - strongest["ndcg10"], abs=1e-9)
    assert "paired bootstrap, 200 resamples" in out


def test_a_dim_the_head_lacks_is_refused(monkeypatch, capsys, head_dir):
    code, _, err = run(monkeypatch, capsys, "eval", SAMPLE_EMBEDDINGS, "--qrels", QRELS, "--dims", "64", "--head", head_dir)
    assert code == 2 and "has no dims [64]" in err and "trained dims: [32, 16]" in err


def test_a_head_from_another_dimension_is_refused(monkeypatch, capsys, tmp_path):
    x = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)
    SMEC(dims=(16,), epochs_per_stage=1, min_steps_per_stage=0).fit(x).save(tmp_path)
    code, _, err = run(monkeypatch, capsys, "eval", SAMPLE_EMBEDDINGS, "--qrels", QRELS, "--dims", "16", "--head", tmp_path)
    assert code == 2 and "384 dims but this head was trained on 48" in err


def test_qrels_of_another_dataset_are_refused(monkeypatch, capsys, tmp_path):
    qrels = tmp_path / "other.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nnope\tnada\t1\n")
    code, _, err = run(monkeypatch, capsys, "eval", SAMPLE_EMBEDDINGS, "--qrels", qrels, "--dims", "16")
    assert code == 2 and "no judged query" in err


def test_a_head_from_another_embedder_is_refused_unless_forced(monkeypatch, capsys, tmp_path):
    x = np.random.default_rng(0).standard_normal((64, 384)).astype(np.float32)
    SMEC(dims=(16,), epochs_per_stage=1, min_steps_per_stage=0).fit(x, embedder_fingerprint="0123456789abcdef").save(tmp_path)
    args = ("eval", SAMPLE_EMBEDDINGS, "--qrels", QRELS, "--dims", "16", "--head", tmp_path, "--no-adaptor", "--no-quantizers")
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2 and "differs from the one this head was trained on" in err
    code, out, _ = run(monkeypatch, capsys, *args, "--force")
    assert code == 0 and "smec" in out


def test_a_bad_budget_is_one_line_and_exit_2(monkeypatch, capsys):
    for budgets, message in (("0", "at least 1"), ("16,x", "comma-separated integers"), ("", "--budgets is empty")):
        code, out, err = run(monkeypatch, capsys, "eval", SAMPLE_EMBEDDINGS, "--qrels", QRELS, "--dims", "16", "--budgets", budgets)
        assert code == 2 and message in err and "Traceback" not in err + out


def test_the_tables_fit_80_columns_with_whole_method_names(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["smec-compress", "eval", str(SAMPLE_EMBEDDINGS), "--qrels", str(QRELS),
                                      "--dims", "16", "--budgets", "16", "--no-adaptor"])
    monkeypatch.setattr(common.out, "width", 80)
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr().out
    assert (exc.value.code or 0) == 0 and "pca+rabitq-unrotated-1bit" in out and "best method" in out
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out

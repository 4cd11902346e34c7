"""The command line as a new user meets it: help that reads at 80 columns, errors that come alone
(before any progress bar), and a stopped command that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from smec_compress import SMEC, read_embeddings, write_embeddings
from smec_compress.export.index import load_index

from ..conftest import ROOT, SAMPLE, SAMPLE_EMBEDDINGS, clustered, run_cli

COMMANDS = ("embed", "fit", "compress", "eval", "index", "export", "serve", "reindex")


def run_at_80_columns(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "smec_compress", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_fits_80_columns_without_cutting_words(command):
    result = run_at_80_columns(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    if command == "eval":  # the words 0.1.0 cut off ("sentence-transfor…") are there whole
        assert "sentence-transformers" in result.stdout


@pytest.fixture
def head_and_corpus(tmp_path):
    x = clustered(n=200, d=24)
    write_embeddings(tmp_path / "c.parquet", [str(i) for i in range(200)], x)
    SMEC(dims=(12, 6), epochs_per_stage=1, min_steps_per_stage=0).fit(x, threads=1).save(tmp_path / "head")
    return tmp_path


@pytest.mark.slow
def test_compress_with_an_untrained_dim_fails_before_any_progress_bar(head_and_corpus):
    t = head_and_corpus
    result = run_cli("compress", t / "head", t / "c.parquet", "--dim", "65", "--out", t / "o.parquet")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --dim 65 is not a trained dim; trained dims: [12, 6]"
    assert not (t / "o.parquet").exists()


@pytest.mark.slow
def test_eval_of_embeddings_without_qrels_fails_before_any_progress_bar(tmp_path):
    result = run_cli("eval", SAMPLE_EMBEDDINGS)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and "needs --qrels" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_fit_with_bad_dims_fails_before_reading_the_corpus(head_and_corpus):
    t = head_and_corpus
    result = run_cli("fit", t / "c.parquet", "--dims", "6,12", "--out", t / "h2")
    assert result.returncode == 2 and "strictly decreasing" in result.stderr
    assert "read corpus" not in result.stderr and not (t / "h2").exists()


@pytest.mark.slow
@pytest.mark.parametrize("budgets, message", [("0", "1..96"), ("97", "1..96"), ("16,x", "comma-separated integers")])
def test_fit_with_a_bad_budget_fails_before_reading_and_writes_nothing(head_and_corpus, budgets, message):
    t = head_and_corpus
    result = run_cli("fit", t / "c.parquet", "--dims", "12,6", "--budgets", budgets, "--out", t / "h2")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert "read corpus" not in result.stderr and not (t / "h2").exists()


@pytest.mark.slow
def test_fit_with_budgets_saves_and_reports_a_codec_per_budget(head_and_corpus):
    t = head_and_corpus
    result = run_cli("fit", t / "c.parquet", "--dims", "12,6", "--epochs", "1", "--budgets", "3,12", "--codec-steps", "5",
                     "--out", t / "h2")
    assert result.returncode == 0, result.stderr
    assert "3 B: " in result.stdout and "12 B: " in result.stdout and "recall@10" in result.stdout
    head = SMEC.load(t / "h2")
    assert head.budgets_ == (3, 12) and all(head.encode(clustered(n=5, d=24), budget=b).shape[1] <= b for b in (3, 12))
    choice = head.codecs_[3].choice  # 3 bytes: sign bits of the 24-d input or int4 / sign bits of the 6-d head
    assert {"binary-rerank 24 d", "smec+int4 6 d"} <= set(choice.recall)
    assert choice.recall[choice.candidate.key] == max(choice.recall.values())  # the best by the criterion
    x = read_embeddings(t / "c.parquet").vectors
    for budget in (3, 12):
        result = run_cli("index", t / "c.parquet", "--head", t / "h2", "--budget", str(budget), "--out", t / f"i{budget}")
        if head.codecs_[budget].candidate.codec == "binary-rerank":
            assert result.returncode == 2 and "binary queries" in result.stderr and not (t / f"i{budget}").exists()
            continue
        assert result.returncode == 0, result.stderr
        index, ids, stats, _ = load_index(t / f"i{budget}")
        assert stats.bytes_per_vector <= budget and ids[0] == "0"
        want = head.search(head.encode(x, budget=budget), x[:10], 5, budget=budget)[1]
        assert np.array_equal(index.search(x[:10], 5)[1], want)  # raw full-dim vectors in, the head's search out
    result = run_cli("index", t / "c.parquet", "--head", t / "h2", "--budget", "99", "--out", t / "i99")
    assert result.returncode == 2 and "no codec for 99 bytes; its budgets: 3, 12" in result.stderr


@pytest.mark.slow
def test_vectors_embedded_without_normalisation_get_a_head_that_keeps_norms_end_to_end(tmp_path):
    """The input's metadata decides (a flag overrides it); compress records that its output is not
    unit; budgets, whose codecs search unit vectors, are refused for such a head before any reading."""
    from smec_compress import EmbeddingMeta
    from smec_compress.data.files import read_meta

    x = clustered(n=200, d=24) * np.random.default_rng(2).lognormal(0.0, 0.5, (200, 1)).astype(np.float32)
    write_embeddings(tmp_path / "raw.parquet", [str(i) for i in range(200)], x, EmbeddingMeta(normalized=False))
    result = run_cli("fit", tmp_path / "raw.parquet", "--dims", "12,6", "--epochs", "1", "--out", tmp_path / "h")
    assert result.returncode == 0, result.stderr
    assert "the head keeps norms" in result.stderr and "--normalize for cosine" in result.stderr
    assert SMEC.load(tmp_path / "h").config_.normalize is False
    result = run_cli("compress", tmp_path / "h", tmp_path / "raw.parquet", "--dim", "6", "--out", tmp_path / "c.parquet")
    assert result.returncode == 0, result.stderr
    z = read_embeddings(tmp_path / "c.parquet").vectors
    assert read_meta(tmp_path / "c.parquet").normalized is False and np.linalg.norm(z, axis=1).std() > 0.1
    result = run_cli("fit", tmp_path / "raw.parquet", "--dims", "12,6", "--epochs", "1", "--normalize", "--out", tmp_path / "h2")
    assert result.returncode == 0 and "keeps norms" not in result.stderr and SMEC.load(tmp_path / "h2").config_.normalize
    result = run_cli("fit", tmp_path / "raw.parquet", "--dims", "12,6", "--budgets", "12", "--out", tmp_path / "h3")
    assert result.returncode == 2 and "need a head that normalises" in result.stderr and "Traceback" not in result.stderr
    assert "read corpus" not in result.stderr and not (tmp_path / "h3").exists()


@pytest.mark.slow
def test_fit_with_unlabelled_queries_needs_budgets_and_then_anchors_the_codecs(head_and_corpus):
    t = head_and_corpus
    write_embeddings(t / "q.parquet", [f"q{i}" for i in range(40)], clustered(n=40, d=24, seed=3))
    result = run_cli("fit", t / "c.parquet", "--dims", "12,6", "--queries", t / "q.parquet", "--out", t / "h3")
    assert result.returncode == 2 and "add --budgets" in result.stderr and not (t / "h3").exists()
    result = run_cli("fit", t / "c.parquet", "--dims", "12,6", "--epochs", "1", "--queries", t / "q.parquet",
                     "--budgets", "12", "--codec-steps", "5", "--out", t / "h3")
    assert result.returncode == 0, result.stderr
    assert "40 unlabelled queries anchor the codecs" in result.stderr and SMEC.load(t / "h3").budgets_ == (12,)


@pytest.mark.slow
def test_a_supervised_fit_says_per_dim_which_map_the_held_back_queries_kept(head_and_corpus):
    t = head_and_corpus
    write_embeddings(t / "q.parquet", [f"q{i}" for i in range(40)], clustered(n=40, d=24, seed=3))
    (t / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{i}\t1\n" for i in range(40)))
    result = run_cli("fit", t / "c.parquet", "--dims", "12,6", "--validation", "0.1", "--out", t / "h4")
    assert result.returncode == 2 and "--validation holds back labelled queries" in result.stderr and not (t / "h4").exists()
    result = run_cli("fit", t / "c.parquet", "--dims", "12,6", "--epochs", "1", "--queries", t / "q.parquet",
                     "--qrels", t / "qrels.tsv", "--validation", "0.25", "--out", t / "h4")
    assert result.returncode == 0, result.stderr
    s = SMEC.load(t / "h4").supervision_
    assert s["held_out_queries"] == 10 and "supervision checked on 10 held-back labelled queries" in result.stdout
    for d in (12, 6):
        kept = "supervised" if d in s["supervised_dims"] else "unsupervised"
        assert f"{d} d: {kept} kept ({s['ndcg10_supervised'][str(d)]:.3f} vs {s['ndcg10_unsupervised'][str(d)]:.3f})" in result.stdout


@pytest.mark.slow
def test_a_supervised_fit_can_be_checked_on_a_dev_splits_qrels(head_and_corpus):
    t = head_and_corpus
    write_embeddings(t / "q.parquet", [f"q{i}" for i in range(40)], clustered(n=40, d=24, seed=3))
    (t / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{i}\t1\n" for i in range(30)))
    (t / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{i}\t1\n" for i in range(30, 40)))
    base = ("fit", t / "c.parquet", "--dims", "12,6", "--epochs", "1")
    for extra, message in [(("--validation-qrels", t / "dev.tsv"), "needs --queries and --qrels"),
                           (("--queries", t / "q.parquet", "--qrels", t / "train.tsv", "--validation", "0.2",
                             "--validation-qrels", t / "dev.tsv"), "not both")]:
        result = run_cli(*base, *extra, "--out", t / "h5")
        assert result.returncode == 2 and message in result.stderr and not (t / "h5").exists(), result.stderr
    result = run_cli(*base, "--queries", t / "q.parquet", "--qrels", t / "train.tsv", "--validation-qrels", t / "dev.tsv",
                     "--out", t / "h5")
    assert result.returncode == 0, result.stderr
    assert "30 training pairs" in result.stderr and "10 validation pairs" in result.stderr
    s = SMEC.load(t / "h5").supervision_
    assert s["validation"] == "validation queries" and s["held_out_queries"] == 10
    assert "supervision checked on 10 validation queries" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_embed_leaves_no_output_and_no_temporary(tmp_path, sig, code):
    out = tmp_path / "out" / "s.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "smec_compress", "embed", str(SAMPLE), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".s.parquet.tmp-*")):  # the writer has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "embed never started writing"
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=180)  # the handler runs once the model call in flight returns: slow when other jobs share the cores
    assert proc.returncode == code, err
    if sig == signal.SIGTERM:  # Ctrl-C is click's to report: it exits 130 quietly
        assert "no partial output was kept" in err
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_debug_flag_comes_from_the_root_option(monkeypatch, capsys, tmp_path):
    """--debug (a root option) re-raises instead of printing one line; without it: one line, exit 2."""
    from smec_compress.cli import main
    from smec_compress.errors import SmecError

    missing = tmp_path / "none.parquet"
    monkeypatch.setattr(sys, "argv", ["smec-compress", "index", str(missing), "--out", str(tmp_path / "i")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "file not found" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["smec-compress", "--debug", "index", str(missing), "--out", str(tmp_path / "i")])
    with pytest.raises(SmecError, match="file not found"):
        main()


@pytest.mark.slow
def test_export_writes_a_model_that_emits_the_heads_vectors_and_refuses_another_embedder(tmp_path):
    from sentence_transformers import SentenceTransformer

    from smec_compress.data.embed import Embedder

    embedder = Embedder()
    texts = [f"sentence {i} about {w}" for i, w in enumerate(["cats", "proteins", "stars", "law"] * 10)]
    base = embedder.encode(texts)
    SMEC(dims=(16, 8), epochs_per_stage=1, min_steps_per_stage=0).fit(
        base, embedder_fingerprint=embedder.fingerprint, threads=1).save(tmp_path / "head")
    ok = run_cli("export", tmp_path / "head", "--dim", "8", "--out", tmp_path / "enc")
    assert ok.returncode == 0, ok.stderr
    head = SMEC.load(tmp_path / "head")
    got = SentenceTransformer(str(tmp_path / "enc"), device="cpu").encode(texts, convert_to_numpy=True)
    assert np.allclose(got, head.transform(base, 8), atol=1e-5)
    again = run_cli("export", tmp_path / "head", "--dim", "8", "--out", tmp_path / "enc")
    assert again.returncode == 2 and "already exists" in again.stderr
    SMEC(dims=(8,), epochs_per_stage=1, min_steps_per_stage=0).fit(
        base, embedder_fingerprint="0123456789abcdef", threads=1).save(tmp_path / "other")
    other = run_cli("export", tmp_path / "other", "--dim", "8", "--out", tmp_path / "enc2")
    assert other.returncode == 2 and "fingerprint" in other.stderr and not (tmp_path / "enc2").exists()
    bad_dim = run_cli("export", tmp_path / "head", "--dim", "4", "--out", tmp_path / "enc3")
    assert bad_dim.returncode == 2 and "[16, 8]" in bad_dim.stderr and not (tmp_path / "enc3").exists()

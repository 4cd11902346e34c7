"""compress: streaming a head over Parquet/Arrow IPC keeps ids and columns, records provenance, refuses misuse."""

from __future__ import annotations

import re
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smec_compress.errors import SmecError
from smec_compress.model.head import SMEC
from smec_compress import EmbeddingMeta, EmbeddingWriter, read_embeddings, write_embeddings
from smec_compress.engines.local import compress_file

from ..conftest import run_cli, unit_rows


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rng = np.random.default_rng(1)
    x = unit_rows(rng, 300, 32)
    head = SMEC(dims=(16, 8), epochs_per_stage=1, min_steps_per_stage=0, seed=0).fit(x, embedder_fingerprint="fp-a")
    root = tmp_path_factory.mktemp("head")
    head.save(root / "head")
    return head, root / "head", x


def write_with_extra(path, x, fingerprint="fp-a"):
    meta = EmbeddingMeta(model="m", fingerprint=fingerprint, kind="corpus")
    table = pa.table({
        "id": [f"d{i}" for i in range(len(x))],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
        "lang": ["en", "de"] * (len(x) // 2),
    }).replace_schema_metadata({b"smec_compress": meta.to_bytes()})
    pq.write_table(table, path)


def test_compress_equals_transform_and_keeps_columns(tmp_path, fitted):
    head, _, x = fitted
    write_with_extra(tmp_path / "in.parquet", x)
    rows = compress_file(head, tmp_path / "in.parquet", tmp_path / "out.parquet", dim=8, batch_rows=64)
    out = read_embeddings(tmp_path / "out.parquet")
    assert rows == 300 and out.ids == [f"d{i}" for i in range(300)]
    np.testing.assert_allclose(out.vectors, head.transform(x, 8), atol=1e-6)  # batching changes BLAS blocking
    assert pq.read_table(tmp_path / "out.parquet").column("lang").to_pylist()[:2] == ["en", "de"]
    assert out.meta.dim == 8 and out.meta.head_fingerprint == head.fingerprint and out.meta.source_dim == 32
    assert out.meta.fingerprint == "fp-a" and out.meta.kind == "corpus"


def test_refuses_unknown_dim_other_dimension_and_other_embedder(tmp_path, fitted):
    head, _, x = fitted
    write_with_extra(tmp_path / "in.parquet", x)
    with pytest.raises(SmecError, match=r"trained dims: \[16, 8\]"):
        compress_file(head, tmp_path / "in.parquet", tmp_path / "o.parquet", dim=12)
    write_embeddings(tmp_path / "wide.parquet", ["a"], unit_rows(np.random.default_rng(2), 1, 48))
    with pytest.raises(SmecError):
        compress_file(head, tmp_path / "wide.parquet", tmp_path / "o.parquet", dim=8)
    write_with_extra(tmp_path / "other.parquet", x, fingerprint="fp-b")
    with pytest.raises(SmecError):
        compress_file(head, tmp_path / "other.parquet", tmp_path / "o.parquet", dim=8)
    assert not (tmp_path / "o.parquet").exists()
    compress_file(head, tmp_path / "other.parquet", tmp_path / "o.parquet", dim=8, force=True)
    assert read_embeddings(tmp_path / "o.parquet").dim == 8


@pytest.mark.slow
def test_cli_compress_and_errors(tmp_path, fitted):
    head, head_dir, x = fitted
    write_with_extra(tmp_path / "in.parquet", x)
    ok = run_cli("compress", head_dir, tmp_path / "in.parquet", "--dim", "16", "--out", tmp_path / "o.parquet")
    assert ok.returncode == 0, ok.stderr
    np.testing.assert_allclose(read_embeddings(tmp_path / "o.parquet").vectors, head.transform(x, 16), atol=1e-6)
    assert re.search(r"wrote 300 x 16 vectors to .*o\.parquet in [0-9.]+s \([0-9,]+ vectors/s\)", " ".join(ok.stdout.split()))
    arrow = run_cli("compress", head_dir, tmp_path / "in.parquet", "--dim", "8", "--out", tmp_path / "o.arrow")
    assert arrow.returncode == 0, arrow.stderr
    np.testing.assert_allclose(read_embeddings(tmp_path / "o.arrow").vectors, head.transform(x, 8), atol=1e-6)
    bad = run_cli("compress", head_dir, tmp_path / "in.parquet", "--dim", "12", "--out", tmp_path / "p.parquet")
    assert bad.returncode == 2 and "trained dims: [16, 8]" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("compress", tmp_path / "nohead", tmp_path / "in.parquet", "--dim", "8", "--out", tmp_path / "p.parquet")
    assert missing.returncode == 2 and "nohead" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "p.parquet").exists()


def test_arrow_ipc_in_and_out_equal_parquet(tmp_path, fitted):
    """The fast path (.arrow, memory-mapped, ids passed through as Arrow) writes what Parquet does."""
    head, _, x = fitted
    write_with_extra(tmp_path / "in.parquet", x)
    compress_file(head, tmp_path / "in.parquet", tmp_path / "ref.parquet", dim=8, batch_rows=64)
    compress_file(head, tmp_path / "in.parquet", tmp_path / "mid.arrow", dim=16, batch_rows=64)
    table = pq.read_table(tmp_path / "in.parquet")
    with pa.ipc.new_file(str(tmp_path / "in.arrow"), table.schema) as writer:
        writer.write_table(table, max_chunksize=100)  # record batches that straddle the 64-row batches
    rows = compress_file(head, tmp_path / "in.arrow", tmp_path / "out.arrow", dim=8, batch_rows=64)
    ref, out = read_embeddings(tmp_path / "ref.parquet"), read_embeddings(tmp_path / "out.arrow")
    assert rows == 300 and out.ids == ref.ids
    np.testing.assert_allclose(out.vectors, ref.vectors, atol=1e-6)  # other batch edges, other BLAS blocking
    assert out.meta == ref.meta
    back = pa.ipc.open_file(str(tmp_path / "out.arrow")).read_all()
    assert back.column("lang").to_pylist() == table.column("lang").to_pylist()
    assert back.schema.field("embedding").type == pa.list_(pa.float32(), 8)
    assert read_embeddings(tmp_path / "mid.arrow").vectors.shape == (300, 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_rows_are_refused_by_id_and_nothing_is_written(tmp_path, fitted, bad):
    head, _, x = fitted
    x = x.copy()
    x[123, 5] = bad
    write_with_extra(tmp_path / "in.parquet", x)
    with pytest.raises(SmecError, match=r"1 rows contain NaN or inf \(first id 'd123'\)"):
        compress_file(head, tmp_path / "in.parquet", tmp_path / "out.parquet", dim=8, batch_rows=64)
    assert list(tmp_path.iterdir()) == [tmp_path / "in.parquet"]


def test_inf_row_spoils_its_whole_output_row(fitted):
    """What the output-side NaN/inf check rests on, including weights that are exactly zero."""
    head, _, x = fitted
    w, b = head.weights_[8]
    rows = np.repeat(x[:1], 3, axis=0)
    rows[0, 0], rows[1, 7], rows[2, 31] = np.inf, -np.inf, np.nan
    zeroed = SMEC.__new__(SMEC)
    zeroed.__dict__.update(head.__dict__)
    w0 = w.copy()
    w0[7, :] = 0.0
    zeroed.weights_ = {**head.weights_, 8: (w0, b)}
    with np.errstate(invalid="ignore"):
        for model in (head, zeroed):
            assert not np.isfinite(model.transform(rows, 8)).any()


def test_files_with_other_columns_are_refused_and_nothing_is_written(tmp_path, fitted):
    head, _, x = fitted
    (tmp_path / "in").mkdir()
    write_with_extra(tmp_path / "in" / "a.parquet", x[:150])
    write_embeddings(tmp_path / "in" / "b.parquet", [f"e{i}" for i in range(150)], x[150:],
                     EmbeddingMeta(model="m", fingerprint="fp-a"))
    with pytest.raises(SmecError, match=r"b.parquet: its other columns \(none\) differ from the first file's \(lang: string\)"):
        compress_file(head, tmp_path / "in", tmp_path / "out.arrow", dim=8, batch_rows=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_failing_write_surfaces_and_removes_the_partial_file(tmp_path, fitted, monkeypatch):
    head, _, x = fitted
    write_with_extra(tmp_path / "in.parquet", x)
    calls = []
    original = EmbeddingWriter.write

    def failing(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, *args)

    monkeypatch.setattr(EmbeddingWriter, "write", failing)
    with pytest.raises(OSError, match="disk full") as raised:
        compress_file(head, tmp_path / "in.parquet", tmp_path / "out.parquet", dim=8, batch_rows=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
    # the read-ahead thread has stopped, though the traceback (and so compress's frame) is still held
    assert raised.traceback and not [t for t in threading.enumerate() if t.name == "smec-read-ahead"]


@pytest.fixture(scope="module")
def with_budgets(tmp_path_factory):
    rng = np.random.default_rng(2)
    x = unit_rows(rng, 400, 32)
    head = SMEC(dims=(16, 8), epochs_per_stage=1, min_steps_per_stage=0, codec_steps=5, seed=0).fit(
        x, budgets=(4, 8), embedder_fingerprint="fp-a")
    root = tmp_path_factory.mktemp("head-b")
    head.save(root / "head")
    return head, root / "head", x


@pytest.mark.parametrize("suffix", ["parquet", "arrow"])
def test_encode_writes_the_budgets_codes_with_the_codec_named(tmp_path, with_budgets, suffix):
    from smec_compress.data.codes import read_codes
    from smec_compress.engines.local import encode_file

    head, _, x = with_budgets
    write_with_extra(tmp_path / "in.parquet", x)
    rows = encode_file(head, tmp_path / "in.parquet", tmp_path / f"codes.{suffix}", budget=8, batch_rows=64)
    ids, codes, meta = read_codes(tmp_path / f"codes.{suffix}")
    assert rows == len(ids) == len(x) and ids[:2] == ["d0", "d1"]
    assert np.array_equal(codes, head.encode(x, budget=8)) and codes.shape[1] == meta.code_size <= 8
    assert (meta.budget, meta.codec, meta.head_fingerprint, meta.source_dim) == (
        8, head.codecs_[8].candidate.key, head.fingerprint, 32)
    assert meta.source.fingerprint == "fp-a" and meta.source.model == "m"
    table = pq.read_table(tmp_path / "codes.parquet") if suffix == "parquet" else None
    if table is not None:
        assert table.column_names == ["id", "code", "lang"] and table.schema.field("code").type == pa.binary(codes.shape[1])


def test_cli_compress_budget_and_its_errors(tmp_path, with_budgets):
    from smec_compress.data.codes import read_codes

    head, head_dir, x = with_budgets
    write_with_extra(tmp_path / "in.parquet", x)
    ok = run_cli("compress", head_dir, tmp_path / "in.parquet", "--budget", "4", "--out", tmp_path / "c.parquet")
    assert ok.returncode == 0, ok.stderr
    assert np.array_equal(read_codes(tmp_path / "c.parquet")[1], head.encode(x, budget=4))
    for args, message in ((["--budget", "5"], "no codec for 5"), (["--budget", "4", "--dim", "8"], "not both"),
                          ([], "not both or neither")):
        bad = run_cli("compress", head_dir, tmp_path / "in.parquet", *args, "--out", tmp_path / "bad.parquet")
        assert bad.returncode == 2 and message in bad.stderr + bad.stdout and not (tmp_path / "bad.parquet").exists()
    x[3, 2] = np.nan
    write_with_extra(tmp_path / "nan.parquet", x)
    nan = run_cli("compress", head_dir, tmp_path / "nan.parquet", "--budget", "4", "--out", tmp_path / "bad.parquet")
    assert nan.returncode == 2 and "d3" in nan.stderr + nan.stdout and not (tmp_path / "bad.parquet").exists()

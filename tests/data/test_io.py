"""Parquet and Arrow IPC embeddings: round trips, foreign layouts, streaming, and every kind of bad file."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smec_compress.errors import SmecError
from smec_compress import Columns, EmbeddingMeta, EmbeddingWriter, read_embeddings, write_embeddings
from smec_compress.data.files import count_rows, read_meta
from smec_compress.data.io import iter_batches

from ..conftest import run_cli, unit_rows


def write_list_table(path, ids, rows, *, value_type=pa.float32(), id_name="id", emb_name="embedding"):
    # rows as numpy arrays of the value type: pyarrow < 21 cannot convert Python floats to float16
    dtype = value_type.to_pandas_dtype()
    emb = pa.array([np.asarray(r, dtype=dtype) if r is not None else None for r in rows], type=pa.list_(value_type))
    pq.write_table(pa.table({id_name: ids, emb_name: emb}), path)


def test_round_trip_is_exact_and_keeps_metadata(tmp_path, rng):
    vectors = unit_rows(rng, 1000, 24)
    ids = [f"doc{i}" for i in range(1000)]
    meta = EmbeddingMeta(model="m", normalized=True, fingerprint="abc", kind="corpus")
    write_embeddings(tmp_path / "e.parquet", ids, vectors, meta, batch_rows=300)
    back = read_embeddings(tmp_path / "e.parquet", batch_rows=128)
    assert back.ids == ids
    assert back.vectors.dtype == np.float32
    np.testing.assert_array_equal(back.vectors, vectors)
    assert back.meta == EmbeddingMeta(model="m", dim=24, normalized=True, fingerprint="abc", kind="corpus")
    schema = pq.read_schema(tmp_path / "e.parquet")
    assert schema.field("embedding").type == pa.list_(pa.float32(), 24)
    assert pq.ParquetFile(tmp_path / "e.parquet").metadata.num_row_groups == 4


@pytest.mark.parametrize("value_type", [pa.float16(), pa.float32(), pa.float64()])
def test_reads_variable_lists_of_any_float_width(tmp_path, rng, value_type):
    vectors = rng.standard_normal((50, 8)).astype(np.float16).astype(np.float32)
    write_list_table(tmp_path / "f.parquet", [str(i) for i in range(50)], vectors, value_type=value_type)
    back = read_embeddings(tmp_path / "f.parquet")
    np.testing.assert_array_equal(back.vectors, vectors)
    assert back.meta.fingerprint is None


def test_custom_column_names_and_integer_ids(tmp_path, rng):
    vectors = unit_rows(rng, 10, 4)
    write_list_table(tmp_path / "c.parquet", list(range(10)), vectors, id_name="doc_id", emb_name="vec")
    back = read_embeddings(tmp_path / "c.parquet", columns=Columns(id="doc_id", embedding="vec"))
    assert back.ids == [str(i) for i in range(10)]
    np.testing.assert_allclose(back.vectors, vectors)


def test_directory_is_one_dataset_in_file_order(tmp_path, rng):
    parts = [unit_rows(rng, n, 6) for n in (5, 7, 3)]
    for i, part in enumerate(parts):
        write_embeddings(tmp_path / f"part-{i}.parquet", [f"{i}-{j}" for j in range(len(part))], part)
    back = read_embeddings(tmp_path)
    np.testing.assert_array_equal(back.vectors, np.concatenate(parts))
    assert back.ids[:2] == ["0-0", "0-1"] and back.ids[-1] == "2-2"


def test_streaming_passes_other_columns_through(tmp_path, rng):
    vectors = unit_rows(rng, 20, 4)
    table = pa.table({
        "id": [str(i) for i in range(20)],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4),
        "lang": ["en"] * 20,
    })
    pq.write_table(table, tmp_path / "p.parquet")
    batches = list(iter_batches(tmp_path / "p.parquet", batch_rows=8))
    assert [len(b.ids) for b in batches] == [8, 8, 4]
    assert batches[0].rest.column_names == ["lang"]


def test_writer_leaves_nothing_under_final_name_on_failure(tmp_path, rng):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with EmbeddingWriter(target, 4) as writer:
            writer.write(["a"], unit_rows(rng, 1, 4))
            raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_never_clobbers_a_good_file_on_failure(tmp_path, rng):
    target = tmp_path / "out.parquet"
    write_embeddings(target, ["x"], unit_rows(rng, 1, 4))
    with pytest.raises(SmecError):
        with EmbeddingWriter(target, 4) as writer:
            writer.write(["a", "b"], unit_rows(rng, 2, 5))  # wrong dim
    assert read_embeddings(target).ids == ["x"]


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_direct_writer_writes_the_same_file(tmp_path, rng, suffix):
    """``direct=True`` (O_DIRECT, used by compress) changes how bytes reach the disk, not which."""
    vectors, ids = unit_rows(rng, 3000, 16), [f"d{i}" for i in range(3000)]
    for name, direct in (("buffered", False), ("direct", True)):
        with EmbeddingWriter(tmp_path / f"{name}{suffix}", 16, EmbeddingMeta(model="m"), direct=direct) as writer:
            for start in range(0, 3000, 1000):
                writer.write(ids[start : start + 1000], vectors[start : start + 1000])
    assert (tmp_path / f"direct{suffix}").read_bytes() == (tmp_path / f"buffered{suffix}").read_bytes()
    np.testing.assert_array_equal(read_embeddings(tmp_path / f"direct{suffix}").vectors, vectors)


def test_writer_removes_its_temporary_file_when_closing_fails(tmp_path, rng, monkeypatch):
    from smec_compress.data.direct_io import DirectFile

    def disk_full(self, nbytes):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DirectFile, "_write_out", disk_full)  # the footer's flush on close fails
    with pytest.raises(OSError, match="No space left"):
        with EmbeddingWriter(tmp_path / "out.arrow", 4, direct=True) as writer:
            writer.write(["a"], unit_rows(rng, 1, 4))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("direct", [False, True])
def test_writer_that_cannot_start_leaves_no_temporary_file(tmp_path, monkeypatch, direct):
    def broken(self, sink):
        raise OSError("cannot write the header")

    monkeypatch.setattr(EmbeddingWriter, "_open_writer", broken)
    with pytest.raises(OSError, match="header"):
        with EmbeddingWriter(tmp_path / "out.arrow", 4, direct=direct):
            pass
    assert list(tmp_path.iterdir()) == []


def test_parquet_vectors_are_byte_stream_split_without_dictionary(tmp_path, rng):
    """The encoding that bench/scale.py measured smaller and faster to read than the default."""
    write_embeddings(tmp_path / "e.parquet", [f"d{i}" for i in range(100)], unit_rows(rng, 100, 8))
    columns = pq.ParquetFile(tmp_path / "e.parquet").metadata.row_group(0)
    by_name = {columns.column(i).path_in_schema: columns.column(i) for i in range(columns.num_columns)}
    vectors = by_name["embedding.list.element"]
    assert "BYTE_STREAM_SPLIT" in vectors.encodings and not vectors.has_dictionary_page
    assert vectors.compression == "ZSTD" and by_name["id"].has_dictionary_page


def test_arrow_ipc_round_trip_is_memory_mapped(tmp_path, rng):
    vectors = unit_rows(rng, 1000, 24)
    ids = [f"doc{i}" for i in range(1000)]
    meta = EmbeddingMeta(model="m", normalized=True, fingerprint="abc", kind="corpus")
    write_embeddings(tmp_path / "e.arrow", ids, vectors, meta, batch_rows=300)
    with pa.memory_map(str(tmp_path / "e.arrow")) as source:
        table = pa.ipc.open_file(source).read_all()  # a plain Arrow IPC file, readable by any Arrow tool
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 24) and table.num_rows == 1000
    back = read_embeddings(tmp_path / "e.arrow", batch_rows=128)
    assert back.ids == ids and back.meta == replace(meta, dim=24)
    np.testing.assert_array_equal(back.vectors, vectors)
    batches = list(iter_batches(tmp_path / "e.arrow", batch_rows=128))
    assert [len(b.vectors) for b in batches[:4]] == [128, 128, 44, 128]  # 300-row record batches, sliced
    first = batches[0].vectors
    assert not first.flags.writeable and not first.flags.owndata  # a view of the mapped file, not a copy
    np.testing.assert_array_equal(first, vectors[:128])


def test_arrow_ipc_stream_format_is_read_too(tmp_path, rng):
    """Hugging Face datasets and other tools write the IPC stream layout under .arrow."""
    vectors = unit_rows(rng, 50, 4)
    table = pa.table({"id": [f"s{i}" for i in range(50)],
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4)})
    with pa.ipc.new_stream(str(tmp_path / "s.arrow"), table.schema) as writer:
        writer.write_table(table, max_chunksize=20)
    assert count_rows(tmp_path / "s.arrow") == 50
    back = read_embeddings(tmp_path / "s.arrow", batch_rows=16)
    assert back.ids[-1] == "s49"
    np.testing.assert_array_equal(back.vectors, vectors)


def test_directory_may_mix_parquet_and_arrow_files(tmp_path, rng):
    parts = [unit_rows(rng, n, 6) for n in (5, 7)]
    write_embeddings(tmp_path / "part-0.parquet", [f"0-{j}" for j in range(5)], parts[0])
    write_embeddings(tmp_path / "part-1.arrow", [f"1-{j}" for j in range(7)], parts[1])
    back = read_embeddings(tmp_path)
    np.testing.assert_array_equal(back.vectors, np.concatenate(parts))
    assert back.ids[0] == "0-0" and back.ids[-1] == "1-6" and count_rows(tmp_path) == 12


def test_writer_passes_arrow_ids_through_and_casts_integers(tmp_path, rng):
    vectors = unit_rows(rng, 3, 4)
    with EmbeddingWriter(tmp_path / "i.arrow", 4) as writer:
        writer.write(pa.array([7, 8, 9]), vectors)
    assert read_embeddings(tmp_path / "i.arrow").ids == ["7", "8", "9"]


def test_batch_ids_are_converted_only_when_asked(tmp_path, rng):
    write_embeddings(tmp_path / "e.parquet", ["a", "b"], unit_rows(rng, 2, 4))
    batch = next(iter_batches(tmp_path / "e.parquet"))
    assert "ids" not in batch.__dict__ and batch.id_array.to_pylist() == ["a", "b"]
    assert batch.ids == ["a", "b"]


# ---- bad input: each names the file, the column and a count ----

def test_missing_file(tmp_path):
    with pytest.raises(SmecError, match="missing.parquet: file not found"):
        read_embeddings(tmp_path / "missing.parquet")


def test_not_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_text("id,embedding\n1,2\n")
    with pytest.raises(SmecError, match="bad.parquet: not a readable Parquet file"):
        read_embeddings(tmp_path / "bad.parquet")


def test_not_arrow_ipc(tmp_path, rng):
    write_embeddings(tmp_path / "real.parquet", ["a"], unit_rows(rng, 1, 4))
    (tmp_path / "bad.arrow").write_bytes((tmp_path / "real.parquet").read_bytes())
    with pytest.raises(SmecError, match="bad.arrow: not a readable Arrow IPC file"):
        read_embeddings(tmp_path / "bad.arrow")


def test_no_embedding_column(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "vector": [[1.0, 2.0]]}), tmp_path / "n.parquet")
    with pytest.raises(SmecError, match=r"no embedding column 'embedding' \(columns: id, vector; choose one with --embedding-column\)"):
        read_embeddings(tmp_path / "n.parquet")


def test_ragged_vectors(tmp_path):
    rows = [[1, 2, 3]] * 5 + [[1, 2], [1, 2, 3, 4]]
    write_list_table(tmp_path / "r.parquet", list("abcdefg"), rows)
    with pytest.raises(SmecError, match=r"r.parquet, column 'embedding': ragged embeddings: 2 of 3 rows .* \(first at row 5, length 2\)"):
        read_embeddings(tmp_path / "r.parquet", batch_rows=4)


def test_nan_and_inf_rows_are_counted(tmp_path):
    rows = [[1.0, 0.0], [float("nan"), 1.0], [0.0, 1.0], [float("inf"), 0.0]]
    write_list_table(tmp_path / "nan.parquet", ["a", "b", "c", "d"], rows)
    with pytest.raises(SmecError, match=r"nan.parquet, column 'embedding': 2 rows contain NaN or inf \(first id 'b'\)"):
        read_embeddings(tmp_path / "nan.parquet")


def test_null_vectors(tmp_path):
    write_list_table(tmp_path / "null.parquet", ["a", "b"], [[1.0, 2.0], None])
    with pytest.raises(SmecError, match="1 rows have no embedding"):
        read_embeddings(tmp_path / "null.parquet")


def test_non_float_values(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "embedding": [["x", "y"]]}), tmp_path / "s.parquet")
    with pytest.raises(SmecError, match="embedding values have type string"):
        read_embeddings(tmp_path / "s.parquet")


def test_empty_file(tmp_path):
    schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32(), 4))])
    pq.write_table(schema.empty_table(), tmp_path / "empty.parquet")
    with pytest.raises(SmecError, match="empty.parquet: no rows"):
        read_embeddings(tmp_path / "empty.parquet")


def test_empty_directory(tmp_path):
    with pytest.raises(SmecError, match="directory holds no .parquet/.arrow"):
        read_embeddings(tmp_path)


def test_dimensions_differ_across_files(tmp_path, rng):
    write_embeddings(tmp_path / "a.parquet", ["a"], unit_rows(rng, 1, 8))
    write_embeddings(tmp_path / "b.parquet", ["b"], unit_rows(rng, 1, 6))
    with pytest.raises(SmecError, match=r"b.parquet: vectors have 6 dims but .*a.parquet has 8"):
        read_embeddings(tmp_path)


def test_read_meta_of_foreign_file_is_empty(tmp_path):
    write_list_table(tmp_path / "f.parquet", ["a"], [[1.0]])
    assert read_meta(tmp_path / "f.parquet") == EmbeddingMeta()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_text("nope"), "not a readable Parquet file"),
        (lambda p: write_list_table(p, ["a", "b"], [[1.0, 2.0], [float("nan"), 0.0]]), "1 rows contain NaN or inf"),
    ],
)
@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path, make, message):
    path = tmp_path / "in.parquet"
    make(path)
    result = run_cli("fit", path, "--dims", "1", "--out", tmp_path / "head")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    last = result.stderr.strip().splitlines()[-1]  # a progress bar may stand above it
    assert len(errors) == 1 and last == errors[0] and message in last and "in.parquet" in last


@pytest.mark.slow
def test_cli_debug_shows_traceback(tmp_path):
    result = run_cli("--debug", "fit", tmp_path / "missing.parquet", "--out", tmp_path / "head")
    assert result.returncode != 0 and "Traceback" in result.stderr

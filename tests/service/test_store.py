"""``service.store`` without HTTP: exactness across segments, recovery, reindex, concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from service.settings import Settings
from service.store import Store, reindex
from service.wal import HEADER
from smec_compress.errors import SmecError

from .conftest import fit_head, unit


def brute_force(head, docs: np.ndarray, ids: list[str], queries: np.ndarray, dim: int, k: int) -> list[list[str]]:
    scores = head.transform(queries, dim) @ head.transform(docs, dim).T
    return [[ids[i] for i in np.argsort(-row, kind="stable")[:k]] for row in scores]


def ids_only(results) -> list[list[str]]:
    return [[i for i, _ in row] for row in results]


def test_many_small_writes_merge_into_few_segments_and_stay_exact(head, tmp_path):
    store = Store.open(tmp_path, head, snapshot_every=50)
    x = unit(np.random.default_rng(0), 300)
    ids = [f"d{i}" for i in range(300)]
    for start in range(0, 300, 7):  # 43 writes
        store.upsert(ids[start : start + 7], x[start : start + 7])
    assert len(store) == 300
    assert len(store._state.segments) <= 9  # O(log n) segments, not 43
    q = unit(np.random.default_rng(1), 20)
    for dim in (32, 16):
        assert ids_only(store.search(q, dim, 10)) == brute_force(head, x, ids, q, dim, 10)
    store.close()


def test_deletes_and_updates_are_invisible_to_search_and_compacted(head, tmp_path):
    store = Store.open(tmp_path, head)
    x = unit(np.random.default_rng(2), 100)
    ids = [f"d{i}" for i in range(100)]
    store.upsert(ids, x)
    assert store.delete(ids[:60] + ["missing"]) == ids[:60]
    state = store._state
    assert len(state.tombstones) == 0 and sum(s.rows for s in state.segments) == 40  # >half dead: rewritten
    q = x[:5]
    assert ids_only(store.search(q, 16, 40)) == brute_force(head, x[60:], ids[60:], q, 16, 40)
    store.upsert(["d70"], x[:1])  # an update moves d70
    assert store.search(x[:1], 32, 1)[0][0][0] == "d70"
    np.testing.assert_array_equal(store.get("d70"), x[0])
    assert store.get("d0") is None
    store.close()


def vector_files(path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in path.glob("seg-*.f32")}


@pytest.mark.parametrize("snapshot_between", [False, True])
def test_the_merge_frees_deleted_rows_vectors_and_index_entries(head, tmp_path, snapshot_between):
    """Deleting most of a segment rewrites it with its live rows: the dead rows' full vectors
    leave the disk (at once, or with the next snapshot once a manifest named the old file) and
    their index entries leave RAM, with no reindex."""
    store = Store.open(tmp_path, head)
    x = unit(np.random.default_rng(12), 200)
    ids = [f"d{i}" for i in range(200)]
    store.upsert(ids, x)
    row = 48 * 4
    assert sum(vector_files(tmp_path).values()) == 200 * row
    if snapshot_between:
        store.snapshot()
    ram = store.storage()["ram_bytes"]
    store.delete(ids[:150])
    if snapshot_between:
        store.snapshot()
    assert sum(vector_files(tmp_path).values()) == 50 * row == store.storage()["full_vectors_disk_bytes"]
    assert store.storage()["ram_bytes"] == pytest.approx(ram / 4, rel=0.05)
    np.testing.assert_array_equal(store.get("d199"), x[199])
    q = unit(np.random.default_rng(13), 5)
    assert ids_only(store.search(q, 16, 10, rescore=50)) == [  # every live row rescored: the exact full-dim top 10
        [ids[150 + i] for i in np.argsort(-(x[150:] @ row_q), kind="stable")[:10]] for row_q in q]
    store.close()
    reopened = Store.open(tmp_path, head)
    assert len(reopened) == 50 and sum(vector_files(tmp_path).values()) == 50 * row
    reopened.close()


def test_full_vectors_are_memory_mapped_not_held_in_ram(head, tmp_path):
    store = Store.open(tmp_path, head)
    store.upsert([f"d{i}" for i in range(30)], unit(np.random.default_rng(14), 30))
    store.close()
    reopened = Store.open(tmp_path, head)
    assert [type(s.vectors) for s in reopened._state.segments] == [np.memmap]
    reopened.close()


def test_a_format_1_directory_with_vectors_inside_the_parquet_is_read_and_migrated(head, tmp_path):
    """Format 1 stored a segment's vectors in its Parquet file: opening such a directory writes
    the ``.f32`` files and serves the same documents."""
    import json

    import pyarrow as pa

    from smec_compress.data.schema import EmbeddingMeta
    from smec_compress.data.writer import EmbeddingWriter

    store = Store.open(tmp_path, head)
    x = unit(np.random.default_rng(15), 40)
    ids = [f"d{i}" for i in range(40)]
    store.upsert(ids, x)
    store.delete(["d7"])
    store.close()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for seg_id in manifest["segments"]:  # rewrite each segment as format 1 wrote it
        seg = tmp_path / f"seg-{seg_id:08d}.parquet"
        vec = tmp_path / f"seg-{seg_id:08d}.f32"
        table = __import__("pyarrow.parquet").parquet.read_table(seg)
        rows = np.fromfile(vec, "<f4").reshape(-1, 48)
        iids = table.column("iid").to_numpy()
        seg.unlink()
        vec.unlink()
        with EmbeddingWriter(seg, 48, EmbeddingMeta(kind="corpus"), rest_schema=pa.schema([("iid", pa.int64())])) as writer:
            writer.write(table.column("id").to_pylist()[::-1], rows[::-1], pa.table({"iid": pa.array(iids[::-1], pa.int64())}))
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    reopened = Store.open(tmp_path, head)
    assert len(reopened) == 39 and reopened.get("d7") is None
    for i in (0, 8, 39):
        np.testing.assert_array_equal(reopened.get(f"d{i}"), x[i])
    assert sum(vector_files(tmp_path).values()) == 40 * 48 * 4
    reopened.close()


def test_torn_tail_of_the_log_is_dropped_and_the_rest_replayed(head, tmp_path):
    store = Store.open(tmp_path, head)
    x = unit(np.random.default_rng(3), 30)
    for i in range(3):
        store.upsert([f"a{i}", f"b{i}"], x[2 * i : 2 * i + 2])
    wal = store._wal.path
    store._wal.close()  # "crash": no snapshot, lock released like a dead process's
    store._files.lock.release()
    size = wal.stat().st_size
    with open(wal, "ab") as fh:  # a record cut off mid-payload, as a crash during write() leaves it
        fh.write(HEADER.pack(b"SMW1", 1, 1, 48, 10_000, 0) + b"\x00" * 100)
    reopened = Store.open(tmp_path, head)
    assert len(reopened) == 6 and wal.stat().st_size == size
    reopened.upsert(["c"], x[10:11])  # appends after the cut, so a later replay sees it
    reopened._wal.close()
    reopened._files.lock.release()
    again = Store.open(tmp_path, head)
    assert len(again) == 7 and again.get("c") is not None
    again.close()


def test_snapshot_files_are_self_contained_and_orphans_removed(head, tmp_path):
    store = Store.open(tmp_path, head, snapshot_every=2)
    x = unit(np.random.default_rng(4), 20)
    for i in range(5):
        store.upsert([f"d{i}"], x[i : i + 1])
    before = store.search(x, 32, 5)
    (tmp_path / "seg-99999999.parquet").write_bytes(b"left by a crashed snapshot")
    store.close()
    reopened = Store.open(tmp_path, head)
    assert not (tmp_path / "seg-99999999.parquet").exists()
    assert reopened.search(x, 32, 5) == before
    reopened.close()


def test_reindex_with_a_new_head_equals_a_fresh_build(head, tmp_path):
    new_head = fit_head(2)
    x = unit(np.random.default_rng(5), 80)
    ids = [f"d{i}" for i in range(80)]
    store = Store.open(tmp_path / "a", head)
    store.upsert(ids[:50], x[:50])
    store.upsert(ids[50:], x[50:])
    store.delete(["d3"])
    store.close()
    with pytest.raises(SmecError, match="reindex"):
        Store.open(tmp_path / "a", new_head)
    rebuilt = reindex(tmp_path / "a", new_head)
    keep = [i for i in range(80) if i != 3]
    q = unit(np.random.default_rng(6), 10)
    assert ids_only(rebuilt.search(q, 16, 10)) == brute_force(new_head, x[keep], [ids[i] for i in keep], q, 16, 10)
    rebuilt.close()
    assert len(Store.open(tmp_path / "a", new_head)) == 79


def test_a_head_of_another_input_dim_is_refused(head, tmp_path):
    store = Store.open(tmp_path, head)
    store.upsert(["a"], unit(np.random.default_rng(9), 1))
    store.close()
    with pytest.raises(SmecError, match="holds 48-d vectors but the head takes 40-d"):
        Store.open(tmp_path, fit_head(0, input_dim=40, dims=(16,)))


@pytest.mark.parametrize("factory", ["HNSW16", "IVF8,Flat"])
def test_faiss_factory_indexes_for_large_segments(head, tmp_path, factory):
    store = Store.open(tmp_path, head, factories={16: factory}, index_min_rows=200, index_params="")
    x = unit(np.random.default_rng(7), 400)
    ids = [f"d{i}" for i in range(400)]
    store.upsert(ids, x)
    store.delete(["d0"])
    info = {s.dim: s for s in store.stats()}
    assert info[16].index_type == factory and info[32].index_type == "Flat"
    hits = store.search(x[:2], 16, 5)
    assert hits[1][0][0] == "d1" and "d0" not in {i for i, _ in hits[0]}
    store.close()
    assert Store.open(tmp_path, head, factories={16: factory}, index_min_rows=200).search(x[:2], 16, 5) == hits


def test_bad_factory_strings_are_refused_with_the_reason(head, tmp_path):
    with pytest.raises(SmecError, match="not valid for dim 16"):
        Store.open(tmp_path, head, factories={16: "NoSuchIndex"})
    with pytest.raises(SmecError, match="leave out IDMap"):
        Store.open(tmp_path, head, factories={16: "IDMap,Flat"})


def test_searches_during_writes_see_whole_batches_only(head, tmp_path):
    """Each batch is 8 copies of one vector under 8 ids; a query for that vector with k=8 must
    see all 8 or none of them: a search never observes half a write, in any dim."""
    store = Store.open(tmp_path, head, fsync=False)
    rng = np.random.default_rng(8)
    batches = unit(rng, 60)
    store.upsert([f"seed{i}" for i in range(40)], unit(rng, 40))
    errors: list[str] = []
    done = threading.Event()

    def writer():
        for b, v in enumerate(batches):
            store.upsert([f"b{b}-{j}" for j in range(8)], np.repeat(v[None], 8, axis=0))
        done.set()

    def reader(dim):
        checks = 0
        while not done.is_set() or checks < 50:
            b = int(rng.integers(len(batches)))
            hits = store.search(batches[b : b + 1], dim, 8)[0]
            seen = sum(i.startswith(f"b{b}-") for i, _ in hits)
            if seen not in (0, 8):
                errors.append(f"dim {dim}: batch {b} seen {seen}/8")
            checks += 1

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(d,)) for d in (32, 16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store) == 40 + 60 * 8
    store.close()


def test_deleted_documents_stay_hidden_after_a_write_of_new_ids(head, tmp_path):
    """A write that tombstones nothing must keep the existing tombstones' selector."""
    store = Store.open(tmp_path, head, fsync=False)
    x = unit(np.random.default_rng(10), 101)
    ids = [f"d{i}" for i in range(100)]
    store.upsert(ids, x[:100])
    store.delete(ids[:10])  # 10% dead: no rewrite, so only the selector hides them
    store.upsert(["new"], x[100:])  # no merge either (100 live rows vs 1)
    assert len(store._state.segments) == 2 and store._state.tombstones
    hits = {i for row in store.search(x[:10], 16, 101) for i, _ in row}
    assert hits.isdisjoint(ids[:10]) and len(hits) == 91
    store.close()


def test_from_settings_maps_every_store_setting(head, tmp_path):
    settings = Settings(head_dir=None, data_dir=tmp_path / "s", dims=[16], index_factory="Flat", index_factories={16: "HNSW16"},
                        index_params="efSearch=32", index_min_rows=123, snapshot_every=7, fsync=False, faiss_threads=3)
    store = Store.from_settings(settings, head)
    assert store.data_dir == tmp_path / "s" and store.dims == (16,)
    assert store.config.factories == {16: "HNSW16"} and store.config.params == "efSearch=32" and store.config.min_rows == 123
    assert store.snapshot_every == 7 and store.fsync is False and store._wal.fsync is False and store.search_threads == 3
    store.upsert(["a"], unit(np.random.default_rng(11), 1))
    store.close()
    default = Store.from_settings(Settings(head_dir=None, data_dir=tmp_path / "d"), head)
    assert default.dims == (32, 16) and default.config.factories == {32: "Flat", 16: "Flat"} and default.config.min_rows == 50_000
    assert default.snapshot_every == 1000 and default.fsync is True and default.search_threads == 1
    default.close()
    changed = Settings(head_dir=None, data_dir=tmp_path / "s", dims=[16], index_factories={16: "HNSW32"})
    with pytest.raises(SmecError, match="reindex"):
        Store.from_settings(changed, head)
    rebuilt = Store.from_settings(changed.model_copy(update={"reindex": True}), head)
    assert len(rebuilt) == 1 and rebuilt.config.factories == {16: "HNSW32"}
    rebuilt.close()


def test_reindex_publishes_every_state_it_builds(head, tmp_path):
    """No assignment to ``_state`` bypasses ``_publish``; searches after a reindex see the rebuilt indexes."""
    published: list = []

    class Watched(Store):
        publishing = False

        def __setattr__(self, name, value):
            if name == "_state" and "_files" in self.__dict__ and not self.publishing:
                raise AssertionError("_state assigned outside _publish")
            super().__setattr__(name, value)

        def _publish(self, state, **changes):
            object.__setattr__(self, "publishing", True)
            try:
                super()._publish(state, **changes)
            finally:
                object.__setattr__(self, "publishing", False)
            published.append(state)

    x = unit(np.random.default_rng(12), 60)
    ids = [f"d{i}" for i in range(60)]
    store = Watched.open(tmp_path, head)
    store.upsert(ids, x)
    store.delete(["d7"])
    store.close()
    new_head = fit_head(4)
    published.clear()
    rebuilt = Watched.open(tmp_path, new_head, reindex=True)
    assert any(s.count == 0 for s in published)  # the reset before the rebuild was published too
    assert rebuilt._state is published[-1] and rebuilt._state.count == 59  # iids compacted
    keep = [i for i in range(60) if i != 7]
    q = unit(np.random.default_rng(13), 5)
    assert ids_only(rebuilt.search(q, 32, 8)) == brute_force(new_head, x[keep], [ids[i] for i in keep], q, 32, 8)
    rebuilt.close()

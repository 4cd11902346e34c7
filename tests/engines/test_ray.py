"""--engine ray: Ray Data pipelines on a local Ray give the local engine's output."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

from smec_compress.errors import SmecError  # noqa: E402
from smec_compress.model.head import SMEC  # noqa: E402
from smec_compress import EmbeddingMeta, read_embeddings, write_embeddings  # noqa: E402
from smec_compress.engines.ray import compress_ray  # noqa: E402
from smec_compress.engines.local import compress_file  # noqa: E402

from ..conftest import unit_rows  # noqa: E402

pytestmark = pytest.mark.slow  # starts a local Ray cluster


@pytest.fixture(scope="module")
def local_ray():
    # logical CPUs (not cores): enough that read, map and write tasks never wait on each other
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def by_id(emb):
    order = np.argsort(np.asarray(emb.ids))
    return [emb.ids[i] for i in order], emb.vectors[order]


def test_compress_ray_equals_local(tmp_path, local_ray):
    rng = np.random.default_rng(0)
    x = unit_rows(rng, 600, 24)
    head = SMEC(dims=(12, 6), epochs_per_stage=1, min_steps_per_stage=0).fit(x, embedder_fingerprint="e")
    head.save(tmp_path / "head")
    meta = EmbeddingMeta(model="m", fingerprint="e")
    for part in range(3):  # a directory of files is one dataset
        rows = slice(200 * part, 200 * (part + 1))
        write_embeddings(tmp_path / "in" / f"p{part}.parquet", [f"d{i}" for i in range(600)][rows], x[rows], meta)
    n = compress_ray(head, tmp_path / "head", tmp_path / "in", tmp_path / "ray-out", dim=6, batch_rows=128)
    compress_file(head, tmp_path / "in", tmp_path / "local.parquet", dim=6)
    remote, local = read_embeddings(tmp_path / "ray-out"), read_embeddings(tmp_path / "local.parquet")
    assert n == 600
    (rid, rvec), (lid, lvec) = by_id(remote), by_id(local)
    assert rid == lid
    np.testing.assert_allclose(rvec, lvec, atol=1e-6)
    assert remote.meta == local.meta and remote.meta.head_fingerprint == head.fingerprint


def test_embed_ray_equals_local(tmp_path, local_ray):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smec_compress.data.embed import Embedder
    from smec_compress.engines.ray import embed_ray

    texts = [f"claim number {i} about proteins" for i in range(40)]
    pq.write_table(pa.table({"id": [str(i) for i in range(40)], "text": texts}), tmp_path / "t.parquet")
    n = embed_ray(tmp_path / "t.parquet", tmp_path / "emb")
    got = read_embeddings(tmp_path / "emb")
    ids, vectors = by_id(got)
    expected = Embedder().encode([texts[int(i)] for i in ids])
    assert n == 40 and sorted(ids) == sorted(str(i) for i in range(40))
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert got.meta.fingerprint == Embedder().fingerprint


def test_compress_ray_refuses_arrow_ipc_before_starting_ray(tmp_path):
    x = unit_rows(np.random.default_rng(0), 50, 8)
    head = SMEC(dims=(4,), epochs_per_stage=1, min_steps_per_stage=0).fit(x)
    head.save(tmp_path / "head")
    write_embeddings(tmp_path / "in" / "a.parquet", [f"a{i}" for i in range(50)], x)
    write_embeddings(tmp_path / "in" / "b.arrow", [f"b{i}" for i in range(50)], x)
    with pytest.raises(SmecError, match=r"b.arrow: --engine ray reads Parquet only"):
        compress_ray(head, tmp_path / "head", tmp_path / "in", tmp_path / "out", dim=4)
    assert not (tmp_path / "out").exists()

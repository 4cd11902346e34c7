"""Uniform sampling over Parquet without loading it whole."""

from __future__ import annotations

import numpy as np
import pytest

from smec_compress.data.writer import write_embeddings
from smec_compress.data.sampling import sample_embeddings

from ..conftest import unit_rows


def test_sample_is_a_subset_of_the_right_size_and_deterministic(tmp_path, rng):
    x = unit_rows(rng, 5000, 8)
    write_embeddings(tmp_path / "e.parquet", [str(i) for i in range(5000)], x, batch_rows=700)
    s, total = sample_embeddings(tmp_path / "e.parquet", 400, seed=3, batch_rows=512)
    again, _ = sample_embeddings(tmp_path / "e.parquet", 400, seed=3, batch_rows=512)
    assert total == 5000 and len(s.ids) == 400 and len(set(s.ids)) == 400
    np.testing.assert_array_equal(s.vectors, x[[int(i) for i in s.ids]])
    assert s.ids == again.ids


def test_sample_is_uniform_over_positions(tmp_path, rng):
    """Each row's inclusion probability is n/N: late rows are not under-sampled."""
    n_rows, n = 4000, 1000
    write_embeddings(tmp_path / "e.parquet", [str(i) for i in range(n_rows)], unit_rows(rng, n_rows, 2))
    counts = np.zeros(4)
    for seed in range(20):
        s, _ = sample_embeddings(tmp_path / "e.parquet", n, seed=seed, batch_rows=256)
        counts += np.bincount(np.array(s.ids, dtype=int) // 1000, minlength=4)
    share = counts / counts.sum()
    np.testing.assert_allclose(share, 0.25, atol=0.02)  # binomial sd ~0.002 per quarter


def test_small_dataset_is_returned_whole(tmp_path, rng):
    x = unit_rows(rng, 10, 4)
    write_embeddings(tmp_path / "e.parquet", list("abcdefghij"), x)
    s, total = sample_embeddings(tmp_path / "e.parquet", 100)
    assert total == 10 and s.ids == list("abcdefghij")


def test_keep_ids_are_always_in_the_sample(tmp_path, rng):
    x = unit_rows(rng, 3000, 4)
    write_embeddings(tmp_path / "e.parquet", [str(i) for i in range(3000)], x)
    s, _ = sample_embeddings(tmp_path / "e.parquet", 100, keep_ids={"5", "2999", "1234"}, batch_rows=500)
    assert {"5", "2999", "1234"} <= set(s.ids) and len(set(s.ids)) == len(s.ids) and 100 <= len(s.ids) <= 103
    np.testing.assert_array_equal(s.vectors, x[[int(i) for i in s.ids]])


@pytest.mark.slow
def test_fit_cli_trains_on_a_sample_with_a_step_cap(tmp_path, rng):
    import json

    from ..conftest import run_cli

    x = unit_rows(rng, 2000, 16)
    write_embeddings(tmp_path / "e.parquet", [str(i) for i in range(2000)], x)
    r = run_cli("fit", tmp_path / "e.parquet", "--dims", "8,4", "--sample-rows", "300", "--max-steps", "3",
                "--out", tmp_path / "head")
    assert r.returncode == 0, r.stderr
    assert "uniform sample of 300 of 2,000 rows" in r.stderr
    assert "on 300 x 16 vectors" in r.stdout
    config = json.loads((tmp_path / "head" / "config.json").read_text())["config"]
    assert config["max_steps_per_stage"] == 3
    bad = run_cli("fit", tmp_path / "e.parquet", "--max-steps", "0", "--out", tmp_path / "h2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "h2").exists()


@pytest.mark.slow
def test_fit_cli_sizes_the_sample_from_max_memory_and_refuses_a_budget_too_small(tmp_path, rng):
    from smec_compress.config import FitConfig
    from smec_compress.model.footprint import MIN_SAMPLE_ROWS, fit_footprint

    from ..conftest import run_cli

    n = MIN_SAMPLE_ROWS + 2000
    x = unit_rows(rng, n, 16)
    write_embeddings(tmp_path / "e.parquet", [str(i) for i in range(n)], x)
    budget = fit_footprint(16, FitConfig(dims=(8,))).bytes_for(MIN_SAMPLE_ROWS + 500)
    r = run_cli("fit", tmp_path / "e.parquet", "--dims", "8", "--max-steps", "2", "--max-memory", str(budget),
                "--out", tmp_path / "head")
    assert r.returncode == 0, r.stderr
    assert f"uniform sample of {MIN_SAMPLE_ROWS + 500:,} of {n:,} rows of 16 d (limited by" in r.stderr
    assert "--max-memory" in r.stderr and f"on {MIN_SAMPLE_ROWS + 500} x 16 vectors" in r.stdout
    small = run_cli("fit", tmp_path / "e.parquet", "--dims", "8", "--max-memory", "64M", "--out", tmp_path / "h2")
    assert small.returncode == 2 and "raise --max-memory" in small.stderr and "Traceback" not in small.stderr
    assert "read corpus" not in small.stderr and not (tmp_path / "h2").exists()

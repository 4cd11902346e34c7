"""The sample a fit draws follows its memory budget and the input dimension."""

from __future__ import annotations

import subprocess
import sys

import pytest

from smec_compress.config import FitConfig
from smec_compress.errors import SmecError
from smec_compress.model.footprint import MIN_SAMPLE_ROWS, fit_footprint, read_batch_rows, sample_rows_for
from smec_compress.resources import parse_bytes

GIB = 1 << 30


def test_sample_rows_grow_with_the_budget_and_shrink_with_the_input_dim():
    cfg = FitConfig()
    small, large = (sample_rows_for(b * GIB, 384, cfg, most=10**9) for b in (4, 16))
    assert MIN_SAMPLE_ROWS < small < large
    wide = FitConfig(dims=(256, 128, 64, 32))
    at_4096 = sample_rows_for(8 * GIB, 4096, wide, most=10**9)
    assert MIN_SAMPLE_ROWS < at_4096 < sample_rows_for(8 * GIB, 1024, wide, most=10**9)
    footprint = fit_footprint(4096, wide)
    assert footprint.bytes_for(at_4096) <= 8 * GIB < footprint.bytes_for(at_4096 + 1)
    assert sample_rows_for(64 * GIB, 384, cfg, most=1_000_000) == 1_000_000  # --sample-rows still caps it


def test_an_unnormalised_sample_costs_its_unit_copy_too():
    cfg = FitConfig()
    assert fit_footprint(768, cfg, normalized=False).per_row == fit_footprint(768, cfg).per_row + 4 * 768


def test_a_budget_below_the_minimum_sample_is_a_clear_error():
    with pytest.raises(SmecError, match=r"needs about .* for 10,000 sample rows .* budget is 512\.0 MiB; raise --max-memory"):
        sample_rows_for(parse_bytes("512M"), 4096, FitConfig(dims=(256,)), most=10**6)
    assert sample_rows_for(parse_bytes("3G"), 24, FitConfig(dims=(8,)), most=500) == 500  # a small corpus needs less


def test_read_batches_stay_near_256_mib_at_any_dim():
    assert read_batch_rows(384) == 65_536 and read_batch_rows(4096) == 16_384
    assert read_batch_rows(1_000_000) == 1024


def test_available_memory_sees_an_address_space_limit():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY));"
            "from smec_compress.resources import available_memory; m = available_memory(); print(m.bytes, m.source)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    assert 0 < int(out[0]) < 3 << 30 and out[1].startswith("address-space limit")

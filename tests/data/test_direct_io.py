"""The O_DIRECT sink: byte-exact output for any sequence of writes, and the page-cache fallback."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from smec_compress.data import direct_io
from smec_compress.data.direct_io import BLOCK, DirectFile

STAGING = 3 * BLOCK  # small, so a few KiB of writes cross several flushes


def chunk_sizes():
    """Empty, tiny, block-sized, staging-sized and larger-than-staging writes, in an awkward order."""
    return [0, 1, BLOCK - 1, BLOCK, 7, STAGING, STAGING + 5, 0, 3 * STAGING + 11, 2]


def write_chunks(sink, rng) -> bytes:
    expected = bytearray()
    for n in chunk_sizes():
        data = rng.bytes(n)
        assert sink.write(data) == n
        expected += data
        assert sink.tell() == len(expected)
    return bytes(expected)


def test_file_holds_exactly_the_bytes_written(tmp_path, rng):
    path = tmp_path / "out.bin"
    with DirectFile(path, staging_bytes=STAGING) as sink:
        expected = write_chunks(sink, rng)
    assert path.read_bytes() == expected  # the padded last block was cut back off


def test_accepts_any_buffer(tmp_path):
    path = tmp_path / "out.bin"
    values = np.arange(1000, dtype=np.float32)
    with DirectFile(path, staging_bytes=STAGING) as sink:
        sink.write(memoryview(values))
        sink.write(bytearray(b"tail"))
    assert path.read_bytes() == values.tobytes() + b"tail"


def test_falls_back_to_the_page_cache_where_o_direct_is_refused(tmp_path, rng, monkeypatch):
    real_open = os.open

    def refuse_direct(path, flags, *args):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct_io.os, "open", refuse_direct)
    path = tmp_path / "out.bin"
    with DirectFile(path, staging_bytes=STAGING) as sink:
        assert not sink.direct
        expected = write_chunks(sink, rng)
    assert path.read_bytes() == expected


def test_other_open_errors_are_not_swallowed(tmp_path):
    with pytest.raises(FileNotFoundError):
        DirectFile(tmp_path / "missing-dir" / "out.bin")


def test_empty_file_and_repeated_close(tmp_path):
    sink = DirectFile(tmp_path / "out.bin", staging_bytes=STAGING)
    sink.close()
    sink.close()
    assert sink.closed
    assert (tmp_path / "out.bin").read_bytes() == b""


def test_staging_buffer_must_be_whole_blocks(tmp_path):
    with pytest.raises(ValueError, match="multiple of 4096"):
        DirectFile(tmp_path / "out.bin", staging_bytes=BLOCK + 1)
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_a_write_the_device_refuses_goes_on_through_the_page_cache(tmp_path, rng, monkeypatch):
    real_write = os.write
    refused = []

    def refuse_first_direct_write(fd, data):
        if not refused:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    path = tmp_path / "out.bin"
    with DirectFile(path, staging_bytes=STAGING) as sink:
        if not sink.direct:
            pytest.skip("this file system refuses O_DIRECT")
        monkeypatch.setattr(direct_io.os, "write", refuse_first_direct_write)
        expected = write_chunks(sink, rng)
        assert not sink.direct
    assert refused and path.read_bytes() == expected

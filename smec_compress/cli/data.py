"""``embed``: texts through a frozen sentence-transformers model into embedding files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .common import (DocumentPrompt, Engine, EngineOption, IdColumn, ModelOption, QueryPrompt, RayAddress, err, out,
                     progress_bar)


@app.command()
def embed(
    input: Annotated[Path, typer.Argument(help="BEIR directory, .jsonl(.gz) with _id/id and text, or .parquet with a text column.")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .parquet, or .arrow (Arrow IPC: fastest to compress from). A BEIR directory's queries go beside it as NAME.queries.parquet.")],
    model: ModelOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 64,
    normalize: Annotated[bool, typer.Option(help="L2-normalise vectors (cosine search).")] = True,
    id_column: IdColumn = "id",
    text_column: Annotated[str, typer.Option("--text-column", help="Text column of Parquet input.")] = "text",
    engine: EngineOption = Engine.local,
    ray_address: RayAddress = None,
    query_prompt: QueryPrompt = None,
    document_prompt: DocumentPrompt = None,
) -> None:
    """Embed texts with a frozen sentence-transformers model into Parquet (id + embedding).
    A BEIR directory's queries get --query-prompt, everything else --document-prompt.

    With --engine ray, INPUT is Parquet with id and text columns and --out becomes a directory of
    Parquet files (one dataset).
    """
    from ..data.embed import Embedder, Prompts, embed_source, output_paths, text_sources
    from ..data.schema import Columns
    from ..errors import SmecError

    prompts = Prompts(query_prompt, document_prompt)
    if engine is Engine.ray:
        if prompts != Prompts():
            raise SmecError("--query-prompt/--document-prompt run with --engine local")
        from ..engines.ray import embed_ray

        rows = embed_ray(input, out_path, model=str(model) if model else None, batch_size=batch_size, normalize=normalize,
                         id_column=id_column, text_column=text_column, address=ray_address)
        out.print(f"wrote {rows} vectors to {out_path} (Ray Data)")
        return
    sources = text_sources(input, columns=Columns(id=id_column), text_column=text_column)
    targets = output_paths(out_path, list(sources))
    embedder = Embedder(model, prompts=prompts)
    if not normalize and embedder.normalizes:
        err.print(f"{embedder.name} ends in its own Normalize module: its vectors are unit even with --no-normalize")
    with progress_bar() as bar:
        for role, source in sources.items():
            task = bar.add_task(f"embed {role}", total=source.total)
            rows = embed_source(
                embedder, source, targets[role], batch_size=batch_size, normalize=normalize,
                progress=lambda n, t=task: bar.advance(t, n),
            )
            bar.console.print(f"wrote {rows} x {embedder.dim} vectors to {targets[role]}")

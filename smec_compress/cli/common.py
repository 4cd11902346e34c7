"""What every command shares: the consoles, the progress bar, option types and argument parsing."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import SmecError

out = Console()
err = Console(stderr=True)


class Engine(str, Enum):
    local = "local"
    ray = "ray"


IdColumn = Annotated[str, typer.Option("--id-column", help="Id column of the input.")]
EmbeddingColumn = Annotated[str, typer.Option("--embedding-column", help="Vector column of the input.")]
EngineOption = Annotated[Engine, typer.Option(help="local: stream in this process; ray: a Ray Data pipeline.")]
RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join (default: a local Ray).")]
ModelOption = Annotated[
    Optional[Path], typer.Option("--model", help="Local sentence-transformers folder [default: bundled all-MiniLM-L6-v2].")
]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def parse_dims(text: str, option: str = "--dims") -> tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SmecError(f"{option} {text!r}: expected comma-separated integers such as 64,32") from None
    if not dims:
        raise SmecError(f"{option} is empty: give at least one value, e.g. {option} 64,32")
    return dims

QueryPrompt = Annotated[Optional[str], typer.Option("--query-prompt", help="Text the model puts before each query (e5: 'query: '; bge: its instruction); recorded in the files' metadata.")]
DocumentPrompt = Annotated[Optional[str], typer.Option("--document-prompt", help="Text the model puts before each document (e5: 'passage: ').")]

"""``serve`` and ``reindex``: the only commands that import the service package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import Terminated, app
from .common import err, out


@app.command()
def serve(
    head_dir: Annotated[Optional[Path], typer.Option("--head", help="Head to serve (env SMEC_HEAD_DIR).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Where documents and indexes persist (env SMEC_DATA_DIR).")] = None,
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (env SMEC_HOST) [default: 127.0.0.1]. Beyond loopback, writes need SMEC_API_KEY (or SMEC_ALLOW_ANONYMOUS_WRITES=true).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind (env SMEC_PORT) [default: 8000].")] = None,
) -> None:
    """Run the HTTP service (compress, search, documents); other settings come from SMEC_* env vars.

    SIGTERM or Ctrl-C stops it gracefully (requests in flight finish, a final snapshot is written):
    a normal end, exit 0, not an interrupted command."""
    from service.app import serve as run_service

    given = {"head_dir": head_dir, "data_dir": data_dir, "host": host, "port": port}
    try:
        run_service(**{k: v for k, v in given.items() if v is not None})
    except (Terminated, KeyboardInterrupt):  # uvicorn re-raises the signal once it has shut down
        err.print("server stopped; every acknowledged write is in its data directory")


@app.command()
def reindex(
    head_dir: Annotated[Path, typer.Option("--head", help="The (new) head to index with.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The service's data directory (stop the server first).")],
) -> None:
    """Rebuild the service's indexes from its stored full vectors with HEAD (index settings from SMEC_* env vars)."""
    from service.settings import Settings
    from service.store import Store

    from ..model.head import SMEC

    settings = Settings(head_dir=head_dir, data_dir=data_dir, reindex=True)
    store = Store.from_settings(settings, SMEC.load(head_dir))
    count, dims = len(store), list(store.dims)
    store.close()
    out.print(f"reindexed {count} documents in {data_dir} at dims {dims} with head {head_dir}")

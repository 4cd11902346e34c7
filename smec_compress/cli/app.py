"""The ``smec-compress`` Typer app and its entry point: parse, call the library, print.

Commands live one group per module (``data``, ``fit``, ``compress``, ``evaluate``, ``service``)
and register themselves on ``app``; ``main`` turns a user's error into one line and exit 2.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import Annotated

import typer

from ..errors import SmecError
from .common import err

app = typer.Typer(
    name="smec-compress",
    help="Learned compression of frozen retrieval embeddings (SMEC).\n\n"
    "Flow: embed (texts -> Parquet) -> fit (train a head) -> compress / eval (apply at any trained dim).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: wraps at any width (rich panels cut words at 80 columns)
)


@dataclass
class RunState:
    """What the root options set for ``main`` to read after the command ends."""

    debug: bool = False


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every open output unwinds and removes its
    temporary file, as on Ctrl-C (a BaseException: no ``except Exception`` swallows it)."""


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Options that apply to every command."""
    if isinstance(ctx.obj, RunState):
        ctx.obj.debug = debug


def user_message(exc: SmecError | MemoryError | OSError) -> str:
    """The one-line message for an error the user can fix (anything else is a bug: traceback)."""
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller --sample-rows or --batch-rows"
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}"
    return str(exc)


def _terminate(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (traceback with --debug)."""
    state = RunState()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        app(obj=state)
    except Terminated:
        err.print("interrupted; no partial output was kept")
        sys.exit(143)
    except (SmecError, MemoryError, OSError) as exc:
        if state.debug:
            raise
        err.print(f"[bold red]error:[/] {user_message(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        signal.signal(signal.SIGTERM, previous)

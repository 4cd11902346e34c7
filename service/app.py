"""The FastAPI app: ``create_app(settings)`` builds it; routes only translate HTTP <-> ``Store``.

Nothing happens at import time. ``create_app`` wires routers, error handlers, the body-size
limit and metrics; its lifespan loads the head, optional embedder and store (in a background
thread by default, so ``/healthz`` answers while a big store replays its log) and closes the
store at shutdown (a final snapshot). ``app`` is a lazy ASGI app for ``uvicorn service.app:app``
that builds itself from ``SMEC_*`` environment variables on first use; ``serve`` is what
``smec-compress serve`` runs.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from smec_compress import __version__
from smec_compress.errors import SmecError

from .bodies import BodyTooLarge
from .deps import PROTECTED, protected
from .lane import SearchLane
from .metrics import setup_metrics
from .routers import compress, documents, health, indexes, search
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger("smec.service")

DESCRIPTION = """Compress frozen retrieval embeddings with a fitted SMEC head and search them in
per-dimension FAISS indexes. Writes are durable when acknowledged (write-ahead log + snapshots).
Errors are 4xx with a `detail` that says what was wrong and what is allowed."""


class BodyLimit:
    """413 for bodies over the limit: up front from Content-Length, or while streaming a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)  # no dict per request
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _too_large(self.max_bytes)(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": str(BodyTooLarge(limit))}, status_code=413)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app for ``settings`` (default: from the environment); nothing loads until startup."""
    settings = settings if settings is not None else Settings()
    runtime = Runtime(settings)
    logging.getLogger("smec").setLevel(settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.background_load:
            runtime.start()
        else:
            await run_in_threadpool(runtime.start)
        yield
        await run_in_threadpool(runtime.close)

    # FastAPI's own /docs and /redoc load Swagger UI / ReDoc from a CDN and render blank offline
    app = FastAPIOffline(title="smec-compress", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    for module in (health, compress, search, documents, indexes):
        app.include_router(module.router)

    @app.exception_handler(SmecError)
    async def smec_error(request: Request, exc: SmecError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    app.add_middleware(SearchLane, fastapi_app=app, route=search.ROUTE)  # innermost: inside metrics and body limit
    setup_metrics(app, runtime)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    plain_openapi = app.openapi

    def openapi() -> dict:
        """Once the head is loaded, the schema states its real limits (row length = input dim,
        served dims, max batch and k), so clients and fuzzers see what is accepted."""
        if runtime.ready and not getattr(app.state, "openapi_tightened", False):
            app.openapi_schema = None
            app.state.openapi_tightened = True
            return _tighten(plain_openapi(), runtime)
        return plain_openapi()

    app.openapi = openapi
    return app


FLOAT32_MAX = 3.4028234663852886e38


def _tighten(spec: dict, runtime: Runtime) -> dict:
    store, s = runtime.store, runtime.settings
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {"type": "array", "items": number, "minItems": store.input_dim, "maxItems": store.input_dim}
    for item in spec["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["name"] == "dim":
                    param["schema"] = {"anyOf": [{"type": "integer", "enum": list(store.dims)}, {"type": "null"}], "title": "Dim"}
                if param["name"] == "k":
                    param["schema"] = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": s.max_k}, {"type": "null"}], "title": "K"}
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            props = body.get("properties", {})
            if "vector" in props:
                props["vector"]["anyOf"][0] = row
            if "vectors" in props:
                props["vectors"]["anyOf"][0] = {"type": "array", "items": row, "minItems": 1, "maxItems": s.max_batch}
            if "k" in props:
                props["k"]["maximum"] = s.max_k
    return spec


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory service.app:create_app_from_env``."""
    return create_app(Settings())


class LazyApp:
    """An ASGI app that builds ``create_app(Settings())`` on its first call (uvicorn's lifespan
    startup), so ``uvicorn service.app:app`` works and importing this module does no work."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_app_from_env()
        await self._app(scope, receive, send)


app = LazyApp()


def serve(**overrides) -> None:
    """Run the service with uvicorn on ``settings.host``/``port``; ``overrides`` are Settings fields
    (e.g. head_dir, host) and win over ``SMEC_*`` variables. One worker: one process owns a data directory."""
    import uvicorn

    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if protected(settings):
        log.warning(PROTECTED.format(host=settings.host))
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, workers=1)

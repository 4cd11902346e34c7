"""Shared objects and auth as FastAPI dependencies (``Annotated[..., Depends()]``).

Every dependency is ``async def``: none blocks, and FastAPI runs a plain ``def`` dependency in
its thread pool, a hop per dependency (timed on the ASGI app alone, the four a small search had
were about a third of its time).
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .params import IntQuery
from .runtime import Runtime
from .settings import Settings
from .store import Store

bearer = HTTPBearer(auto_error=False, description="SMEC_API_KEY, when the server sets one.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_store(runtime: RuntimeDep) -> Store:
    """The store, or 503 while the head and indexes are still loading (or failed to)."""
    if runtime.store is None:
        detail = f"not ready: {runtime.error}" if runtime.error else f"not ready yet ({runtime.status}); poll /readyz"
        raise HTTPException(503, detail, headers={"Retry-After": "1"})
    return runtime.store


StoreDep = Annotated[Store, Depends(get_store)]


def _check_key(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    expected = settings.api_key
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        reason = "missing" if credentials is None else "wrong"
        raise HTTPException(
            401, f"{reason} API key: send the header 'Authorization: Bearer <SMEC_API_KEY>'", headers={"WWW-Authenticate": "Bearer"}
        )


def _beyond_loopback(host: str | None) -> bool:
    """An IP address that is not loopback (``0.0.0.0``, ``::``, a LAN address); a name
    (``localhost``, an in-process test client's placeholder) is taken as not exposed."""
    try:
        return host is not None and not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def protected(settings: Settings, client: tuple | None = None) -> bool:
    """Protected mode applies: no API key, no opt-out, and the server is bound beyond loopback
    (``settings.host``, as ``serve`` binds it) or, however it was started (``uvicorn
    service.app:app --host ...``), the request comes from beyond loopback."""
    if settings.api_key is not None or settings.allow_anonymous_writes:
        return False
    return _beyond_loopback(settings.host) or _beyond_loopback(client[0] if client else None)


PROTECTED = ("protected mode: this server (bound to {host}) is reachable beyond loopback and has no API key, so it "
             "refuses writes. "
             "Set SMEC_API_KEY=<secret> (clients then send 'Authorization: Bearer <secret>'), bind to 127.0.0.1, "
             "or set SMEC_ALLOW_ANONYMOUS_WRITES=true to accept anyone's writes.")


async def require_write(request: Request, settings: SettingsDep, credentials: Credentials) -> None:
    """Writes always need the key when one is set; with none, a server reachable beyond loopback
    refuses them (protected mode) unless SMEC_ALLOW_ANONYMOUS_WRITES=true."""
    if protected(settings, request.scope.get("client")):
        raise HTTPException(403, PROTECTED.format(host=settings.host))
    _check_key(settings, credentials)


async def require_read(settings: SettingsDep, credentials: Credentials) -> None:
    """Reads need it only with SMEC_AUTH_READS=true."""
    if settings.auth_reads:
        _check_key(settings, credentials)


async def read_access(request: Request) -> tuple[Runtime, Store]:
    """``RuntimeDep``, ``StoreDep`` and ``require_read`` as one plain call, for /search: FastAPI's
    solving of those nested dependencies costs tens of microseconds a request, the time of a
    small search. The route declares the bearer scheme in its OpenAPI entry itself."""
    runtime = await get_runtime(request)
    store = await get_store(runtime)
    await require_read(runtime.settings, await bearer(request))
    return runtime, store


BEARER_SECURITY = {"security": [{"HTTPBearer": []}]}  # what Depends(bearer) adds to an operation's OpenAPI entry


DIM = IntQuery("dim", "A dim the head serves (see GET /indexes); default SMEC_DEFAULT_DIM.", 1, 1_000_000)
DimQuery = Annotated[int | None, Query(ge=DIM.minimum, le=DIM.maximum, description=DIM.description)]


def resolve_dim(runtime: Runtime, store: Store, dim: int | None) -> int:
    dim = runtime.default_dim if dim is None else dim
    store.check_dim(dim)
    return dim

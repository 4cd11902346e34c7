"""Shared objects and auth as FastAPI dependencies (``Annotated[..., Depends()]``)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .runtime import Runtime
from .settings import Settings
from .store import Store

bearer = HTTPBearer(auto_error=False, description="SMEC_API_KEY, when the server sets one.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_store(runtime: RuntimeDep) -> Store:
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


def require_write(settings: SettingsDep, credentials: Credentials) -> None:
    """Writes always need the key when one is set."""
    _check_key(settings, credentials)


def require_read(settings: SettingsDep, credentials: Credentials) -> None:
    """Reads need it only with SMEC_AUTH_READS=true."""
    if settings.auth_reads:
        _check_key(settings, credentials)


DimQuery = Annotated[
    int | None,
    Query(ge=1, le=1_000_000, description="A dim the head serves (see GET /indexes); default SMEC_DEFAULT_DIM."),
]


def resolve_dim(runtime: Runtime, store: Store, dim: int | None) -> int:
    dim = runtime.default_dim if dim is None else dim
    store.check_dim(dim)
    return dim

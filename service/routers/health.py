"""Liveness and readiness probes (never behind the API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import RuntimeDep
from ..schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}}, summary="Head and indexes are loaded")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    ready = Ready(ready=runtime.ready, status=runtime.status, detail=runtime.error)
    return JSONResponse(ready.model_dump(), status_code=200 if runtime.ready else 503)

"""POST /compress: full vectors (or texts) -> the head's vectors at one dim."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from ..bodies import NPY, json_response, npy_response, read_rows, request_body_doc, wants_npy
from ..deps import DimQuery, RuntimeDep, StoreDep, require_read, resolve_dim
from ..schemas import CompressRequest, CompressResponse, ErrorResponse

router = APIRouter(tags=["compress"], dependencies=[Depends(require_read)])


@router.post(
    "/compress",
    response_model=CompressResponse,
    responses={
        200: {"content": {NPY: {"schema": {"type": "string", "format": "binary"}}}, "description": "JSON, or .npy with Accept: application/x-npy"},
        422: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
    },
    openapi_extra=request_body_doc(CompressRequest, npy=True),
    summary="Compress vectors (or texts) to one of the head's dims",
)
async def compress(request: Request, runtime: RuntimeDep, store: StoreDep, dim: DimQuery = None) -> Response:
    """JSON ``{"vectors": [[...]]}`` or ``{"texts": [...]}``, or a raw ``.npy`` float32 array
    (``Content-Type: application/x-npy``) for big batches; ``Accept: application/x-npy`` returns
    ``.npy`` too."""
    dim = resolve_dim(runtime, store, dim)
    _, vectors = await read_rows(request, runtime, CompressRequest, npy=True)
    z = await run_in_threadpool(store.compress, vectors, dim)
    if wants_npy(request):
        return npy_response(z)
    return json_response({"dim": dim, "vectors": z})

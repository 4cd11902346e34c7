"""Documents: upsert (keeps every served dim's index in sync), get and delete by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from ..bodies import json_response, read_rows, request_body_doc
from ..deps import RuntimeDep, StoreDep, require_read, require_write
from ..schemas import DeleteResponse, DocumentResponse, DocumentsRequest, ErrorResponse, UpsertResponse
from ..store import MAX_ID_CHARS

router = APIRouter(prefix="/documents", tags=["documents"])

DocId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, description="A document id.")]


@router.post(
    "",
    response_model=UpsertResponse,
    dependencies=[Depends(require_write)],
    responses={401: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    openapi_extra=request_body_doc(DocumentsRequest, npy=False),
    summary="Insert or replace documents (durable when acknowledged)",
)
async def upsert(request: Request, runtime: RuntimeDep, store: StoreDep) -> Response:
    req, vectors = await read_rows(request, runtime, DocumentsRequest, npy=False)
    created, updated = await run_in_threadpool(store.upsert, req.ids, vectors)
    return json_response({"created": created, "updated": updated, "documents": len(store)})


@router.get(
    "/{doc_id}",
    response_model=DocumentResponse,
    dependencies=[Depends(require_read)],
    responses={404: {"model": ErrorResponse}},
    summary="A document's stored full-dimension vector",
)
def get_document(doc_id: DocId, store: StoreDep) -> Response:
    vector = store.get(doc_id)
    if vector is None:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return json_response({"id": doc_id, "vector": vector})


@router.delete(
    "/{doc_id}",
    response_model=DeleteResponse,
    dependencies=[Depends(require_write)],
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    summary="Delete a document from every index (durable when acknowledged)",
)
def delete_document(doc_id: DocId, store: StoreDep) -> Response:
    if not store.delete([doc_id]):
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return json_response({"id": doc_id, "deleted": True})

"""GET /indexes: what each served dim's index holds and costs."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import RuntimeDep, StoreDep, require_read
from ..schemas import IndexesResponse, Storage

router = APIRouter(tags=["indexes"], dependencies=[Depends(require_read)])


@router.get("/indexes", response_model=IndexesResponse, summary="Per dim and budget: count, bytes/vector, index type, memory; RAM and disk bytes")
def indexes(runtime: RuntimeDep, store: StoreDep) -> IndexesResponse:
    return IndexesResponse(
        documents=len(store),
        input_dim=store.input_dim,
        head_fingerprint=store.head.fingerprint,
        default_dim=runtime.default_dim,
        served_dims=list(store.dims),
        indexes=store.stats(),
        served_budgets=list(store.budgets),
        budgets=store.budget_stats(),
        storage=Storage(**store.storage()),
    )

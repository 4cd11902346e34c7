"""POST /search: queries through the head, then that dim's FAISS indexes.

Its parameters and access check are read by hand (``service.params``, ``deps.read_access``):
FastAPI's solving of them cost more than a small search; for the same reason ``service.lane``
runs the endpoint just inside the body limit and metrics, past the router. A search small enough
to take well under a millisecond (``SMEC_INLINE_SEARCH_SCORES``: query rows times documents) runs
on the event loop: the hop to the thread pool and back is a large part of its time
(``bench/service.py``, 100k documents: 74% of in-process QPS over HTTP on the loop, 68% through
the pool). Bigger ones go to the pool, so the loop keeps answering other requests while FAISS
(which releases the GIL) works.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smec_compress.data.embed import QUERIES
from smec_compress.errors import SmecError

from ..bodies import json_response, read_rows, request_body_doc
from ..deps import BEARER_SECURITY, DIM, read_access, resolve_dim
from ..metrics import SEARCH_SECONDS
from ..params import IntQuery, openapi_parameters, read_ints
from ..schemas import ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(tags=["search"])

K = IntQuery("k", "Results per query for .npy bodies (JSON bodies carry \"k\").", 1)
RESCORE = IntQuery("rescore", "Take this many candidates (at least k) from the dim's index and rescore them with the "
                   "stored full vectors; 0: off. Default SMEC_RESCORE, at most SMEC_MAX_RESCORE.", 0)
BUDGET = IntQuery("budget", "Search the head's codec for this many bytes a vector instead of a dim (served budgets: "
                  "GET /indexes).", 1, 1_000_000)
PARAMS = (DIM, K, RESCORE, BUDGET)  # read by hand (service.params): FastAPI's solving of them was a quarter of a search


def resolve_rescore(settings, rescore: int | None, k: int) -> int:
    """The candidates to rescore: the request's (0, or k..SMEC_MAX_RESCORE; else 422 saying so),
    or the server default raised to k."""
    if rescore is None:
        return max(settings.rescore, k) if settings.rescore else 0
    if rescore and not k <= rescore <= settings.max_rescore:
        raise SmecError(f"rescore={rescore} must be 0 (off) or in {k}..{settings.max_rescore} "
                        f"(at least k={k}, at most SMEC_MAX_RESCORE)")
    return rescore


@router.post(
    "/search",
    response_model=SearchResponse,
    responses={422: {"model": ErrorResponse}, 413: {"model": ErrorResponse}},
    openapi_extra={**request_body_doc(SearchRequest, npy=True), **BEARER_SECURITY, **openapi_parameters(*PARAMS)},
    summary="Top-k documents per query",
)
async def search(request: Request) -> Response:
    """``{"vector": [...]}``, ``{"vectors": [[...]]}``, ``{"text": "..."}`` or ``{"texts": [...]}``
    plus ``"k"``; or a ``.npy`` array of query rows with ``?k=``. ``?rescore=R``: two-stage
    search, the dim's top R rescored with the full vectors (full-dim scores). ``?budget=B``
    instead of a dim: the head's learned codec for B bytes a vector (see GET /indexes)."""
    runtime, store = await read_access(request)
    dim, k, rescore, budget = read_ints(request, *PARAMS)
    if budget is not None:
        if dim is not None:
            raise SmecError(f"give a dim or a budget, not both (dim={dim}, budget={budget})")
        store.check_budget(budget)
    else:
        dim = resolve_dim(runtime, store, dim)
    req, queries = await read_rows(request, runtime, SearchRequest, npy=True, kind=QUERIES)
    if req is None:  # .npy body: k comes from the query string
        k = 10 if k is None else k
    else:
        if k is not None and k != req.k and "k" in req.model_fields_set:
            raise SmecError(f"k is given twice ({k} in the query, {req.k} in the body); give it once")
        k = req.k if "k" in req.model_fields_set or k is None else k
    if k > runtime.settings.max_k:
        raise SmecError(f"k={k} is above the limit of {runtime.settings.max_k} (SMEC_MAX_K)")
    rescore = resolve_rescore(runtime.settings, rescore, k)
    start = time.perf_counter()
    if len(queries) * max(len(store), 1) <= runtime.settings.inline_search_scores:
        hits = store.search(queries, dim, k, rescore=rescore, budget=budget)
    else:
        hits = await run_in_threadpool(store.search, queries, dim, k, rescore=rescore, budget=budget)
    request.scope[SEARCH_SECONDS] = time.perf_counter() - start  # metrics: smec_search_duration_seconds
    results = [[{"id": i, "score": s} for i, s in row] for row in hits]
    return json_response({"dim": dim, "budget": budget, "k": k, "rescore": rescore, "results": results})


ROUTE = next(r for r in router.routes if r.path == "/search")  # run by service.lane, past the router

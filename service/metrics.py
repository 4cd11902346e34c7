"""Prometheus metrics on a registry owned by the app (so several apps can live in one process).

One pure-ASGI middleware times every request: ``http_requests_total{handler,method,status}`` and
``http_request_duration_seconds{handler,method}`` (``handler`` is the route's path template, so
``/documents/{doc_id}`` is one label; ``none`` for unmatched paths), and
``smec_request_duration_seconds{route,dim}`` splits /search and /compress latency by the dim
served (unknown dims are one "invalid" label, so clients cannot blow up the cardinality), and
``smec_search_duration_seconds{dim}`` the part of a /search spent in the store's search (the
endpoint leaves it in the scope under ``SEARCH_SECONDS``): what is left of the request's latency
is HTTP, parsing and JSON. A collector reports index sizes and storage at scrape time.

Why not ``prometheus-fastapi-instrumentator``: it looked each request's route up again by
matching every route (timed on the ASGI app alone: about a fifth of a small /search); the route
FastAPI matched is already in the request's scope.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .runtime import Runtime

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DIM_ROUTES = ("/search", "/compress")
UNMATCHED = "none"
SEARCH_SECONDS = "smec.search_seconds"  # scope key: seconds /search spent in Store.search (set by the endpoint)


class IndexCollector:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self):
        docs = GaugeMetricFamily("smec_documents", "Documents in the store")
        vectors = GaugeMetricFamily("smec_index_vectors", "Vectors in each served dim's index", labels=["dim"])
        memory = GaugeMetricFamily("smec_index_memory_bytes", "Estimated memory of each dim's index", labels=["dim"])
        storage = GaugeMetricFamily("smec_storage_bytes", "RAM held by the indexes, disk held by the full vectors and "
                                    "by the whole data directory", labels=["kind"])
        store = self.runtime.store
        if store is not None:
            docs.add_metric([], len(store))
            for s in store.stats():
                vectors.add_metric([str(s.dim)], s.count)
                memory.add_metric([str(s.dim)], s.memory_bytes)
            for kind, value in store.storage().items():
                storage.add_metric([kind], value)
        yield from (docs, vectors, memory, storage)


class RequestMetrics:
    """Times each HTTP request and counts it by route template, method and status."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, runtime: Runtime, registry: CollectorRegistry) -> None:
        self.app = app
        self.routes = fastapi_app.router.routes
        self.runtime = runtime
        self.requests = Counter("http_requests_total", "Requests by route, method and status", ["handler", "method", "status"],
                                registry=registry)
        self.duration = Histogram("http_request_duration_seconds", "Latency by route and method", ["handler", "method"],
                                  buckets=BUCKETS, registry=registry)
        self.by_dim = Histogram("smec_request_duration_seconds", "Latency of /search and /compress by dim", ["route", "dim"],
                                buckets=BUCKETS, registry=registry)
        self.search = Histogram("smec_search_duration_seconds", "Seconds of /search in the store's search (head, index, "
                                "rescoring; the thread-pool hop where it runs there), by dim", ["dim"],
                                buckets=BUCKETS, registry=registry)
        self._children: dict = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before it starts a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        handler, method = self._handler(scope), scope["method"]
        self._child(self.requests, handler, method, str(status)).inc()
        self._child(self.duration, handler, method).observe(elapsed)
        if handler in DIM_ROUTES:
            dim = self._dim_label(scope)
            self._child(self.by_dim, handler, dim).observe(elapsed)
            if (searched := scope.get(SEARCH_SECONDS)) is not None:
                self._child(self.search, dim).observe(searched)

    def _child(self, metric, *labels: str):
        """``metric.labels(*labels)``, kept: prometheus_client's lookup costs microseconds a call."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _handler(self, scope: Scope) -> str:
        """The matched route's path template (set in the scope by FastAPI's router; matched here
        when the app answered before routing, e.g. a 413 from the body limit)."""
        route = scope.get("route")
        if route is None:
            route = next((r for r in self.routes if r.matches(scope)[0] == Match.FULL), None)
        return getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED

    def _dim_label(self, scope: Scope) -> str:
        """The dim searched or compressed (the default dim when none is given); a byte-budget
        search is ``budget-B``, not the default dim it does not use; "invalid" for anything not served."""
        query = scope.get("query_string", b"")
        store = self.runtime.store
        params = parse_qs(query.decode("latin-1")) if b"dim=" in query or b"budget=" in query else {}  # parsed once
        if (budget := params.get("budget", [None])[-1]) is not None:
            return f"budget-{budget}" if budget.isdigit() and store is not None and int(budget) in store.budgets else "invalid"
        raw = params.get("dim", [None])[-1]
        if raw is None:
            return str(self.runtime.default_dim)
        served = store.dims if store is not None else ()
        return raw if raw.isdigit() and int(raw) in served else "invalid"


def setup_metrics(app: FastAPI, runtime: Runtime) -> CollectorRegistry:
    """``/metrics`` (left out of the OpenAPI schema) and the request-timing middleware."""
    registry = CollectorRegistry()
    registry.register(IndexCollector(runtime))
    app.add_middleware(RequestMetrics, fastapi_app=app, runtime=runtime, registry=registry)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry

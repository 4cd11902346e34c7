"""Prometheus metrics on a registry owned by the app (so several apps can live in one process).

``prometheus-fastapi-instrumentator`` gives the standard per-route request counts and latency;
on top, ``smec_request_duration_seconds{route,dim}`` splits /search and /compress latency by the
dim served (unknown dims are one "invalid" label, so clients cannot blow up the cardinality),
and a collector reports index sizes at scrape time.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_fastapi_instrumentator import Instrumentator, metrics

from .runtime import Runtime

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DIM_ROUTES = ("/search", "/compress")


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


def setup_metrics(app: FastAPI, runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry()
    by_dim = Histogram(
        "smec_request_duration_seconds", "Latency of /search and /compress by dim", ["route", "dim"],
        buckets=BUCKETS, registry=registry,
    )

    def observe_dim(info: metrics.Info) -> None:
        if info.modified_handler not in DIM_ROUTES:
            return
        raw = info.request.query_params.get("dim")
        served = runtime.store.dims if runtime.store is not None else ()
        if raw is None:
            label = str(runtime.default_dim)
        else:
            label = raw if raw.isdigit() and int(raw) in served else "invalid"
        by_dim.labels(route=info.modified_handler, dim=label).observe(info.modified_duration)

    registry.register(IndexCollector(runtime))
    instrumentator = Instrumentator(registry=registry, excluded_handlers=["/metrics"], should_group_status_codes=False)
    instrumentator.add(metrics.default(registry=registry, latency_lowr_buckets=BUCKETS))
    instrumentator.add(observe_dim)
    instrumentator.instrument(app).expose(app, include_in_schema=False)
    return registry
